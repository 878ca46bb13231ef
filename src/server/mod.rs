//! `tycho api`: the REST server (axum).
//!
//! - [`routes`]: `POST /system/{start,status,delete,modify}` with the original's
//!   `{status, result, message}` answers, `GET /healthz`, `/readyz`, `/openapi.json`,
//!   `/metrics` (the Prometheus text of [`crate::metrics`], see [`MetricsAccess`]);
//! - [`validation`]: request bodies against the embedded api-schema components;
//! - [`auth`]: bearer token (`TYCHO_API_TOKEN`), the loopback-unless-authenticated rule;
//! - [`openapi`]: the OpenAPI 3 document of exactly these routes;
//! - [`events`]: `GET /system/events`, the Server-Sent Events stream of a system's progress;
//! - [`response`]: the JSON error answer of every part of the server;
//! - [`shutdown`]: SIGTERM/SIGINT → stop accepting, drain, exit;
//! - [`logging`]: stderr logger and the access log (logger `tycho.api`);
//! - the [`crate::exec::Executor`] trait the routes call lives in [`crate::exec`];
//! - [`limits`] (defined in [`crate::limits::http`]): timeouts, connection, worker and start
//!   limits, the memory budget (the `tycho api` flags);
//! - [`budget`]: the memory budget of bodies in flight and compilations;
//! - [`events`]: `GET /system/events`, progress events as Server-Sent Events;
//! - `conn`: the accept loop (connection limits in all and per client address,
//!   header-read and stall timeouts).
//!
//! CPU work (parsing and rendering a start) runs on the worker pool of
//! [`crate::offload`], so the async threads keep answering `/healthz` and other clients.
//!
//! The server keeps no state of its own: every system lives in Kubernetes objects and
//! their labels, so any number of replicas can serve behind one Service.

pub mod auth;
pub mod budget;
mod conn;
pub mod events;
pub mod response;
/// The server's limits live with every other limit, in [`crate::limits::http`].
pub use crate::limits::http as limits;
pub mod logging;
pub mod openapi;
pub mod routes;
pub mod shutdown;
/// The request schema checker, shared with the command line: [`crate::model::schema`].
pub use crate::model::schema as validation;

use crate::error::{Error, ErrorKind, Result};
use crate::exec::Executor;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use serde_json::Value;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Log target of the server: the access log and its messages. In Python (pyo3-log) the
/// records go to the logger `tycho.api` (`::` becomes `.`), under the `tycho` filter.
pub const LOG_TARGET: &str = "tycho::api";

/// Back ends `-b` accepts.
pub const SUPPORTED_BACKPLANES: &[&str] = crate::exec::backplane::SUPPORTED;

/// Shared, read-only state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The compute back end.
    pub executor: Arc<dyn Executor>,
    /// The OpenAPI document served at `/openapi.json`.
    pub openapi: Arc<Value>,
    /// Back-end operations in progress.
    pub operations: Arc<routes::Operations>,
    /// The memory budget of bodies in flight and compilations (`--memory-budget`).
    pub budget: Arc<budget::MemoryBudget>,
    /// The event streams (`--max-event-streams`, `--events-timeout`).
    pub streams: Arc<events::EventStreams>,
}

impl AppState {
    /// State for `executor`; `with_auth` describes the bearer scheme in the OpenAPI document.
    pub fn new(executor: Arc<dyn Executor>, with_auth: bool) -> Self {
        AppState {
            executor,
            openapi: Arc::new(openapi::document(with_auth)),
            operations: Arc::default(),
            budget: Arc::new(budget::MemoryBudget::new(
                limits::Limits::default().memory_budget,
            )),
            streams: Arc::default(),
        }
    }
}

/// Who may read `GET /metrics` (`--metrics`, `TYCHO_API_METRICS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MetricsAccess {
    /// Anyone who can reach the server, token or not (as Prometheus scrapes by default;
    /// the default).
    #[default]
    Open,
    /// Like the other routes: the bearer token when `TYCHO_API_TOKEN` is set.
    Token,
    /// No `/metrics` route (404).
    Off,
}

impl MetricsAccess {
    /// The access named `text` (`open`, `token`, `off`), else an error naming `source`.
    pub fn parse(text: &str, source: &str) -> Result<MetricsAccess> {
        match text.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(MetricsAccess::Open),
            "token" => Ok(MetricsAccess::Token),
            "off" => Ok(MetricsAccess::Off),
            _ => Err(Error::input(format!(
                "{source} must be one of open, token, off; got {}",
                crate::limits::echo(&format!("{text:?}"))
            ))
            .at(source)),
        }
    }
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Host name or address to bind.
    pub host: String,
    /// Port (0 = any free port; the bound address is logged).
    pub port: u16,
    /// The bearer token clients must send (from `TYCHO_API_TOKEN`).
    pub token: Option<String>,
    /// Allow a non-loopback bind without a token.
    pub insecure: bool,
    /// Origins allowed by CORS (none: no CORS headers at all).
    pub cors_origins: Vec<String>,
    /// Longest time a request may take before a 504.
    pub request_timeout: Duration,
    /// Timeouts and limits of connections, workers and starts.
    pub limits: limits::Limits,
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
    /// `--cull-every`: a culling pass every this long (`crate::exec::cull`), with its options
    /// and namespace.
    pub cull: Option<CullLoop>,
}

/// The culling loop of `tycho api --cull-every`.
#[derive(Debug, Clone)]
pub struct CullLoop {
    /// Time between passes.
    pub every: Duration,
    /// What each pass does.
    pub options: crate::exec::cull::CullOptions,
    /// The namespace (None: the executor's rule).
    pub namespace: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            host: "127.0.0.1".into(),
            port: 5000,
            token: None,
            insecure: false,
            cors_origins: Vec::new(),
            request_timeout: Duration::from_secs(150),
            limits: limits::Limits::default(),
            metrics: MetricsAccess::default(),
            cull: None,
        }
    }
}

/// Checks the backplane name like the original's `-b`.
pub fn check_backplane(name: &str) -> Result<()> {
    if SUPPORTED_BACKPLANES.contains(&name) {
        Ok(())
    } else {
        Err(Error::input(format!(
            "unrecognized backplane {name:?}; supported backplanes: {}",
            SUPPORTED_BACKPLANES.join(", ")
        )))
    }
}

async fn timeout_layer(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(r) => r,
        Err(_) => routes::error_response(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "the operation did not finish within {} s; it goes on in the background, check /system/status",
                limit.as_secs()
            ),
            None,
        ),
    }
}

/// Gives axum's bodiless rejections (405) a JSON body, keeping their headers.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if status == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        let allow = response.headers().get(header::ALLOW).cloned();
        let mut out = routes::error_response(status, "method not allowed", None);
        if let Some(a) = allow {
            out.headers_mut().insert(header::ALLOW, a);
        }
        return out;
    }
    response
}

fn cors(origins: &[String]) -> Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        return Ok(Some(layer.allow_origin(AllowOrigin::any())));
    }
    let mut list = Vec::new();
    for o in origins {
        list.push(
            HeaderValue::from_str(o.trim_end_matches('/'))
                .map_err(|_| Error::input(format!("invalid --cors-origin {o:?}")))?,
        );
    }
    Ok(Some(layer.allow_origin(list)))
}

/// Hands the body timeout to the routes (a request extension).
async fn body_timeout(State(limit): State<Duration>, mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(routes::BodyTimeout(limit));
    next.run(request).await
}

/// Counts every answer by route template (the path the router matched; `unmatched` for
/// the 404 of an unknown path: label values stay bounded), method and status code.
async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::metrics::http_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The application: routes plus middleware (outermost first: request metrics, access
/// log, CORS, auth, JSON 405s, timeout, body timeout).
pub fn app(mut state: AppState, options: &ServerOptions) -> Result<Router> {
    let open_paths: Vec<&'static str> = auth::OPEN_PATHS
        .iter()
        .copied()
        .chain((options.metrics == MetricsAccess::Open).then_some(routes::METRICS_PATH))
        .collect();
    let auth_state = auth::AuthState {
        token: options.token.as_deref().map(Arc::from),
        open_paths: Arc::from(open_paths),
    };
    state.operations.set_max_starts(options.limits.max_starts);
    state.budget = Arc::new(budget::MemoryBudget::new(options.limits.memory_budget));
    state.streams = Arc::new(events::EventStreams::new(
        options.limits.max_event_streams,
        options.limits.events_timeout,
    ));
    let mut router = routes::routes(state, options.metrics != MetricsAccess::Off)
        .layer(middleware::from_fn_with_state(
            options.limits.idle_timeout,
            body_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            options.request_timeout,
            timeout_layer,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(
            auth_state,
            auth::require_token,
        ));
    if let Some(layer) = cors(&options.cors_origins)? {
        router = router.layer(layer);
    }
    Ok(router
        .layer(middleware::from_fn(logging::access_log))
        .layer(middleware::from_fn(count_requests)))
}

/// Resolves `host:port` to the addresses to bind.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::input(format!("cannot resolve --host {host:?}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::input(format!(
            "--host {host:?} resolves to no address"
        )));
    }
    Ok(addrs)
}

/// Serves until SIGTERM/SIGINT (blocking; on the process's runtime, `crate::runtime`).
pub fn serve(executor: Arc<dyn Executor>, options: ServerOptions) -> Result<()> {
    let addrs = resolve(&options.host, options.port)?;
    auth::check_bind(&addrs, options.token.is_some(), options.insecure)?;
    if options.token.is_none() {
        log::warn!(target: crate::server::LOG_TARGET, "TYCHO_API_TOKEN is not set: the API answers anyone who can reach {}", addrs[0]);
    }
    crate::offload::set_workers(options.limits.workers);
    let state = AppState::new(executor, options.token.is_some());
    let operations = state.operations.clone();
    let router = app(state, &options)?;
    // The process's runtime, shared with the executor (its client and watch cache).
    crate::runtime::block_on(ErrorKind::Kube, async move {
        let listener = tokio::net::TcpListener::bind(addrs[0])
            .await
            .map_err(|e| Error::input(format!("cannot listen on {}: {e}", addrs[0])))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::input(e.to_string()))?;
        log::info!(target: crate::server::LOG_TARGET, "listening on http://{local}");
        let culler = options.cull.clone().map(|c| {
            log::info!(target: crate::server::LOG_TARGET, "culling every {} s", c.every.as_secs());
            tokio::spawn(crate::exec::cull::run_loop(c.every, c.options, c.namespace))
        });
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::select! {
            _ = conn::accept_loop(listener, router, &options.limits, &graceful) => {}
            _ = shutdown::signal() => {}
        }
        // Not accepting any more: answers in flight, then operations whose requests
        // timed out or went away.
        let drain = tokio::time::timeout(shutdown::DRAIN, async {
            graceful.shutdown().await;
            operations.idle().await;
        });
        tokio::select! {
            drained = drain => if drained.is_err() {
                log::warn!(target: crate::server::LOG_TARGET, "requests still in flight after {} s; exiting", shutdown::DRAIN.as_secs());
            },
            which = shutdown::next_signal() => {
                log::warn!(target: crate::server::LOG_TARGET, "{which} received again: exiting without waiting");
            }
        }
        if let Some(task) = culler {
            task.abort();
        }
        log::info!(target: crate::server::LOG_TARGET, "stopped");
        Ok(())
    })?;
    Ok(())
}
