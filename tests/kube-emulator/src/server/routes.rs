//! Kubernetes REST routing: resource URLs parsed into `ApiPath`, query
//! strings, discovery documents, and the dispatch of each verb onto the
//! store operations (store_ops.rs) and watches (watch.rs).

use super::{failure, json_response, meta_str, store_response, App, RespBody};
use crate::discovery;
use crate::store::{status_body, status_error, StoreResponse};
use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use std::sync::Arc;

/// A parsed resource URL.
#[derive(Debug, Clone)]
pub(super) struct ApiPath {
    pub(super) group: String,
    pub(super) version: String,
    pub(super) namespace: Option<String>,
    pub(super) resource: String,
    pub(super) kind: &'static str,
    pub(super) name: Option<String>,
    /// Subresource (`status`, `scale`).
    pub(super) sub: Option<String>,
}

impl ApiPath {
    pub(super) fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
    pub(super) fn collection_path(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/namespaces/{}/{}", self.prefix(), ns, self.resource),
            None => format!("{}/{}", self.prefix(), self.resource),
        }
    }
    pub(super) fn object_path(&self) -> String {
        format!(
            "{}/{}",
            self.collection_path(),
            self.name.as_deref().unwrap_or("")
        )
    }
    pub(super) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    pub(super) fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

pub(super) fn parse_api_path(path: &str) -> Option<ApiPath> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match *segs.first()? {
        "api" => ("", &segs[1..]),
        "apis" if segs.len() >= 2 => (segs[1], &segs[2..]),
        _ => return None,
    };
    let version = *rest.first()?;
    let rest = &rest[1..];
    let lookup =
        |plural: &str| kube_fake_client::gen::discovery::plural_to_kind(group, version, plural);
    let (namespace, rest) =
        if rest.len() >= 3 && rest[0] == "namespaces" && lookup(rest[2]).is_some() {
            (Some(rest[1].to_string()), &rest[2..])
        } else {
            (None, rest)
        };
    let resource = *rest.first()?;
    let kind = lookup(resource)?;
    if rest.len() > 3 {
        return None;
    }
    Some(ApiPath {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource: resource.to_string(),
        kind,
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    })
}

/// application/x-www-form-urlencoded decoding ('+' is a space: the Python
/// client encodes `a in (x,y)` as `a+in+%28x%2Cy%29`).
pub(super) fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                let s = s.replace('+', " ");
                urlencoding::decode(&s).map(|c| c.into_owned()).unwrap_or(s)
            };
            (dec(k), dec(v))
        })
        .collect()
}

pub(super) fn encode_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) fn not_found_route(path: &str) -> Response<RespBody> {
    let mut b = status_body(
        404,
        "NotFound",
        "the server could not find the requested resource",
    );
    b["details"] = json!({"causes": [{"reason": "UnexpectedServerResponse", "message": format!("404 page not found: {path}")}]});
    json_response(StatusCode::NOT_FOUND, &b)
}

impl App {
    pub(super) async fn api(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        query: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Response<RespBody> {
        let trimmed = path.trim_end_matches('/');
        if method == Method::GET {
            let segs: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
            match segs.as_slice() {
                ["version"] => return json_response(StatusCode::OK, &discovery::version()),
                ["healthz"] | ["livez"] | ["readyz"] => {
                    return Response::builder()
                        .status(200)
                        .header(header::CONTENT_TYPE, "text/plain")
                        .body(Full::new(Bytes::from_static(b"ok")).boxed())
                        .expect("response")
                }
                ["api"] => {
                    let addr = self.server_address.lock().unwrap().clone();
                    return json_response(StatusCode::OK, &discovery::core_versions(&addr));
                }
                ["apis"] => return json_response(StatusCode::OK, &discovery::api_groups()),
                ["api", v] => {
                    return match discovery::resource_list("", v) {
                        Some(d) => json_response(StatusCode::OK, &d),
                        None => not_found_route(path),
                    }
                }
                ["apis", g] => {
                    return match discovery::api_group(g) {
                        Some(d) => json_response(StatusCode::OK, &d),
                        None => not_found_route(path),
                    }
                }
                ["apis", g, v] => {
                    return match discovery::resource_list(g, v) {
                        Some(d) => json_response(StatusCode::OK, &d),
                        None => not_found_route(path),
                    }
                }
                _ => {}
            }
        }
        let Some(api) = parse_api_path(trimmed) else {
            return not_found_route(path);
        };
        let params = parse_query(query);
        let param = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        if let Some(sel) = param("labelSelector") {
            if let Err(e) = kube_fake_client::label_selector::parse_label_selector(sel) {
                return failure(
                    400,
                    "BadRequest",
                    &format!("unable to parse requirement: {e}"),
                );
            }
        }
        let fwd_query = encode_query(&params);
        let with_query = |p: String| {
            if fwd_query.is_empty() {
                p
            } else {
                format!("{p}?{fwd_query}")
            }
        };
        let _write_guard = if *method == Method::GET {
            None
        } else {
            Some(self.rmw.lock().await)
        };
        let resp = match *method {
            Method::GET if api.name.is_none() => {
                if matches!(param("watch"), Some("true") | Some("1")) {
                    return self.watch(&api, &params);
                }
                if let Some(resp) =
                    self.expired_list(param("resourceVersion"), param("resourceVersionMatch"))
                {
                    return resp;
                }
                // The newest version before the list: every event after it
                // is one the list may not show (see store_ops finish_list).
                let before = self.store.current_rv();
                // Paging is done here (finish_list), on the whole sorted list: the
                // store's own `limit` cuts without a continue token.
                let unpaged: Vec<(String, String)> = params
                    .iter()
                    .filter(|(k, _)| k != "limit" && k != "continue")
                    .cloned()
                    .collect();
                let unpaged = encode_query(&unpaged);
                let collection = if unpaged.is_empty() {
                    api.collection_path()
                } else {
                    format!("{}?{unpaged}", api.collection_path())
                };
                let mut r = self.store.get(&collection).await;
                match r.ok() {
                    true => {
                        match self.finish_list(&mut r, before, param("limit"), param("continue")) {
                            Ok(()) => r,
                            Err(bad) => bad,
                        }
                    }
                    false => r,
                }
            }
            _ if api.sub.as_deref() == Some("scale") => {
                self.scale(&api, method, content_type.unwrap_or(""), body)
                    .await
            }
            _ if api.sub.as_deref().is_some_and(|s| s != "status") => status_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            ),
            Method::GET => self.store.get(trimmed).await,
            Method::POST if api.name.is_none() => self.create(&api, &fwd_query, body).await,
            Method::PUT if api.name.is_some() => self.replace(&api, trimmed, body).await,
            Method::PATCH if api.name.is_some() => {
                let ct = content_type.unwrap_or("");
                if ct.starts_with("application/apply-patch") {
                    // Server-side apply: kube-fake-client's managed-fields logic.
                    self.send(
                        Method::PATCH,
                        &with_query(trimmed.to_string()),
                        content_type,
                        body,
                    )
                    .await
                } else {
                    self.patch(&api, trimmed, ct, body).await
                }
            }
            Method::DELETE => {
                let r = self
                    .send(
                        Method::DELETE,
                        &with_query(trimmed.to_string()),
                        content_type,
                        body,
                    )
                    .await;
                if r.ok() && api.name.is_some() && api.kind != "Pod" {
                    // Immediate deletion of anything but a pod answers with a
                    // Success Status (the API server's ReturnDeletedObject=false).
                    StoreResponse {
                        status: StatusCode::OK,
                        body: json!({
                            "kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Success",
                            "details": {
                                "name": api.name, "group": api.group, "kind": api.resource,
                                "uid": meta_str(&r.body, "uid"),
                            }
                        }),
                    }
                } else {
                    r
                }
            }
            _ => status_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ),
        };
        let mut resp = resp;
        if resp.status == StatusCode::NOT_FOUND && api.name.is_some() {
            // Real wording: deployments.apps "x" not found
            let name = api.name.clone().unwrap_or_default();
            resp.body["message"] =
                json!(format!("{} \"{}\" not found", api.group_resource(), name));
            resp.body["details"] = json!({"name": name, "group": api.group, "kind": api.resource});
        }
        store_response(resp)
    }
}
