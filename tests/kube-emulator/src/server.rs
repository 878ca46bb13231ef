//! HTTP front: Kubernetes REST routing onto the kube-fake-client store, plus
//! the `/__emulator/` control API (faults, latency, request log, reset,
//! object dump, deployment status, load-balancer ingress).

use crate::discovery;
use crate::smp;
use crate::store::{reason_for, status_body, status_error, Store, StoreResponse};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use rand::Rng;
use regex::Regex;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub type RespBody = BoxBody<Bytes, Infallible>;

/// Returned by the service to make hyper close the connection without
/// writing a response (fault action `{"drop": true}`).
#[derive(Debug)]
pub struct DropConnection;
impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}
impl std::error::Error for DropConnection {}

/// Streaming body for watch responses.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}
impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

#[derive(Debug)]
struct Fault {
    id: u64,
    method: Option<String>,
    path_regex: Regex,
    nth: u64,
    times: u64,
    every: bool,
    action: Value,
    seen: u64,
    fired: u64,
}

impl Fault {
    fn describe(&self) -> Value {
        json!({
            "id": self.id, "method": self.method, "path_regex": self.path_regex.as_str(),
            "nth": self.nth, "times": self.times, "every": self.every, "action": self.action,
            "seen": self.seen, "fired": self.fired,
        })
    }
}

pub struct App {
    store: Store,
    faults: Mutex<Vec<Fault>>,
    next_fault_id: AtomicU64,
    latency_ms: AtomicU64,
    requests: Mutex<Vec<Value>>,
    lb_ip: Mutex<Option<String>>,
    /// Highest resourceVersion seen in any store answer (list resourceVersion).
    rv_high: AtomicU64,
    next_cluster_ip: AtomicU32,
    next_node_port: AtomicU32,
    next_pod_ip: AtomicU32,
    /// Serialises every write. kube-fake-client's tracker checks and then
    /// stores under separate locks (two racing creates of one name could
    /// both succeed), and strategic merge is a read-modify-write here.
    rmw: tokio::sync::Mutex<()>,
    pub server_address: Mutex<String>,
}

/// A parsed resource URL.
#[derive(Debug, Clone)]
struct ApiPath {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    kind: &'static str,
    name: Option<String>,
    /// Subresource (`status`, `scale`).
    sub: Option<String>,
}

impl ApiPath {
    fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
    fn collection_path(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/namespaces/{}/{}", self.prefix(), ns, self.resource),
            None => format!("{}/{}", self.prefix(), self.resource),
        }
    }
    fn object_path(&self) -> String {
        format!(
            "{}/{}",
            self.collection_path(),
            self.name.as_deref().unwrap_or("")
        )
    }
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

fn parse_api_path(path: &str) -> Option<ApiPath> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.first()? {
        &"api" => ("", &segs[1..]),
        &"apis" if segs.len() >= 2 => (segs[1], &segs[2..]),
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
fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
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

fn encode_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn json_response(status: StatusCode, body: &Value) -> Response<RespBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .expect("response")
}

fn store_response(r: StoreResponse) -> Response<RespBody> {
    json_response(r.status, &r.body)
}

fn failure(code: u16, reason: &str, message: &str) -> Response<RespBody> {
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &status_body(code, reason, message),
    )
}

fn not_found_route(path: &str) -> Response<RespBody> {
    let mut b = status_body(
        404,
        "NotFound",
        "the server could not find the requested resource",
    );
    b["details"] = json!({"causes": [{"reason": "UnexpectedServerResponse", "message": format!("404 page not found: {path}")}]});
    json_response(StatusCode::NOT_FOUND, &b)
}

fn rv_of(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn now_rfc3339() -> String {
    // Seconds precision, UTC, like the API server's metav1.Time.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // civil_from_days (Howard Hinnant)
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        y,
        m,
        d,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The API server folds Secret.stringData into .data (base64) on write.
fn secret_string_data(obj: &mut Value) {
    use base64::Engine as _;
    let Some(sd) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let Some(sd) = sd.as_object() else { return };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (k, v) in sd {
        let raw = v.as_str().unwrap_or("");
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()));
    }
}

fn random_suffix(n: usize) -> String {
    // The alphabet of apimachinery's utilrand.String (no vowels, no 0/1/3).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl App {
    pub async fn new() -> Arc<App> {
        Arc::new(App {
            store: Store::new().await,
            faults: Mutex::new(Vec::new()),
            next_fault_id: AtomicU64::new(1),
            latency_ms: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            lb_ip: Mutex::new(None),
            rv_high: AtomicU64::new(0),
            next_cluster_ip: AtomicU32::new(1),
            next_node_port: AtomicU32::new(0),
            next_pod_ip: AtomicU32::new(2),
            rmw: tokio::sync::Mutex::new(()),
            server_address: Mutex::new(String::new()),
        })
    }

    pub fn set_latency(&self, ms: u64) {
        self.latency_ms.store(ms, Ordering::Relaxed);
    }

    fn note_rv(&self, r: &StoreResponse) {
        let rv = rv_of(&r.body);
        self.rv_high.fetch_max(rv, Ordering::SeqCst);
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<RespBody>, DropConnection> {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return Err(DropConnection),
        };
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().map(str::to_string);
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);

        if path.starts_with("/__emulator") {
            return Ok(self
                .control(&parts.method, &path, query.as_deref(), body)
                .await);
        }

        self.requests.lock().unwrap().push(json!({
            "method": parts.method.as_str(),
            "path": path,
            "query": query.clone().unwrap_or_default(),
            "content_type": content_type.clone().unwrap_or_default(),
        }));

        let latency = self.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }

        if let Some(resp) = self.apply_faults(&parts.method, &path).await? {
            return Ok(resp);
        }

        Ok(self
            .api(
                &parts.method,
                &path,
                query.as_deref(),
                content_type.as_deref(),
                body,
            )
            .await)
    }

    /// Count the request against every matching fault; run delays; return a
    /// terminal action (error status or dropped connection) if one fires.
    async fn apply_faults(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<Option<Response<RespBody>>, DropConnection> {
        let mut firing = Vec::new();
        {
            let mut faults = self.faults.lock().unwrap();
            for f in faults.iter_mut() {
                if let Some(m) = &f.method {
                    if m != "*" && !m.eq_ignore_ascii_case(method.as_str()) {
                        continue;
                    }
                }
                if !f.path_regex.is_match(path) {
                    continue;
                }
                f.seen += 1;
                let fires = f.every || (f.seen >= f.nth && f.seen < f.nth + f.times);
                if fires {
                    f.fired += 1;
                    firing.push(f.action.clone());
                }
            }
        }
        let mut terminal = None;
        for action in firing {
            if let Some(ms) = action.get("delay_ms").and_then(Value::as_u64) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if terminal.is_none()
                && (action.get("drop").and_then(Value::as_bool) == Some(true)
                    || action.get("status").is_some())
            {
                terminal = Some(action);
            }
        }
        let Some(action) = terminal else {
            return Ok(None);
        };
        if action.get("drop").and_then(Value::as_bool) == Some(true) {
            return Err(DropConnection);
        }
        let code = action.get("status").and_then(Value::as_u64).unwrap_or(500) as u16;
        let reason = action
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or(reason_for(code))
            .to_string();
        let message = action
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("injected fault: {code} {reason}"));
        let mut body = status_body(code, &reason, &message);
        let mut builder = Response::builder()
            .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(ra) = action.get("retry_after").and_then(Value::as_u64) {
            builder = builder.header(header::RETRY_AFTER, ra.to_string());
            body["details"] = json!({"retryAfterSeconds": ra});
        }
        Ok(Some(
            builder
                .body(Full::new(Bytes::from(body.to_string())).boxed())
                .expect("response"),
        ))
    }

    async fn api(
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
                let mut r = self.store.get(&with_query(api.collection_path())).await;
                if r.ok() {
                    self.finish_list(&mut r);
                }
                r
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
                    self.store
                        .send(
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
                    .store
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
                &format!("the server does not allow this method on the requested resource"),
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
        self.note_rv(&resp);
        store_response(resp)
    }

    /// Deterministic order (namespace, name) and a meaningful list
    /// resourceVersion (the fake answers "1" always).
    fn finish_list(&self, r: &mut StoreResponse) {
        let mut max_rv = self.rv_high.load(Ordering::SeqCst);
        if let Some(items) = r.body.get_mut("items").and_then(Value::as_array_mut) {
            items.sort_by(|a, b| {
                (meta_str(a, "namespace"), meta_str(a, "name"))
                    .cmp(&(meta_str(b, "namespace"), meta_str(b, "name")))
            });
            for i in items.iter() {
                max_rv = max_rv.max(rv_of(i));
            }
        }
        r.body["metadata"] = json!({"resourceVersion": max_rv.to_string()});
    }

    async fn create(&self, api: &ApiPath, fwd_query: &str, body: Bytes) -> StoreResponse {
        let mut obj = match decode_object(&body) {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        if let Some(ns) = &api.namespace {
            match meta_str(&obj, "namespace") {
                Some(bns) if !bns.is_empty() && bns != ns => {
                    return status_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request",
                    )
                }
                _ => obj["metadata"]["namespace"] = json!(ns),
            }
        }
        if meta_str(&obj, "name").map_or(true, str::is_empty) {
            match meta_str(&obj, "generateName").filter(|g| !g.is_empty()) {
                Some(prefix) => {
                    let name = format!("{prefix}{}", random_suffix(5));
                    obj["metadata"]["name"] = json!(name);
                }
                None => {
                    let kind_group = if api.group.is_empty() {
                        api.kind.to_string()
                    } else {
                        format!("{}.{}", api.kind, api.group)
                    };
                    let mut b = status_body(
                        422,
                        "Invalid",
                        &format!("{kind_group} \"\" is invalid: metadata.name: Required value: name or generateName is required"),
                    );
                    b["details"] = json!({
                        "group": api.group, "kind": api.kind,
                        "causes": [{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]
                    });
                    return StoreResponse {
                        status: StatusCode::UNPROCESSABLE_ENTITY,
                        body: b,
                    };
                }
            }
        }
        if obj.get("apiVersion").is_none() {
            obj["apiVersion"] = json!(api.api_version());
        }
        if obj.get("kind").is_none() {
            obj["kind"] = json!(api.kind);
        }
        self.apply_create_defaults(api, &mut obj);
        smp::normalize_quantities(&mut obj);
        smp::normalize_null_strings(&mut obj);
        smp::prune_unknown_fields(&api.group, api.kind, &mut obj);
        let path = if fwd_query.is_empty() {
            api.collection_path()
        } else {
            format!("{}?{}", api.collection_path(), fwd_query)
        };
        let mut r = self
            .store
            .send(
                Method::POST,
                &path,
                Some("application/json"),
                Bytes::from(obj.to_string()),
            )
            .await;
        if r.status == StatusCode::CONFLICT {
            // Real message: deployments.apps "x" already exists
            if let Some(name) = meta_str(&obj, "name") {
                r.body["message"] = json!(format!(
                    "{} \"{}\" already exists",
                    api.group_resource(),
                    name
                ));
                r.body["details"] = json!({"name": name, "group": api.group, "kind": api.resource});
            }
        }
        r
    }

    /// The few server-side defaults/allocations clients read back.
    fn apply_create_defaults(&self, api: &ApiPath, obj: &mut Value) {
        match (api.group.as_str(), api.kind) {
            ("apps", "Deployment") | ("apps", "ReplicaSet") | ("apps", "StatefulSet") => {
                if obj.pointer("/spec/replicas").is_none()
                    && obj.get("spec").is_some_and(Value::is_object)
                {
                    obj["spec"]["replicas"] = json!(1);
                }
                let r = obj
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                // Status is the server's: what the controllers report right
                // after creation (nothing ready yet) until the test says
                // otherwise through /__emulator/deployments/.../status.
                obj["status"] = if api.kind == "Deployment" && r > 0 {
                    let now = now_rfc3339();
                    let name = meta_str(obj, "name").unwrap_or("").to_string();
                    json!({
                        "observedGeneration": 1, "replicas": r, "updatedReplicas": r,
                        "unavailableReplicas": r,
                        "conditions": [
                            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                             "message": "Deployment does not have minimum availability.",
                             "lastUpdateTime": now, "lastTransitionTime": now},
                            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                             "message": format!("ReplicaSet \"{name}\" is progressing."),
                             "lastUpdateTime": now, "lastTransitionTime": now}
                        ]
                    })
                } else if api.kind == "Deployment" {
                    json!({"observedGeneration": 1})
                } else {
                    json!({"replicas": 0})
                };
            }
            ("", "PersistentVolumeClaim") => obj["status"] = json!({"phase": "Pending"}),
            ("", "Pod") => obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"}),
            ("", "Secret") => secret_string_data(obj),
            ("", "Service") => {
                if !obj.get("spec").is_some_and(Value::is_object) {
                    obj["spec"] = json!({});
                }
                let spec = &mut obj["spec"];
                let ty = spec
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("ClusterIP")
                    .to_string();
                if spec.get("type").is_none() {
                    spec["type"] = json!("ClusterIP");
                }
                if spec.get("clusterIP").is_none() && ty != "ExternalName" {
                    let n = self.next_cluster_ip.fetch_add(1, Ordering::SeqCst);
                    let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1);
                    spec["clusterIP"] = json!(ip);
                    spec["clusterIPs"] = json!([ip]);
                }
                if ty == "NodePort" || ty == "LoadBalancer" {
                    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                        for p in ports {
                            if p.get("nodePort").is_none() {
                                let n = self.next_node_port.fetch_add(1, Ordering::SeqCst);
                                p["nodePort"] = json!(30000 + (n % 2768));
                            }
                        }
                    }
                }
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        if p.get("protocol").is_none() {
                            p["protocol"] = json!("TCP");
                        }
                        if p.get("targetPort").is_none() {
                            if let Some(port) = p.get("port").cloned() {
                                p["targetPort"] = port;
                            }
                        }
                    }
                }
                let lb = match self.lb_ip.lock().unwrap().clone() {
                    Some(ip) if ty == "LoadBalancer" => json!({"ingress": [{"ip": ip}]}),
                    _ => json!({}),
                };
                obj["status"] = json!({"loadBalancer": lb});
            }
            _ => {}
        }
    }

    async fn replace(&self, api: &ApiPath, path: &str, body: Bytes) -> StoreResponse {
        let mut obj = match decode_object(&body) {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        let name = api.name.as_deref().unwrap_or("");
        match meta_str(&obj, "name") {
            Some(n) if !n.is_empty() && n != name => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ),
                )
            }
            _ => obj["metadata"]["name"] = json!(name),
        }
        if let Some(ns) = &api.namespace {
            match meta_str(&obj, "namespace") {
                Some(bns) if !bns.is_empty() && bns != ns => {
                    return status_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request",
                    )
                }
                _ => obj["metadata"]["namespace"] = json!(ns),
            }
        }
        if obj.get("apiVersion").is_none() {
            obj["apiVersion"] = json!(api.api_version());
        }
        if obj.get("kind").is_none() {
            obj["kind"] = json!(api.kind);
        }
        let current = self.store.get(&api.object_path()).await;
        if !current.ok() {
            return current;
        }
        self.write(api, path, obj, &current.body).await
    }

    /// PATCH (all but server-side apply): read, compute the patched object
    /// (strategic merge: smp.rs; merge and JSON patch: the json-patch crate,
    /// as kube-fake-client itself does), write back through `write`.
    async fn patch(
        &self,
        api: &ApiPath,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> StoreResponse {
        let patch: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("error decoding patch: {e}"),
                )
            }
        };
        let current = self.store.get(&api.object_path()).await;
        if !current.ok() {
            return current;
        }
        let current_rv = meta_str(&current.body, "resourceVersion")
            .unwrap_or("")
            .to_string();
        let conflict = || {
            status_error(
                StatusCode::CONFLICT,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    api.group_resource(),
                    api.name.as_deref().unwrap_or("")
                ),
            )
        };
        let mut new = if content_type.starts_with("application/json-patch+json") {
            let ops: json_patch::Patch = match serde_json::from_value(patch) {
                Ok(p) => p,
                Err(e) => {
                    return status_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("invalid JSON patch: {e}"),
                    )
                }
            };
            let mut doc = current.body.clone();
            if let Err(e) = json_patch::patch(&mut doc, &ops) {
                return status_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    &format!("the JSON patch could not be applied: {e}"),
                );
            }
            doc
        } else {
            if !patch.is_object() {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "a merge patch must be a JSON object",
                );
            }
            if let Some(want) = meta_str(&patch, "resourceVersion") {
                if !want.is_empty() && want != current_rv {
                    return conflict();
                }
            }
            if content_type.starts_with("application/merge-patch+json") {
                let mut doc = current.body.clone();
                json_patch::merge(&mut doc, &patch);
                doc
            } else {
                // application/strategic-merge-patch+json (the default)
                smp::strategic_merge(&api.group, api.kind, &current.body, &patch)
            }
        };
        if !new.is_object() {
            return status_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "the patched object is not an object",
            );
        }
        // Identity fields are the server's, not the patch's.
        if !new.get("metadata").is_some_and(Value::is_object) {
            new["metadata"] = json!({});
        }
        for f in ["name", "namespace", "uid", "creationTimestamp"] {
            match current.body.get("metadata").and_then(|m| m.get(f)) {
                Some(v) => new["metadata"][f] = v.clone(),
                None => {
                    new["metadata"].as_object_mut().map(|m| m.remove(f));
                }
            }
        }
        if meta_str(&new, "resourceVersion").map_or(true, str::is_empty) {
            new["metadata"]["resourceVersion"] = json!(current_rv);
        }
        self.write(api, path, new, &current.body).await
    }

    /// Store an updated object via the fake's update. A write that leaves
    /// .spec unchanged goes through the status path with the current status
    /// so that metadata.generation does not move (the fake bumps it on every
    /// non-status update; the API server only when the spec changes).
    async fn write(
        &self,
        api: &ApiPath,
        path: &str,
        mut new: Value,
        current: &Value,
    ) -> StoreResponse {
        if api.group.is_empty() && api.kind == "Secret" {
            secret_string_data(&mut new);
        }
        smp::normalize_quantities(&mut new);
        smp::normalize_null_strings(&mut new);
        smp::prune_unknown_fields(&api.group, api.kind, &mut new);
        let status_write = api.sub.as_deref() == Some("status");
        if !status_write && new.get("spec") == current.get("spec") {
            match current.get("status") {
                Some(st) => new["status"] = st.clone(),
                None => {
                    new.as_object_mut().map(|o| o.remove("status"));
                }
            }
            let status_path = format!("{}/status", api.object_path());
            return self
                .store
                .send(
                    Method::PUT,
                    &status_path,
                    Some("application/json"),
                    Bytes::from(new.to_string()),
                )
                .await;
        }
        self.store
            .send(
                Method::PUT,
                path,
                Some("application/json"),
                Bytes::from(new.to_string()),
            )
            .await
    }

    /// The `scale` subresource of deployments, replicasets and statefulsets
    /// (autoscaling/v1 Scale), mapped onto spec.replicas.
    async fn scale(
        &self,
        api: &ApiPath,
        method: &Method,
        content_type: &str,
        body: Bytes,
    ) -> StoreResponse {
        if !matches!(api.kind, "Deployment" | "ReplicaSet" | "StatefulSet") {
            return status_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        let to_scale = |obj: &Value| {
            let sel = obj
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                });
            json!({
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {
                    "name": meta_str(obj, "name"), "namespace": meta_str(obj, "namespace"),
                    "uid": meta_str(obj, "uid"), "resourceVersion": meta_str(obj, "resourceVersion"),
                    "creationTimestamp": obj.pointer("/metadata/creationTimestamp"),
                },
                "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
                "status": {
                    "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
                    "selector": sel.unwrap_or_default(),
                }
            })
        };
        let current = self.store.get(&api.object_path()).await;
        if !current.ok() {
            return current;
        }
        if *method == Method::GET {
            return StoreResponse {
                status: StatusCode::OK,
                body: to_scale(&current.body),
            };
        }
        let input: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("error decoding body: {e}"),
                )
            }
        };
        let mut scale = to_scale(&current.body);
        if *method == Method::PUT {
            scale = input;
        } else if content_type.starts_with("application/json-patch+json") {
            let ops: json_patch::Patch = match serde_json::from_value(input) {
                Ok(p) => p,
                Err(e) => {
                    return status_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("invalid JSON patch: {e}"),
                    )
                }
            };
            if let Err(e) = json_patch::patch(&mut scale, &ops) {
                return status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e.to_string());
            }
        } else {
            json_patch::merge(&mut scale, &input);
        }
        let Some(replicas) = scale.pointer("/spec/replicas").and_then(Value::as_i64) else {
            return status_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "spec.replicas: Required value",
            );
        };
        let mut new = current.body.clone();
        new["spec"]["replicas"] = json!(replicas);
        let plain = ApiPath {
            sub: None,
            ..api.clone()
        };
        let r = self
            .write(&plain, &api.object_path(), new, &current.body)
            .await;
        if r.ok() {
            StoreResponse {
                status: r.status,
                body: to_scale(&r.body),
            }
        } else {
            r
        }
    }

    /// Watch by polling the store (50 ms): ADDED/MODIFIED/DELETED events in
    /// the API server's chunked JSON stream format.
    fn watch(self: &Arc<Self>, api: &ApiPath, params: &[(String, String)]) -> Response<RespBody> {
        let get = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.clone())
        };
        let mut sel = Vec::new();
        for k in ["labelSelector", "fieldSelector"] {
            if let Some(v) = get(k) {
                sel.push((k.to_string(), v));
            }
        }
        let list_path = if sel.is_empty() {
            api.collection_path()
        } else {
            format!("{}?{}", api.collection_path(), encode_query(&sel))
        };
        let since: u64 = get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let timeout = get("timeoutSeconds")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1800)
            .min(3600);
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        let app = Arc::clone(self);
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(timeout);
            let mut known: HashMap<String, (u64, Value)> = HashMap::new();
            let mut first = true;
            loop {
                let r = app.store.get(&list_path).await;
                if !r.ok() {
                    let ev = json!({"type": "ERROR", "object": r.body});
                    let _ = tx.send(Bytes::from(format!("{ev}\n"))).await;
                    return;
                }
                let items = r
                    .body
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut seen = HashSet::new();
                let mut events = Vec::new();
                for item in items {
                    let key = format!(
                        "{}/{}",
                        meta_str(&item, "namespace").unwrap_or(""),
                        meta_str(&item, "name").unwrap_or("")
                    );
                    let rv = rv_of(&item);
                    seen.insert(key.clone());
                    match known.get(&key) {
                        None => {
                            if !(first && since > 0 && rv <= since) {
                                events.push(json!({"type": "ADDED", "object": item.clone()}));
                            }
                            known.insert(key, (rv, item));
                        }
                        Some((krv, _)) if *krv != rv => {
                            events.push(json!({"type": "MODIFIED", "object": item.clone()}));
                            known.insert(key, (rv, item));
                        }
                        _ => {}
                    }
                }
                let gone: Vec<String> = known
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for k in gone {
                    if let Some((_, obj)) = known.remove(&k) {
                        events.push(json!({"type": "DELETED", "object": obj}));
                    }
                }
                first = false;
                for ev in events {
                    if tx.send(Bytes::from(format!("{ev}\n"))).await.is_err() {
                        return;
                    }
                }
                if tx.is_closed() || Instant::now() >= deadline {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/json")
            .body(ChannelBody { rx }.boxed())
            .expect("response")
    }

    // ---------------------------------------------------------------- control

    async fn control(
        &self,
        method: &Method,
        path: &str,
        _query: Option<&str>,
        body: Bytes,
    ) -> Response<RespBody> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).skip(1).collect();
        let input: Value = if body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return failure(400, "BadRequest", &format!("bad JSON: {e}")),
            }
        };
        match (method.as_str(), segs.as_slice()) {
            ("GET", ["faults"]) => {
                let f: Vec<Value> = self
                    .faults
                    .lock()
                    .unwrap()
                    .iter()
                    .map(Fault::describe)
                    .collect();
                json_response(StatusCode::OK, &json!({"faults": f}))
            }
            ("POST", ["faults"]) => match self.add_fault(&input) {
                Ok(id) => json_response(StatusCode::OK, &json!({"id": id})),
                Err(e) => failure(400, "BadRequest", &e),
            },
            ("DELETE", ["faults"]) => {
                self.faults.lock().unwrap().clear();
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            ("DELETE", ["faults", id]) => {
                let id: u64 = id.parse().unwrap_or(0);
                self.faults.lock().unwrap().retain(|f| f.id != id);
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            ("GET", ["latency"]) => json_response(
                StatusCode::OK,
                &json!({"latency_ms": self.latency_ms.load(Ordering::Relaxed)}),
            ),
            ("POST", ["latency"]) => {
                let ms = input.get("latency_ms").and_then(Value::as_u64).unwrap_or(0);
                self.latency_ms.store(ms, Ordering::Relaxed);
                json_response(StatusCode::OK, &json!({"latency_ms": ms}))
            }
            ("GET", ["requests"]) => {
                let r = self.requests.lock().unwrap().clone();
                json_response(StatusCode::OK, &json!({"requests": r}))
            }
            ("DELETE", ["requests"]) => {
                self.requests.lock().unwrap().clear();
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            ("POST", ["reset"]) => {
                let _guard = self.rmw.lock().await;
                self.store.reset().await;
                if input.get("store_only").and_then(Value::as_bool) != Some(true) {
                    self.faults.lock().unwrap().clear();
                    self.requests.lock().unwrap().clear();
                    self.latency_ms.store(0, Ordering::Relaxed);
                    *self.lb_ip.lock().unwrap() = None;
                }
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            ("GET", ["objects"]) => json_response(StatusCode::OK, &self.dump_objects().await),
            ("POST", ["deployments", ns, name, "status"]) => {
                self.set_deployment_status(ns, name, &input).await
            }
            ("GET", ["loadbalancer"]) => json_response(
                StatusCode::OK,
                &json!({"ip": self.lb_ip.lock().unwrap().clone()}),
            ),
            ("POST", ["loadbalancer"]) => {
                let ip = input.get("ip").and_then(Value::as_str).map(str::to_string);
                *self.lb_ip.lock().unwrap() = ip.clone();
                let updated = self.apply_lb_ip(ip).await;
                json_response(StatusCode::OK, &json!({"ok": true, "updated": updated}))
            }
            ("POST", ["shutdown"]) => {
                tokio::spawn(async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    std::process::exit(0);
                });
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            _ => failure(
                404,
                "NotFound",
                &format!("no control endpoint {method} {path}"),
            ),
        }
    }

    fn add_fault(&self, input: &Value) -> Result<u64, String> {
        let path_regex = input
            .get("path_regex")
            .and_then(Value::as_str)
            .unwrap_or(".*");
        let path_regex = Regex::new(path_regex).map_err(|e| format!("bad path_regex: {e}"))?;
        let action = input
            .get("action")
            .cloned()
            .unwrap_or_else(|| json!({"status": 500}));
        if !action.is_object() {
            return Err("action must be an object".into());
        }
        let id = self.next_fault_id.fetch_add(1, Ordering::SeqCst);
        self.faults.lock().unwrap().push(Fault {
            id,
            method: input
                .get("method")
                .and_then(Value::as_str)
                .map(str::to_uppercase),
            path_regex,
            nth: input.get("nth").and_then(Value::as_u64).unwrap_or(1).max(1),
            times: input
                .get("times")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1),
            every: input.get("every").and_then(Value::as_bool).unwrap_or(false),
            action,
            seen: 0,
            fired: 0,
        });
        Ok(id)
    }

    async fn dump_objects(&self) -> Value {
        let mut items = Vec::new();
        for (g, v, _kind, plural) in kube_fake_client::gen::discovery::list_resources() {
            let path = if g.is_empty() {
                format!("/api/{v}/{plural}")
            } else {
                format!("/apis/{g}/{v}/{plural}")
            };
            let r = self.store.get(&path).await;
            if let Some(list) = r.body.get("items").and_then(Value::as_array) {
                items.extend(list.iter().cloned());
            }
        }
        let key = |o: &Value| {
            (
                o.get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                o.get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                meta_str(o, "namespace").unwrap_or("").to_string(),
                meta_str(o, "name").unwrap_or("").to_string(),
            )
        };
        items.sort_by_key(key);
        json!({"kind": "List", "apiVersion": "v1", "items": items})
    }

    async fn apply_lb_ip(&self, ip: Option<String>) -> usize {
        let _guard = self.rmw.lock().await;
        let list = self.store.get("/api/v1/services").await;
        let lb = match &ip {
            Some(ip) => json!({"ingress": [{"ip": ip}]}),
            None => json!({"ingress": null}),
        };
        let mut n = 0;
        for svc in list
            .body
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            if svc.pointer("/spec/type").and_then(Value::as_str) != Some("LoadBalancer") {
                continue;
            }
            let (Some(ns), Some(name)) = (meta_str(&svc, "namespace"), meta_str(&svc, "name"))
            else {
                continue;
            };
            let path = format!("/api/v1/namespaces/{ns}/services/{name}/status");
            let patch = json!({"status": {"loadBalancer": lb}});
            let r = self
                .store
                .send(
                    Method::PATCH,
                    &path,
                    Some("application/merge-patch+json"),
                    Bytes::from(patch.to_string()),
                )
                .await;
            if r.ok() {
                n += 1;
            }
        }
        n
    }

    async fn set_deployment_status(
        &self,
        ns: &str,
        name: &str,
        input: &Value,
    ) -> Response<RespBody> {
        let _guard = self.rmw.lock().await;
        let dep_path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
        let dep = self.store.get(&dep_path).await;
        if !dep.ok() {
            return store_response(dep);
        }
        let dep = dep.body;
        let spec_replicas = dep
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let get_i = |k: &str| input.get(k).and_then(Value::as_i64);
        let replicas = get_i("replicas").unwrap_or(spec_replicas);
        let ready = get_i("readyReplicas").unwrap_or(replicas);
        let available = get_i("availableReplicas").unwrap_or(ready);
        let updated = get_i("updatedReplicas").unwrap_or(replicas);
        let mut status = json!({
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": available,
            "updatedReplicas": updated,
            "observedGeneration": get_i("observedGeneration")
                .or_else(|| dep.pointer("/metadata/generation").and_then(Value::as_i64))
                .unwrap_or(1),
        });
        status["unavailableReplicas"] = if replicas - available > 0 {
            json!(replicas - available)
        } else {
            Value::Null // merge patch: remove
        };
        let now = now_rfc3339();
        status["conditions"] = match input.get("conditions") {
            Some(c) => c.clone(),
            None => {
                let avail = available >= spec_replicas;
                json!([
                    {"type": "Available", "status": if avail {"True"} else {"False"},
                     "reason": if avail {"MinimumReplicasAvailable"} else {"MinimumReplicasUnavailable"},
                     "message": if avail {"Deployment has minimum availability."} else {"Deployment does not have minimum availability."},
                     "lastUpdateTime": now, "lastTransitionTime": now},
                    {"type": "Progressing", "status": "True",
                     "reason": if avail {"NewReplicaSetAvailable"} else {"ReplicaSetUpdated"},
                     "message": format!("ReplicaSet \"{name}\" is progressing."),
                     "lastUpdateTime": now, "lastTransitionTime": now}
                ])
            }
        };
        // Any other camelCase status fields given are passed through.
        if let Some(obj) = input.as_object() {
            for (k, v) in obj {
                if !["pods", "conditions"].contains(&k.as_str()) && status.get(k).is_none() {
                    status[k] = v.clone();
                }
            }
        }
        let patch = json!({"status": status});
        let r = self
            .store
            .send(
                Method::PATCH,
                &format!("{dep_path}/status"),
                Some("application/merge-patch+json"),
                Bytes::from(patch.to_string()),
            )
            .await;
        self.note_rv(&r);
        if !r.ok() {
            return store_response(r);
        }
        if input.get("pods").and_then(Value::as_bool) == Some(true) {
            if let Err(resp) = self.sync_pods(ns, name, &dep, ready).await {
                return store_response(resp);
            }
        }
        store_response(r)
    }

    /// A ReplicaSet owned by the deployment and `ready` Running pods owned by
    /// it (so ownerReferences cascades reach them when the deployment goes).
    async fn sync_pods(
        &self,
        ns: &str,
        name: &str,
        dep: &Value,
        ready: i64,
    ) -> Result<(), StoreResponse> {
        let template = dep.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash: String = {
            let mut h: u64 = 1469598103934665603;
            for b in template.to_string().bytes() {
                h = (h ^ b as u64).wrapping_mul(1099511628211);
            }
            const A: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            (0..10)
                .map(|i| A[((h >> (i * 6)) % A.len() as u64) as usize] as char)
                .collect()
        };
        let rs_name = format!("{name}-{hash}");
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        labels["pod-template-hash"] = json!(hash);
        let dep_uid = meta_str(dep, "uid").unwrap_or("").to_string();
        let rs_path = format!("/apis/apps/v1/namespaces/{ns}/replicasets");
        let mut rs = self.store.get(&format!("{rs_path}/{rs_name}")).await;
        if !rs.ok() {
            let selector = dep.pointer("/spec/selector").cloned().unwrap_or(json!({}));
            let mut sel = selector.clone();
            sel["matchLabels"]["pod-template-hash"] = json!(hash);
            let mut tpl = template.clone();
            tpl["metadata"]["labels"] = labels.clone();
            let body = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name, "namespace": ns, "labels": labels,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                          "uid": dep_uid, "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": {"replicas": ready, "selector": sel, "template": tpl},
                "status": {"replicas": ready, "readyReplicas": ready, "availableReplicas": ready, "fullyLabeledReplicas": ready}
            });
            rs = self
                .store
                .send(
                    Method::POST,
                    &rs_path,
                    Some("application/json"),
                    Bytes::from(body.to_string()),
                )
                .await;
            if !rs.ok() {
                return Err(rs);
            }
        }
        let rs_uid = meta_str(&rs.body, "uid").unwrap_or("").to_string();
        let pods_path = format!("/api/v1/namespaces/{ns}/pods");
        let existing = self.store.get(&pods_path).await;
        let mut owned: Vec<String> = existing
            .body
            .get("items")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter(|p| {
                        p.pointer("/metadata/ownerReferences")
                            .and_then(Value::as_array)
                            .is_some_and(|refs| {
                                refs.iter().any(|r| {
                                    r.get("uid").and_then(Value::as_str) == Some(rs_uid.as_str())
                                })
                            })
                    })
                    .filter_map(|p| meta_str(p, "name").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        owned.sort();
        let ready = ready.max(0) as usize;
        while owned.len() > ready {
            let victim = owned.pop().unwrap();
            let _ = self
                .store
                .send(
                    Method::DELETE,
                    &format!("{pods_path}/{victim}"),
                    None,
                    Bytes::new(),
                )
                .await;
        }
        let now = now_rfc3339();
        for _ in owned.len()..ready {
            let n = self.next_pod_ip.fetch_add(1, Ordering::SeqCst);
            let ip = format!("10.244.{}.{}", (n / 250) % 250, n % 250 + 1);
            let spec = template
                .get("spec")
                .cloned()
                .unwrap_or(json!({"containers": []}));
            let statuses: Vec<Value> = spec
                .get("containers")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            json!({
                                "name": c.get("name"), "image": c.get("image"), "imageID": "",
                                "ready": true, "started": true, "restartCount": 0,
                                "state": {"running": {"startedAt": now}}
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut spec = spec;
            spec["nodeName"] = json!("kube-emulator-node");
            let body = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": format!("{rs_name}-{}", random_suffix(5)), "namespace": ns, "labels": labels,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                                          "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": spec,
                "status": {
                    "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
                    "startTime": now, "qosClass": "BestEffort",
                    "conditions": [
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        {"type": "Ready", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}
                    ],
                    "containerStatuses": statuses
                }
            });
            let r = self
                .store
                .send(
                    Method::POST,
                    &pods_path,
                    Some("application/json"),
                    Bytes::from(body.to_string()),
                )
                .await;
            if !r.ok() {
                return Err(r);
            }
            self.note_rv(&r);
        }
        Ok(())
    }
}

/// Decodes a request body that must be a JSON object and ensures it has a `metadata` map.
#[allow(clippy::result_large_err)]
fn decode_object(body: &[u8]) -> Result<Value, StoreResponse> {
    let mut obj: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return Err(status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the body must be a JSON object",
            ))
        }
        Err(e) => {
            return Err(status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("error decoding body: {e}"),
            ))
        }
    };
    if obj.get("metadata").map_or(true, |m| !m.is_object()) {
        obj["metadata"] = json!({});
    }
    Ok(obj)
}
