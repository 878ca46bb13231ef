//! The object store: kube-fake-client's in-memory tracker, driven through its
//! own HTTP-shaped tower service (`kube::Client::send` of kube 4).
//!
//! Everything that is Kubernetes semantics of the store (create/get/list/
//! update/patch/delete, resourceVersion, uid, creationTimestamp, generation,
//! AlreadyExists/NotFound/Conflict/Invalid errors, label and field selectors,
//! JSON patch, JSON merge patch, server-side apply, deletecollection,
//! ownerReferences cascade deletion, status subresources) lives in
//! kube-fake-client; this module carries bytes to and from it, and
//! translates resourceVersions (see `RvMap`).

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi_028::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{PersistentVolumeClaim, Pod, Service},
};
use kube4::client::Body as KubeBody;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
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

/// The resourceVersions clients see, and their mapping to the fake's.
///
/// The fake numbers its writes 1, 2, 3 per instance (again from 1 after a
/// reset) and gives a delete no version. The API server's versions are one
/// increasing sequence in which a delete is a write too. So every version
/// leaving the store is replaced by one of ours, allocated in the order the
/// fake's versions are first seen (writes are serialised, so that is the
/// fake's order); deletes take one of ours with no fake counterpart. Ours
/// start at the process start time in microseconds, so that a restarted
/// emulator's versions are all newer than those of the one before it (a
/// client resuming a watch across the restart gets 410 and lists again).
struct RvMap {
    last: u64,
    fake_to_ours: HashMap<u64, u64>,
    ours_to_fake: HashMap<u64, u64>,
}

impl RvMap {
    fn ours(&mut self, fake: u64) -> u64 {
        if let Some(o) = self.fake_to_ours.get(&fake) {
            return *o;
        }
        self.last += 1;
        let o = self.last;
        self.fake_to_ours.insert(fake, o);
        self.ours_to_fake.insert(o, fake);
        o
    }
}

pub struct Store {
    client: RwLock<kube4::Client>,
    rvs: Mutex<RvMap>,
}

fn parse_rv(v: &Value) -> Option<u64> {
    v.pointer("/metadata/resourceVersion")?
        .as_str()?
        .parse()
        .ok()
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
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        Store {
            client: RwLock::new(new_fake().await),
            rvs: Mutex::new(RvMap {
                last: start,
                fake_to_ours: HashMap::new(),
                ours_to_fake: HashMap::new(),
            }),
        }
    }

    /// Drop every object (a brand new fake client). Our resourceVersions go
    /// on increasing.
    pub async fn reset(&self) {
        let fresh = new_fake().await;
        let mut client = self.client.write().await;
        *client = fresh;
        let mut rvs = self.rvs.lock().unwrap();
        rvs.fake_to_ours.clear();
        rvs.ours_to_fake.clear();
    }

    /// The newest resourceVersion handed out.
    pub fn current_rv(&self) -> u64 {
        self.rvs.lock().unwrap().last
    }

    /// A new resourceVersion with no object in the fake (a delete event).
    pub fn allocate_rv(&self) -> u64 {
        let mut rvs = self.rvs.lock().unwrap();
        rvs.last += 1;
        rvs.last
    }

    /// Ours to the fake's in a request body's metadata.resourceVersion (an
    /// unknown one becomes "0", which matches no object: a Conflict).
    fn translate_request(&self, body: Bytes) -> Bytes {
        let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
            return body;
        };
        let Some(ours) = v
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().ok())
        else {
            return body;
        };
        let fake = ours
            .and_then(|o| self.rvs.lock().unwrap().ours_to_fake.get(&o).copied())
            .unwrap_or(0);
        v["metadata"]["resourceVersion"] = json!(fake.to_string());
        Bytes::from(v.to_string())
    }

    /// The fake's to ours in a response: an object, or a list's items (a
    /// list's own resourceVersion is the caller's to set).
    fn translate_response(&self, body: &mut Value) {
        let mut rvs = self.rvs.lock().unwrap();
        let mut fix = |o: &mut Value| {
            if let Some(fake) = parse_rv(o) {
                o["metadata"]["resourceVersion"] = json!(rvs.ours(fake).to_string());
            }
        };
        if let Some(items) = body.get_mut("items").and_then(Value::as_array_mut) {
            items.iter_mut().for_each(&mut fix);
        } else if !body
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List") || k == "Status")
        {
            fix(body);
        }
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
        let body = if body.is_empty() {
            body
        } else {
            self.translate_request(body)
        };
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
                if r.ok() {
                    self.translate_response(&mut r.body);
                }
                // The fake's own error bodies lack a reason for some codes.
                if !r.ok() && r.body.get("reason").is_none_or(Value::is_null) {
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
