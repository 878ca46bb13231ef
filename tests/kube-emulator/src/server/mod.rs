//! HTTP front: Kubernetes REST routing onto the kube-fake-client store, plus
//! the `/__emulator/` control API (faults, latency, request log, reset,
//! object dump, deployment status, load-balancer ingress).
//!
//! One file per concept: `routes` (URL parsing and the REST dispatch), `events` (the event log),
//! `store_ops` (create/replace/patch/scale semantics added in front of the
//! store), `watch` (watch streams), `faults` (fault injection), `control`
//! (the `/__emulator/` API) and `controllers` (what the cluster's
//! controllers would write: deployment status, ReplicaSets, pods). This file
//! holds the shared state (`App`), the request entry point and small helpers.

mod control;
mod controllers;
mod events;
mod faults;
mod routes;
mod store_ops;
mod watch;

pub use events::DEFAULT_WINDOW as DEFAULT_EVENT_WINDOW;

use crate::store::{status_body, Store, StoreResponse};
use bytes::Bytes;
use faults::Fault;
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use rand::Rng;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

pub struct App {
    store: Store,
    faults: Mutex<Vec<Fault>>,
    next_fault_id: AtomicU64,
    latency_ms: AtomicU64,
    requests: Mutex<Vec<Value>>,
    lb_ip: Mutex<Option<String>>,
    /// Every write as an event, for watches.
    events: events::EventLog,
    /// Delay between a write and its watch event (`/__emulator/watch-delay`).
    watch_delay_ms: AtomicU64,
    /// Open watch streams (`/__emulator/watches`).
    open_watches: AtomicUsize,
    /// Ends every open watch stream (`/__emulator/watch-cut`).
    cut: tokio::sync::broadcast::Sender<()>,
    /// Period of BOOKMARK events on watches that allow them.
    bookmark_interval_ms: u64,
    next_cluster_ip: AtomicU32,
    next_node_port: AtomicU32,
    next_pod_ip: AtomicU32,
    /// Serialises every write. kube-fake-client's tracker checks and then
    /// stores under separate locks (two racing creates of one name could
    /// both succeed), and strategic merge is a read-modify-write here.
    rmw: tokio::sync::Mutex<()>,
    pub server_address: Mutex<String>,
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response<RespBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .expect("response")
}

pub(super) fn store_response(r: StoreResponse) -> Response<RespBody> {
    json_response(r.status, &r.body)
}

pub(super) fn failure(code: u16, reason: &str, message: &str) -> Response<RespBody> {
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &status_body(code, reason, message),
    )
}

pub(super) fn rv_of(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub(super) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

pub(super) fn now_rfc3339() -> String {
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

pub(super) fn random_suffix(n: usize) -> String {
    // The alphabet of apimachinery's utilrand.String (no vowels, no 0/1/3).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl App {
    /// The emulator's state: an empty store, `window` events kept for
    /// resuming watches, bookmarks every `bookmark_interval_ms`.
    pub async fn new(window: usize, bookmark_interval_ms: u64) -> Arc<App> {
        let store = Store::new().await;
        let floor = store.current_rv();
        Arc::new(App {
            events: events::EventLog::new(window, floor),
            watch_delay_ms: AtomicU64::new(0),
            open_watches: AtomicUsize::new(0),
            cut: tokio::sync::broadcast::channel(1).0,
            bookmark_interval_ms,
            store,
            faults: Mutex::new(Vec::new()),
            next_fault_id: AtomicU64::new(1),
            latency_ms: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            lb_ip: Mutex::new(None),
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
}
