//! `GET /system/events?name=GUID` (or `?username=U`): the progress events of a system,
//! or of a user's systems, as Server-Sent Events.
//!
//! Each change of a system's phase, readiness, reason or message is one `progress`
//! event whose data is one JSON object (`{"sid", "progress", "phase", "message",
//! "ready", "failed", "reason"}`); the stream ends after one `end` event per system
//! (`{"sid", "end": "ready"|"failed"|"deleted"|"timeout", "reason"}`). The events come
//! from the watch cache as its watches deliver changes (`crate::exec::kube::wait::Follower`).
//!
//! Bounded: at most `--max-event-streams` streams at once (one more is answered 503),
//! each for at most `--events-timeout` seconds (a client's `timeout` may shorten it). A
//! quiet stream sends a comment line every [`KEEPALIVE`], so proxies keep it and a
//! client that went away is noticed. Everything a stream holds (its subscription, the
//! watches of a process without the cache, its slot) belongs to the response body: a
//! client that goes away drops it, and with it all of that. The gauge
//! `tycho_event_streams` counts the streams open.

use super::response::error_response;
use super::AppState;
use crate::exec::kube::wait::Step;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a stream may stay silent before a comment line is sent.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// The longest username accepted (bytes).
const MAX_USERNAME: usize = 1024;

/// The event streams of a server: how many may be open, and for how long.
pub struct EventStreams {
    slots: Arc<Semaphore>,
    /// The longest a stream lasts.
    pub timeout: Duration,
}

impl EventStreams {
    /// At most `max` streams at once, each for at most `timeout`.
    pub fn new(max: usize, timeout: Duration) -> Self {
        EventStreams {
            slots: Arc::new(Semaphore::new(max.max(1))),
            timeout,
        }
    }
}

impl Default for EventStreams {
    fn default() -> Self {
        let limits = super::limits::Limits::default();
        EventStreams::new(limits.max_event_streams, limits.events_timeout)
    }
}

/// An open stream: its slot, counted in `tycho_event_streams` until dropped.
struct Open {
    _slot: OwnedSemaphorePermit,
}

impl Open {
    fn new(slot: OwnedSemaphorePermit) -> Self {
        crate::metrics::event_streams(1);
        Open { _slot: slot }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        crate::metrics::event_streams(-1);
    }
}

/// The query of `GET /system/events` (any other key is refused).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The system's GUID.
    pub name: Option<String>,
    /// The user whose systems are followed (those it has when the stream begins).
    pub username: Option<String>,
    /// Seconds the stream lasts at most (at most the server's `--events-timeout`).
    pub timeout: Option<f64>,
}

fn bad(message: &str, field: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, message, Some(field))
}

/// One Server-Sent Event: `event: <kind>` and its JSON data on one line.
fn frame(kind: &str, data: &impl serde::Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: {kind}\ndata: {json}\n\n"))
}

fn step_frame(step: &Step) -> Bytes {
    match step {
        Step::Progress(p) => frame("progress", p),
        Step::End(e) => frame("end", e),
    }
}

/// The handler of `GET /system/events`.
// Long because: the handler in its order (check, admit under the stream limit, subscribe, stream until an end).
pub async fn events(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return bad(&format!("invalid query: {}", e.body_text()), "query"),
    };
    let name = query.name.filter(|n| !n.is_empty());
    let username = query.username.filter(|u| !u.is_empty());
    match (&name, &username) {
        (Some(_), Some(_)) => return bad("give name or username, not both", "name"),
        (None, None) => return bad("name (a GUID) or username is required", "name"),
        (Some(n), None) if !crate::text::names::is_label_value(n) => {
            return bad(
                &format!(
                    "name {} is not a GUID (a Kubernetes label value)",
                    crate::limits::echo(&format!("{n:?}"))
                ),
                "name",
            )
        }
        (None, Some(u)) if u.len() > MAX_USERNAME => {
            return bad(
                &format!("username is longer than {MAX_USERNAME} bytes"),
                "username",
            )
        }
        _ => {}
    }
    let limit = state.streams.timeout;
    let timeout = match query.timeout {
        None => limit,
        Some(t) if t.is_finite() && t > 0.0 && t <= 86_400.0 => {
            Duration::from_secs_f64(t.min(limit.as_secs_f64()))
        }
        Some(t) => {
            return bad(
                &format!("timeout must be a positive number of seconds (at most 86400), got {t}"),
                "timeout",
            )
        }
    };
    let Ok(slot) = Arc::clone(&state.streams.slots).try_acquire_owned() else {
        let mut busy = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy: too many event streams open (--max-event-streams); retry later",
            None,
        );
        busy.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return busy;
    };
    let open = Open::new(slot);
    let steps = match state.executor.events(name, username, timeout).await {
        Ok(steps) => steps,
        Err(e) if e.kind == crate::error::ErrorKind::Input => {
            let code = if e.message.starts_with("no system") || e.message.contains("has no systems")
            {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_REQUEST
            };
            return error_response(code, &e.message, e.field.as_deref());
        }
        Err(e) => return error_response(StatusCode::BAD_GATEWAY, &e.message, None),
    };
    // The body owns the steps (and through them the follower's subscription and
    // watches) and the slot: when the client goes away, hyper drops it.
    let body = futures::stream::unfold((steps, open), |(mut steps, open)| async move {
        tokio::select! {
            step = steps.next() => step.map(|step| {
                (Ok::<_, std::convert::Infallible>(step_frame(&step)), (steps, open))
            }),
            () = tokio::time::sleep(KEEPALIVE) => {
                Some((Ok(Bytes::from_static(b": keep-alive\n\n")), (steps, open)))
            }
        }
    });
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
