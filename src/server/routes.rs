//! The routes: `/system/{start,status,delete,modify}`, `/healthz`, `/readyz`,
//! `/openapi.json`, `/metrics`, and the JSON shapes of their answers.
//!
//! A body is read under the memory budget (`super::budget`) before anything else: its
//! bytes as they arrive, then its JSON tree; a start then takes its compilation's share,
//! then one of the `--max-starts` slots, each refused at once (503) when not free.

use super::budget::{MemoryBudget, Reservation};
use super::AppState;
use crate::error::Error;
use crate::exec::Executor;
use crate::model::schema::{validate, Problem};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

/// The path of the metrics route.
pub const METRICS_PATH: &str = "/metrics";

/// Largest request body accepted (bytes).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Bodies larger than this are parsed and checked on the worker pool, not on the async
/// threads (smaller ones take microseconds).
const INLINE_PARSE_LIMIT: usize = 64 * 1024;

/// How long a request body may take to arrive (a request extension set by the server;
/// absent: no limit of its own, the request timeout applies).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

/// `{status, result, message}` with HTTP `code`; status "error", result `{"error": message}`
/// (plus `"field"` when one field is at fault).
pub fn error_response(code: StatusCode, message: &str, field: Option<&str>) -> Response {
    let mut result = json!({"error": message});
    if let Some(f) = field {
        result["field"] = json!(f);
    }
    (
        code,
        Json(json!({"status": "error", "result": result, "message": message})),
    )
        .into_response()
}

fn success(result: Value, message: String) -> Response {
    Json(json!({"status": "success", "result": result, "message": message})).into_response()
}

/// An operation failed: HTTP 200 with status "error", as the original answers (TychoClient
/// raises TychoException with the message from it); `result.field` names the field at
/// fault when the error knows it.
fn failure(e: &Error) -> Response {
    // A policy refusal (`tycho.policy`) is the request's fault, said as such.
    let code = if e.kind == crate::error::ErrorKind::Policy {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    error_response(code, &e.message, e.field.as_deref())
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// 503 with `Retry-After: 1`: the server is as busy as it may be (`why` says how).
fn busy(why: &str) -> Response {
    let mut busy = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("the server is busy: {why}; retry later"),
        None,
    );
    busy.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    busy
}

/// The 503 of a request the memory budget has no room for now.
fn over_budget(budget: &MemoryBudget) -> Response {
    busy(&format!(
        "requests in flight take its memory budget ({}, --memory-budget)",
        crate::limits::size_text(budget.total())
    ))
}

/// A body read whole, with the part of the memory budget it holds.
struct ReadBody {
    value: Value,
    /// What its JSON tree may take ([`super::budget::json_tree_cost`]).
    tree: u64,
    /// Its share of the budget: the bytes, then the JSON tree (a start grows it to its
    /// compilation's estimate).
    reservation: Reservation,
}

/// Reads the bytes of a body of at most [`BODY_LIMIT`], taking them from `budget` as
/// they arrive (a slow body holds only what it has sent). The error is the response.
async fn read_bytes(
    body: axum::body::Body,
    declared: Option<u64>,
    budget: &MemoryBudget,
    reservation: &mut Reservation,
) -> Result<Vec<u8>, Response> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            error_response(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
                None,
            )
        })?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        let need = bytes.len() + chunk.len();
        if need > BODY_LIMIT {
            return Err(too_large());
        }
        if need > bytes.capacity() {
            // Doubling, but never past the declared length or the limit.
            let mut cap = (bytes.capacity() * 2).clamp(16 * 1024, BODY_LIMIT);
            if let Some(d) = declared {
                cap = cap.min(d as usize);
            }
            let cap = cap.max(need);
            if !reservation.grow_to(cap as u64) {
                return Err(over_budget(budget));
            }
            bytes.reserve_exact(cap - bytes.len());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn too_large() -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the request body is larger than {BODY_LIMIT} bytes"),
        None,
    )
}

/// Reads the JSON body of `request` and checks it against `component`, holding its
/// bytes and then its JSON tree against `budget`; the error is the response to send
/// (400, 408, 413, 415 or 503, JSON).
async fn read_body(
    request: Request,
    component: &str,
    budget: &MemoryBudget,
) -> Result<ReadBody, Response> {
    if !is_json(request.headers()) {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be JSON sent with Content-Type: application/json",
            None,
        ));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let limit = request.extensions().get::<BodyTimeout>().map(|t| t.0);
    let mut reservation = budget.reservation();
    let reading = read_bytes(request.into_body(), declared, budget, &mut reservation);
    let read = match limit {
        Some(limit) => match tokio::time::timeout(limit, reading).await {
            Ok(r) => r,
            Err(_) => {
                return Err(error_response(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the request body did not arrive within {} s",
                        limit.as_secs_f64()
                    ),
                    None,
                ))
            }
        },
        None => reading.await,
    };
    let bytes = read?;
    // The bytes and their JSON tree, both alive while it is built.
    let tree = super::budget::json_tree_cost(&bytes);
    if !reservation.grow_to(bytes.len() as u64 + tree) {
        return Err(over_budget(budget));
    }
    let component_name = component.to_string();
    let checked = if bytes.len() <= INLINE_PARSE_LIMIT {
        parse_and_check(&bytes, &component_name)
    } else {
        crate::offload::run(
            crate::error::ErrorKind::Input,
            "reading the request",
            move || parse_and_check(&bytes, &component_name),
        )
        .await
        .unwrap_or_else(|e| {
            Err(BadBody {
                message: e.message,
                field: e.field,
            })
        })
    };
    checked
        .map(|value| ReadBody {
            value,
            tree,
            reservation,
        })
        .map_err(|bad| error_response(StatusCode::BAD_REQUEST, &bad.message, bad.field.as_deref()))
}

/// Why a body is refused (400): the message and the field at fault, if one is.
struct BadBody {
    message: String,
    field: Option<String>,
}

/// Parses `bytes` as JSON and checks it against `component`.
fn parse_and_check(bytes: &[u8], component: &str) -> Result<Value, BadBody> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| json_error(bytes, &e))?;
    if let Err(problems) = validate(component, &value) {
        let first: &Problem = &problems[0];
        let all: Vec<String> = problems.iter().map(Problem::describe).collect();
        return Err(BadBody {
            message: format!("invalid {component}: {}", all.join("; ")),
            field: Some(first.field.clone()),
        });
    }
    Ok(value)
}

/// A JSON syntax error, naming the field where it happened (numbers out of range,
/// nesting deeper than the parser's limit, ...).
fn json_error(bytes: &[u8], e: &serde_json::Error) -> BadBody {
    let offset = crate::model::schema::offset_of(bytes, e.line(), e.column());
    let field = crate::model::schema::field_at(bytes, offset);
    let cause = e.to_string();
    let cause = if cause.starts_with("recursion limit exceeded") {
        cause.replacen(
            "recursion limit exceeded",
            "nested deeper than 128 levels",
            1,
        )
    } else {
        cause
    };
    match field {
        Some(field) if !field.is_empty() => BadBody {
            message: format!("the request body is not valid JSON: field '{field}': {cause}"),
            field: Some(field),
        },
        _ => BadBody {
            message: format!("the request body is not valid JSON: {cause}"),
            field: None,
        },
    }
}

/// Back-end operations running, so shutdown can let them finish; and the starts in
/// progress, at most `max_starts` (0: no limit).
#[derive(Default)]
pub struct Operations {
    running: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
    starts: Arc<std::sync::atomic::AtomicUsize>,
    max_starts: std::sync::atomic::AtomicUsize,
}

/// A start in progress (released on drop, when the operation ends).
pub struct StartSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for StartSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Operations {
    /// Sets how many starts may be in progress at once (0: no limit).
    pub fn set_max_starts(&self, n: usize) {
        self.max_starts
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// A slot for one more start, or None when `max_starts` are in progress.
    pub fn try_start(&self) -> Option<StartSlot> {
        use std::sync::atomic::Ordering;
        let max = self.max_starts.load(Ordering::SeqCst);
        self.starts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| StartSlot(self.starts.clone()))
    }

    /// Resolves when no operation runs.
    pub async fn idle(&self) {
        use std::sync::atomic::Ordering;
        loop {
            let notified = self.done.notified();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct Running(Arc<Operations>);

impl Drop for Running {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.done.notify_waiters();
        }
    }
}

/// Runs a back-end operation in its own task, so a client that goes away or a request
/// timeout never cancels a start or delete half-way (the operation finishes or rolls
/// back; shutdown waits for it).
async fn detached<T, F>(
    state: &AppState,
    operation: crate::metrics::Operation,
    op: F,
) -> crate::Result<T>
where
    T: Send + 'static,
    F: for<'a> FnOnce(&'a dyn Executor) -> crate::exec::BoxFut<'a, T> + Send + 'static,
{
    state
        .operations
        .running
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let guard = Running(state.operations.clone());
    let executor = state.executor.clone();
    let task = tokio::spawn(async move {
        let _guard = guard;
        let result = op(executor.as_ref()).await;
        crate::metrics::operation(operation, &result);
        result
    });
    match task.await {
        Ok(r) => r,
        Err(e) => {
            let result = Err(Error::internal(format!(
                "the operation did not complete ({e})"
            )));
            crate::metrics::operation::<T, _>(operation, &result);
            result
        }
    }
}

async fn start(State(state): State<AppState>, request: Request) -> Response {
    // The body is read before a start slot is taken: a client that sends it slowly
    // holds a connection and what it has sent, not one of the --max-starts.
    let ReadBody {
        value: body,
        tree,
        mut reservation,
    } = match read_body(request, "System", &state.budget).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let caps = crate::model::ModelCaps::from_env();
    if let Err(e) = crate::model::caps::check(body.get("system").unwrap_or(&Value::Null), &caps) {
        return error_response(StatusCode::BAD_REQUEST, &e.message, e.field.as_deref());
    }
    // Its compilation's share of the memory budget, taken at once or refused at once.
    let cost = super::budget::start_cost(tree, &body);
    if cost > state.budget.total() {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "this start would take about {} of memory to compile (for its JSON, and for its settings once per service), more than the server's whole memory budget ({}, --memory-budget)",
                crate::limits::size_text(cost),
                crate::limits::size_text(state.budget.total())
            ),
            None,
        );
    }
    if !reservation.grow_to(cost) {
        return over_budget(&state.budget);
    }
    let Some(slot) = state.operations.try_start() else {
        return busy("too many starts in progress (--max-starts)");
    };
    // The slot lives as long as the operation, which may outlive the request.
    let started = detached(&state, crate::metrics::Operation::Start, move |x| {
        Box::pin(async move {
            let _slot = slot;
            let _reservation = reservation;
            x.start(body).await
        })
    });
    match started.await {
        Ok(result) => {
            let name = result
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            log::debug!(target: crate::server::LOG_TARGET, "started system {}", loggable(&name));
            success(result, format!("Started system {name}"))
        }
        Err(e) => {
            log::warn!(target: crate::server::LOG_TARGET, "start failed: {}", loggable(&e.message));
            failure(&e)
        }
    }
}

/// Text of a request for the log: control characters escaped (no forged log lines),
/// at most 300 characters.
pub fn loggable(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i >= 300 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn opt_string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

async fn status(State(state): State<AppState>, request: Request) -> Response {
    let ReadBody {
        value: body,
        reservation,
        ..
    } = match read_body(request, "StatusRequest", &state.budget).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = opt_string(&body, "name");
    let username = opt_string(&body, "username");
    // Opt-in (not the original's): each row also says why it is not ready.
    let reasons = body.get("reasons") == Some(&Value::Bool(true));
    // The original prints Python's None for a missing name.
    let shown = name.clone().unwrap_or_else(|| "None".into());
    let all = name.is_none() && username.is_none();
    drop((body, reservation));
    match detached(&state, crate::metrics::Operation::Status, move |x| {
        x.status(name, username, reasons)
    })
    .await
    {
        Ok(result) => {
            if all {
                if let Value::Array(rows) = &result {
                    crate::metrics::systems(rows);
                }
            }
            success(result, format!("Get status for system {shown}"))
        }
        Err(e) => {
            log::warn!(target: crate::server::LOG_TARGET, "status failed: {}", loggable(&e.message));
            failure(&e)
        }
    }
}

async fn delete(State(state): State<AppState>, request: Request) -> Response {
    let ReadBody {
        value: body,
        reservation,
        ..
    } = match read_body(request, "DeleteRequest", &state.budget).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = opt_string(&body, "name").unwrap_or_default();
    drop((body, reservation));
    let shown = name.clone();
    match detached(&state, crate::metrics::Operation::Delete, move |x| {
        x.delete(name)
    })
    .await
    {
        Ok(result) => {
            log::debug!(target: crate::server::LOG_TARGET, "deleted system {}", loggable(&shown));
            success(result, format!("Deleted system {shown}"))
        }
        Err(e) => {
            log::warn!(target: crate::server::LOG_TARGET, "delete failed: {}", loggable(&e.message));
            failure(&e)
        }
    }
}

async fn modify(State(state): State<AppState>, request: Request) -> Response {
    let ReadBody {
        value: body,
        reservation,
        ..
    } = match read_body(request, "ModifyRequest", &state.budget).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match detached(&state, crate::metrics::Operation::Modify, move |x| {
        Box::pin(async move {
            let _reservation = reservation;
            x.modify(body).await
        })
    })
    .await
    {
        Ok(result) => success(result, "Modified the system".into()),
        Err(e) => {
            log::warn!(target: crate::server::LOG_TARGET, "modify failed: {}", loggable(&e.message));
            failure(&e)
        }
    }
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let check = state.executor.ready();
    match tokio::time::timeout(std::time::Duration::from_secs(5), check).await {
        Ok(Ok(())) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "message": e.message})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "message": "the Kubernetes API server did not answer within 5 s"})),
        )
            .into_response(),
    }
}

/// The process's metrics in the OpenMetrics text format (src/metrics.rs).
async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::text(),
    )
        .into_response()
}

async fn openapi(State(state): State<AppState>) -> Response {
    Json(state.openapi.as_ref().clone()).into_response()
}

async fn not_found(request: Request) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        &format!("no such endpoint: {}", request.uri().path()),
        None,
    )
}

/// The routes, without middleware; `/metrics` when `with_metrics`.
pub fn routes(state: AppState, with_metrics: bool) -> Router {
    let router = if with_metrics {
        Router::new().route(METRICS_PATH, get(metrics))
    } else {
        Router::new()
    };
    router
        .route("/system/start", post(start))
        .route("/system/status", post(status))
        .route("/system/delete", post(delete))
        .route("/system/modify", post(modify))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::loggable;

    #[test]
    fn loggable_escapes_and_bounds() {
        assert_eq!(loggable("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(loggable(&"x".repeat(400)).chars().count(), 301);
    }
}
