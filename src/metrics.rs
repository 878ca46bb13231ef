//! Process metrics in the Prometheus/OpenMetrics text format, with the `prometheus-client`
//! crate (the official Rust client of the Prometheus project).
//!
//! One registry per process, made on first use. `tycho api` serves it at `GET /metrics`
//! ([`crate::server`]); in the library (a Python process that imports tycho) the same
//! families are returned as text by `tycho.metrics()`, for appstore to publish.
//!
//! | family | type | labels | counted where |
//! | --- | --- | --- | --- |
//! | `tycho_http_requests_total` | counter | `route`, `method`, `code` | `tycho api`, every answer |
//! | `tycho_http_request_duration_seconds` | histogram | `route`, `method`, `code` | `tycho api`, until the answer's head |
//! | `tycho_operations_total` | counter | `operation` (start, status, delete, modify), `outcome` (success, error) | `tycho api` and the Python executor functions |
//! | `tycho_systems` | gauge | `app` | set from every status of all systems (no name, no username) |
//! | `tycho_kube_requests_total` | counter | `verb`, `code` | the executor's Kubernetes client ([`KubeMetricsLayer`]) |
//! | `tycho_kube_request_duration_seconds` | histogram | `verb` | the same, until the response head |
//! | `tycho_cache_synced` | gauge | `kind` | [`cache_synced`], called by the watch cache |
//! | `tycho_watch_restarts_total` | counter | `kind` | [`watch_restarted`], called by the watch cache |
//! | `tycho_cache_objects` | gauge | `kind` | [`cache_held`], called by the watch cache |
//! | `tycho_cache_bytes` | gauge | `kind` | [`cache_held`]: the estimated memory of those objects |
//! | `tycho_event_streams` | gauge | | `tycho api`: `GET /system/events` streams open ([`event_streams`]) |
//!
//! Label values are bounded: `route` is the matched route template (`/system/start`), or
//! `unmatched` for every path no route serves; `method` is one of the standard methods or
//! `other`; `code` is the HTTP status code (or `error` when a Kubernetes request got no
//! answer); `verb` is Kubernetes' (get, list, watch, create, update, patch, delete,
//! deletecollection) or `other`; `app` comes from the systems' `app_id` labels (one value
//! per app in the catalogue), cut to 63 characters.
//!
//! For the watch cache (branch `cache`): call [`cache_synced`]`(kind, true)` when a
//! reflector of `kind` (e.g. `"Deployment"`) has listed and is serving from memory,
//! `cache_synced(kind, false)` when it falls back to the API server, and
//! [`watch_restarted`]`(kind)` each time a watch stream is restarted after an error or a
//! `410 Gone` relist, and [`cache_held`] as objects enter and leave its stores.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The content type of [`text`]: OpenMetrics 1.0 text, which Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of an HTTP answer of `tycho api`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    code: String,
}

/// Labels of an executor operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KubeLabels {
    verb: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabels {
    verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets of the latency histograms: 5 ms to about 82 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<HttpLabels>,
    operations: Family<OperationLabels, Counter>,
    systems: Family<AppLabels, Gauge>,
    kube_requests: Family<KubeLabels, Counter>,
    kube_duration: HistogramFamily<VerbLabels>,
    cache_synced: Family<KindLabels, Gauge>,
    watch_restarts: Family<KindLabels, Counter>,
    cache_objects: Family<KindLabels, Gauge>,
    cache_bytes: Family<KindLabels, Gauge>,
    event_streams: Gauge,
    culled: Family<ReasonLabels, Counter>,
}

// Long because: every metric of the process registered in one place, one statement each.
fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let mut registry = Registry::with_prefix("tycho");
        let m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            operations: Family::default(),
            systems: Family::default(),
            kube_requests: Family::default(),
            kube_duration: Family::new_with_constructor(latency_histogram),
            cache_synced: Family::default(),
            watch_restarts: Family::default(),
            cache_objects: Family::default(),
            cache_bytes: Family::default(),
            event_streams: Gauge::default(),
            culled: Family::default(),
        };
        registry.register(
            "http_requests",
            "Requests answered by tycho api, by route template, method and status code",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time tycho api took to answer a request (until the answer's head)",
            m.http_duration.clone(),
        );
        registry.register(
            "operations",
            "Executor operations (start, status, delete, modify, stop, resume, touch) by outcome",
            m.operations.clone(),
        );
        registry.register(
            "systems",
            "Systems by app, from the latest status of all systems",
            m.systems.clone(),
        );
        registry.register(
            "kube_requests",
            "Requests to the Kubernetes API server by verb and status code",
            m.kube_requests.clone(),
        );
        registry.register(
            "kube_request_duration_seconds",
            "Time the Kubernetes API server took to answer (until the response head)",
            m.kube_duration.clone(),
        );
        registry.register(
            "cache_synced",
            "1 when the watch cache of a kind is synced and serves reads, else 0",
            m.cache_synced.clone(),
        );
        registry.register(
            "watch_restarts",
            "Watch streams of the cache restarted after an error or a 410 Gone, by kind",
            m.watch_restarts.clone(),
        );
        registry.register(
            "cache_objects",
            "Objects the watch cache holds, by kind",
            m.cache_objects.clone(),
        );
        registry.register(
            "cache_bytes",
            "Estimated memory of the objects the watch cache holds (their slim form), by kind",
            m.cache_bytes.clone(),
        );
        registry.register(
            "event_streams",
            "Event streams (GET /system/events) open now",
            m.event_streams.clone(),
        );
        registry.register(
            "culled",
            "Systems culled (stopped or deleted by tycho cull or tycho api --cull-every), by reason: idle, max-age",
            m.culled.clone(),
        );
        Metrics { registry, ..m }
    })
}

/// An event stream opened (1) or closed (-1).
pub fn event_streams(delta: i64) {
    let gauge = &metrics().event_streams;
    if delta >= 0 {
        gauge.inc_by(delta);
    } else {
        gauge.dec_by(-delta);
    }
}

/// Every family in the OpenMetrics text format (ends with `# EOF`).
pub fn text() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics().registry);
    out
}

/// The `method` label of an HTTP method: the standard ones by name, else `other`.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::HEAD => "HEAD",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts one answer of `tycho api`: `route` is the matched route template (or
/// `unmatched`), `code` the status, `elapsed` the time until the answer's head.
pub fn http_request(route: &str, method: &http::Method, code: u16, elapsed: Duration) {
    let labels = HttpLabels {
        route: route.to_string(),
        method: method_label(method).to_string(),
        code: code.to_string(),
    };
    let m = metrics();
    m.http_requests.get_or_create(&labels).inc();
    m.http_duration
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
}

/// An executor operation, for [`operation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Starting a system.
    Start,
    /// Listing systems.
    Status,
    /// Deleting a system.
    Delete,
    /// Modifying a system.
    Modify,
    /// Stopping a system (scaling it to 0).
    Stop,
    /// Resuming a stopped system.
    Resume,
    /// Recording a system's activity.
    Touch,
}

impl Operation {
    /// The `operation` label.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Start => "start",
            Operation::Status => "status",
            Operation::Delete => "delete",
            Operation::Modify => "modify",
            Operation::Stop => "stop",
            Operation::Resume => "resume",
            Operation::Touch => "touch",
        }
    }
}

/// Counts one executor operation by its outcome.
pub fn operation<T, E>(op: Operation, result: &Result<T, E>) {
    let labels = OperationLabels {
        operation: op.name().to_string(),
        outcome: if result.is_ok() { "success" } else { "error" }.to_string(),
    };
    metrics().operations.get_or_create(&labels).inc();
}

/// Counts one system culled for `reason` (`idle`, `max-age`: crate::exec::cull).
pub fn culled(reason: &str) {
    metrics()
        .culled
        .get_or_create(&ReasonLabels {
            reason: reason.to_string(),
        })
        .inc();
}

/// Longest `app` label value kept.
const APP_LABEL_LIMIT: usize = 63;

/// Sets the systems-by-app gauge from the rows of a status of all systems (each row's
/// `app_id`; rows without one count under `unknown`). Apps no longer running are removed.
pub fn systems(rows: &[Value]) {
    let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
    for row in rows {
        let app = row
            .get("app_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown");
        let app: String = app.chars().take(APP_LABEL_LIMIT).collect();
        *counts.entry(app).or_default() += 1;
    }
    let family = &metrics().systems;
    family.clear();
    for (app, n) in counts {
        family.get_or_create(&AppLabels { app }).set(n);
    }
}

/// Records the state of the watch cache of `kind` (the resource plural, e.g. `"deployments"`): `true` when it
/// has listed and serves reads from memory, `false` when reads go to the API server.
pub fn cache_synced(kind: &str, synced: bool) {
    metrics()
        .cache_synced
        .get_or_create(&KindLabels {
            kind: kind.to_string(),
        })
        .set(i64::from(synced));
}

/// Counts `objects` (1 or -1) objects of `bytes` estimated bytes in (positive) or out
/// (negative) of the watch cache of `kind` (the resource plural).
pub fn cache_held(kind: &str, objects: i64, bytes: i64) {
    let labels = KindLabels {
        kind: kind.to_string(),
    };
    let m = metrics();
    m.cache_objects.get_or_create(&labels).inc_by(objects);
    m.cache_bytes.get_or_create(&labels).inc_by(bytes);
}

/// Forgets what the watch cache held (a forked child: its parent's stores are not its own).
pub fn cache_held_reset() {
    let m = metrics();
    m.cache_objects.clear();
    m.cache_bytes.clear();
}

/// Counts a restart of the watch stream of `kind` after an error (no answer, a broken
/// connection, an error status) or a `410 Gone` relist; not the API server's regular end
/// of a watch (`timeoutSeconds`), after which the watch resumes.
pub fn watch_restarted(kind: &str) {
    metrics()
        .watch_restarts
        .get_or_create(&KindLabels {
            kind: kind.to_string(),
        })
        .inc();
}

/// Kubernetes' verb of a request to the API server, from its method and path.
pub fn kube_verb(method: &http::Method, uri: &http::Uri) -> &'static str {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/<group>/<version>/...
    let rest: &[&str] = match segments.first() {
        Some(&"api") if segments.len() >= 2 => &segments[2..],
        Some(&"apis") if segments.len() >= 3 => &segments[3..],
        _ => &[],
    };
    // Namespaced resources: namespaces/<ns>/<resource>[/<name>[/<subresource>]].
    let rest = match rest {
        ["namespaces", _, resource @ ..] if !resource.is_empty() => resource,
        other => other,
    };
    let collection = rest.len() == 1;
    let watch = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "watch=true" || p == "watch=1" || p == "watch")
    });
    match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if collection => "list",
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if collection => "deletecollection",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

fn kube_request(verb: &'static str, code: String, elapsed: Duration) {
    let m = metrics();
    m.kube_requests
        .get_or_create(&KubeLabels {
            verb: verb.to_string(),
            code,
        })
        .inc();
    m.kube_duration
        .get_or_create(&VerbLabels {
            verb: verb.to_string(),
        })
        .observe(elapsed.as_secs_f64());
}

/// A tower layer for the Kubernetes client (`kube::client::ClientBuilder::with_layer`):
/// counts every request by verb and status code and times it.
#[derive(Debug, Clone, Copy, Default)]
pub struct KubeMetricsLayer;

impl<S> tower::Layer<S> for KubeMetricsLayer {
    type Service = KubeMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        KubeMetrics { inner }
    }
}

/// The service of [`KubeMetricsLayer`].
#[derive(Debug, Clone)]
pub struct KubeMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for KubeMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let verb = kube_verb(request.method(), request.uri());
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let code = match &result {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            kube_request(verb, code, started.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verb(method: &str, uri: &str) -> &'static str {
        kube_verb(&method.parse().unwrap(), &uri.parse().unwrap())
    }

    #[test]
    fn verbs_of_api_paths() {
        let d = "/apis/apps/v1/namespaces/ns/deployments";
        assert_eq!(verb("GET", d), "list");
        assert_eq!(verb("GET", &format!("{d}?labelSelector=a%3Db")), "list");
        assert_eq!(
            verb("GET", &format!("{d}?watch=true&resourceVersion=1")),
            "watch"
        );
        assert_eq!(verb("GET", &format!("{d}/web")), "get");
        assert_eq!(verb("GET", &format!("{d}/web/status")), "get");
        assert_eq!(verb("POST", d), "create");
        assert_eq!(verb("PATCH", &format!("{d}/web")), "patch");
        assert_eq!(verb("PUT", &format!("{d}/web")), "update");
        assert_eq!(verb("DELETE", &format!("{d}/web")), "delete");
        assert_eq!(verb("DELETE", d), "deletecollection");
        assert_eq!(verb("GET", "/api/v1/namespaces"), "list");
        assert_eq!(verb("GET", "/api/v1/namespaces/ns"), "get");
        assert_eq!(verb("GET", "/api/v1/pods"), "list");
        assert_eq!(verb("GET", "/version"), "get");
        assert_eq!(verb("TRACE", "/version"), "other");
    }

    #[test]
    fn text_has_the_families() {
        operation::<(), ()>(Operation::Delete, &Ok(()));
        systems(&[
            json!({"app_id": "jupyter-ds"}),
            json!({"app_id": "jupyter-ds"}),
            json!({}),
        ]);
        cache_synced("Deployment", true);
        watch_restarted("Deployment");
        http_request(
            "/system/status",
            &http::Method::POST,
            200,
            Duration::from_millis(3),
        );
        let t = text();
        assert!(
            t.contains("tycho_operations_total{operation=\"delete\",outcome=\"success\"}"),
            "{t}"
        );
        assert!(t.contains("tycho_systems{app=\"jupyter-ds\"} 2"), "{t}");
        assert!(t.contains("tycho_systems{app=\"unknown\"} 1"), "{t}");
        assert!(
            t.contains("tycho_cache_synced{kind=\"Deployment\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("tycho_watch_restarts_total{kind=\"Deployment\"}"),
            "{t}"
        );
        assert!(
            t.contains("tycho_http_request_duration_seconds_bucket{"),
            "{t}"
        );
        assert!(t.ends_with("# EOF\n"), "{t}");
        systems(&[]);
        assert!(!text().contains("tycho_systems{"));
    }
}
