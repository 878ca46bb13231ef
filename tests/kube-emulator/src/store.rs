//! The object store: kube-fake-client's in-memory tracker, driven through its
//! own HTTP-shaped tower service (`kube::Client::send` of kube 4).
//!
//! Everything that is Kubernetes semantics of the store (create/get/list/
//! update/patch/delete, resourceVersion, uid, creationTimestamp, generation,
//! AlreadyExists/NotFound/Conflict/Invalid errors, label and field selectors,
//! JSON patch, JSON merge patch, server-side apply, deletecollection,
//! ownerReferences cascade deletion, status subresources) lives in
//! kube-fake-client; this module only carries bytes to and from it.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi_028::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{PersistentVolumeClaim, Pod, Service},
};
use kube4::client::Body as KubeBody;
use serde_json::{json, Value};
use tokio::sync::RwLock;

/// A response from the store: HTTP status and JSON body.
#[derive(Debug, Clone)]
pub struct StoreResponse {
    pub status: StatusCode,
    pub body: Value,
}

impl StoreResponse {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }
}

pub struct Store {
    client: RwLock<kube4::Client>,
}

async fn new_fake() -> kube4::Client {
    // Status subresources as on a real API server: ordinary writes keep
    // .status, writes to /status keep .spec.
    kube_fake_client::ClientBuilder::new()
        .with_status_subresource::<Deployment>()
        .with_status_subresource::<ReplicaSet>()
        .with_status_subresource::<Pod>()
        .with_status_subresource::<Service>()
        .with_status_subresource::<PersistentVolumeClaim>()
        .build()
        .await
        .expect("building kube-fake-client")
}

impl Store {
    pub async fn new() -> Self {
        Store {
            client: RwLock::new(new_fake().await),
        }
    }

    /// Drop every object (a brand new fake client).
    pub async fn reset(&self) {
        let fresh = new_fake().await;
        *self.client.write().await = fresh;
    }

    /// Send one request to the fake. `path_and_query` must be origin-form
    /// (`/api/v1/namespaces/x/pods?labelSelector=...`), with query values
    /// percent-encoded (the fake decodes them with `urlencoding`).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> StoreResponse {
        let mut builder = Request::builder().method(method).uri(path_and_query);
        if let Some(ct) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, ct);
        }
        let req = match builder.body(KubeBody::from(body.to_vec())) {
            Ok(r) => r,
            Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
        };
        let client = self.client.read().await.clone();
        match client.send(req).await {
            Ok(resp) => {
                let status = resp.status();
                let bytes = match resp.into_body().collect().await {
                    Ok(c) => c.to_bytes(),
                    Err(e) => {
                        return status_error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "InternalError",
                            &e.to_string(),
                        )
                    }
                };
                let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "message": String::from_utf8_lossy(&bytes), "code": status.as_u16()})
                });
                let mut r = StoreResponse { status, body };
                // The fake's own error bodies lack a reason for some codes.
                if !r.ok() && r.body.get("reason").map_or(true, Value::is_null) {
                    r.body["reason"] = json!(reason_for(status.as_u16()));
                }
                r
            }
            // The fake answers malformed requests (unparsable path, bad JSON
            // body, name missing for PUT/PATCH) with a service error.
            Err(e) => {
                let msg = match &e {
                    kube4::Error::Service(inner) => inner.to_string(),
                    other => other.to_string(),
                };
                if msg.contains("Invalid path") || msg.contains("Name required") {
                    status_error(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        "the server could not find the requested resource",
                    )
                } else {
                    status_error(StatusCode::BAD_REQUEST, "BadRequest", &msg)
                }
            }
        }
    }

    pub async fn get(&self, path: &str) -> StoreResponse {
        self.send(Method::GET, path, None, Bytes::new()).await
    }
}

pub fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// A Kubernetes `Status` failure object.
pub fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

pub fn status_error(status: StatusCode, reason: &str, message: &str) -> StoreResponse {
    StoreResponse {
        status,
        body: status_body(status.as_u16(), reason, message),
    }
}
