//! Watch streams (`?watch=true`) as the API server serves them, in its
//! chunked JSON format (one event object a line):
//!
//! - `resourceVersion=N`: the events after N from the event log, then live;
//!   N older than the log's window (or `/__emulator/compact`) answers an
//!   ERROR event with a 410 Expired Status, as the API server does.
//! - no `resourceVersion` (or `0`): ADDED for the current state, then live;
//!   with `sendInitialEvents=true` (which needs
//!   `resourceVersionMatch=NotOlderThan` and `allowWatchBookmarks=true`)
//!   the initial events end with a BOOKMARK annotated
//!   `k8s.io/initial-events-end: "true"`.
//! - label and field selectors apply to the old and the new state: an
//!   object entering the selection is ADDED, one leaving it DELETED.
//! - `allowWatchBookmarks=true`: periodic BOOKMARK events.
//! - `timeoutSeconds`; a closed client stream ends the task at once; the
//!   control API can delay events (`watch-delay`) and end every stream
//!   (`watch-cut`).

use super::events::{collection_key, EventType, Resume};
use super::routes::{encode_query, ApiPath};
use super::{json_response, meta_str, rv_of, App, RespBody};
use crate::store::status_body;
use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use kube4::core::SelectorExt;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

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

/// Counts an open watch for `/__emulator/watches` until dropped.
struct OpenWatch(Arc<App>);
impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One field selector term (`a.b=c`, `a.b==c`, `a.b!=c`).
struct FieldTerm {
    path: String,
    value: String,
    negate: bool,
}

fn parse_field_selector(s: &str) -> Result<Vec<FieldTerm>, String> {
    let mut terms = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (path, value, negate) = if let Some((p, v)) = part.split_once("!=") {
            (p, v, true)
        } else if let Some((p, v)) = part.split_once("==") {
            (p, v, false)
        } else if let Some((p, v)) = part.split_once('=') {
            (p, v, false)
        } else {
            return Err(format!(
                "invalid selector: '{part}'; can't understand '{part}'"
            ));
        };
        let pointer = format!("/{}", path.trim().replace('.', "/"));
        terms.push(FieldTerm {
            path: pointer,
            value: value.trim().to_string(),
            negate,
        });
    }
    Ok(terms)
}

fn field_value(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// What a watch selects.
struct Filter {
    collection: String,
    namespace: Option<String>,
    labels: Option<kube4::core::Selector>,
    fields: Vec<FieldTerm>,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(sel) = &self.labels {
            let labels: BTreeMap<String, String> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if !sel.matches(&labels) {
                return false;
            }
        }
        self.fields
            .iter()
            .all(|t| (field_value(obj, &t.path) == t.value) != t.negate)
    }
}

fn line(v: &Value) -> Bytes {
    Bytes::from(format!("{v}\n"))
}

/// An ERROR watch event carrying a Status.
fn error_event(code: u16, reason: &str, message: &str) -> Bytes {
    line(&json!({"type": "ERROR", "object": status_body(code, reason, message)}))
}

impl App {
    pub(super) fn watch(
        self: &Arc<Self>,
        api: &ApiPath,
        params: &[(String, String)],
    ) -> Response<RespBody> {
        let get = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.clone())
        };
        let flag = |k: &str| matches!(get(k).as_deref(), Some("true") | Some("1"));
        let bookmarks = flag("allowWatchBookmarks");
        let send_initial = flag("sendInitialEvents");
        if send_initial {
            let mut problems = Vec::new();
            if get("resourceVersionMatch").as_deref() != Some("NotOlderThan") {
                problems.push("resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan");
            }
            if !bookmarks {
                problems.push("allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true");
            }
            if !problems.is_empty() {
                let body = status_body(
                    422,
                    "Invalid",
                    &format!(
                        "ListOptions.meta.k8s.io \"\" is invalid: {}",
                        problems.join(", ")
                    ),
                );
                return json_response(StatusCode::UNPROCESSABLE_ENTITY, &body);
            }
        }
        let labels = match get("labelSelector").filter(|s| !s.is_empty()) {
            Some(s) => match kube_fake_client::label_selector::parse_label_selector(&s) {
                Ok(sel) => Some(sel),
                Err(e) => {
                    let body = status_body(
                        400,
                        "BadRequest",
                        &format!("unable to parse requirement: {e}"),
                    );
                    return json_response(StatusCode::BAD_REQUEST, &body);
                }
            },
            None => None,
        };
        let fields = match parse_field_selector(&get("fieldSelector").unwrap_or_default()) {
            Ok(f) => f,
            Err(e) => {
                return json_response(StatusCode::BAD_REQUEST, &status_body(400, "BadRequest", &e))
            }
        };
        let filter = Filter {
            collection: collection_key(api),
            namespace: api.namespace.clone(),
            labels,
            fields,
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
        // "" and "0": the current state first. With sendInitialEvents, N means
        // "not older than N": also the current state.
        let since: Option<u64> = match get("resourceVersion").as_deref() {
            None | Some("") | Some("0") => None,
            Some(_) if send_initial => None,
            Some(v) => match v.parse() {
                Ok(n) => Some(n),
                Err(_) => {
                    let body =
                        status_body(400, "BadRequest", &format!("invalid resource version: {v}"));
                    return json_response(StatusCode::BAD_REQUEST, &body);
                }
            },
        };
        let timeout = get("timeoutSeconds")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1800)
            .min(3600);
        let bookmark_kind = json!({"kind": api.kind, "apiVersion": api.api_version()});

        let (tx, rx) = mpsc::channel::<Bytes>(64);
        // Counted and subscribed to cuts before the response leaves.
        let mut cut = self.cut.subscribe();
        self.open_watches.fetch_add(1, Ordering::SeqCst);
        let guard = OpenWatch(Arc::clone(self));
        let app = Arc::clone(self);
        tokio::spawn(async move {
            let _guard = guard;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
            let end = async {
                tokio::select! {
                    _ = cut.recv() => {},
                    _ = tx.closed() => {},
                    _ = tokio::time::sleep_until(deadline) => {},
                }
            };
            tokio::select! {
                _ = end => {},
                _ = app.serve_watch(&tx, filter, list_path, since, send_initial, bookmarks, bookmark_kind) => {},
            }
        });
        Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/json")
            .body(ChannelBody { rx }.boxed())
            .expect("response")
    }

    /// The body of a watch: runs until the stream ends (the caller stops it
    /// on timeout, cut or a closed client).
    #[allow(clippy::too_many_arguments)]
    async fn serve_watch(
        &self,
        tx: &mpsc::Sender<Bytes>,
        filter: Filter,
        list_path: String,
        since: Option<u64>,
        send_initial: bool,
        bookmarks: bool,
        bookmark_kind: Value,
    ) {
        let (mut backlog, mut rx, mut last) = match since {
            Some(rv) => {
                let current = self.store.current_rv();
                if rv > current {
                    let msg = format!("Too large resource version: {rv}, current: {current}");
                    let _ = tx.send(error_event(504, "Timeout", &msg)).await;
                    return;
                }
                match self.events.resume(Some(rv)) {
                    Resume::Expired { floor } => {
                        let msg = format!("too old resource version: {rv} ({floor})");
                        let _ = tx.send(error_event(410, "Expired", &msg)).await;
                        return;
                    }
                    Resume::Events(backlog, rx) => (VecDeque::from(backlog), rx, rv),
                }
            }
            None => {
                // Subscribe, note the version, then list: every event after
                // the list's version is in the subscription.
                let Resume::Events(_, rx) = self.events.resume(None) else {
                    return;
                };
                let before = self.store.current_rv();
                let r = self.store.get(&list_path).await;
                if !r.ok() {
                    let _ = tx
                        .send(line(&json!({"type": "ERROR", "object": r.body})))
                        .await;
                    return;
                }
                let mut items = r
                    .body
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                items.sort_by(|a, b| {
                    (meta_str(a, "namespace"), meta_str(a, "name"))
                        .cmp(&(meta_str(b, "namespace"), meta_str(b, "name")))
                });
                let mut list_rv = before;
                for item in items {
                    list_rv = list_rv.max(rv_of(&item));
                    if tx
                        .send(line(&json!({"type": "ADDED", "object": item})))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if send_initial {
                    let mut bm = bookmark_kind.clone();
                    bm["metadata"] = json!({
                        "resourceVersion": list_rv.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    });
                    if tx
                        .send(line(&json!({"type": "BOOKMARK", "object": bm})))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                (VecDeque::new(), rx, list_rv)
            }
        };
        let period = Duration::from_millis(self.bookmark_interval_ms.max(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            let ev = if let Some(ev) = backlog.pop_front() {
                ev
            } else {
                tokio::select! {
                    r = rx.recv() => match r {
                        Ok(ev) => ev,
                        // Too slow a reader: end the stream (the client
                        // resumes from its last version), as the API server does.
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tick.tick(), if bookmarks => {
                        let mut bm = bookmark_kind.clone();
                        bm["metadata"] = json!({"resourceVersion": last.to_string()});
                        if tx.send(line(&json!({"type": "BOOKMARK", "object": bm}))).await.is_err() {
                            return;
                        }
                        continue;
                    }
                }
            };
            if ev.rv <= last {
                continue;
            }
            last = ev.rv;
            if ev.collection != filter.collection
                || filter
                    .namespace
                    .as_ref()
                    .is_some_and(|ns| *ns != ev.namespace)
            {
                continue;
            }
            let now_in = ev.kind != EventType::Deleted && filter.matches(&ev.object);
            let was_in = match ev.kind {
                EventType::Added => false,
                EventType::Modified => ev.prev.as_ref().is_some_and(|p| filter.matches(p)),
                EventType::Deleted => ev.prev.as_ref().is_some_and(|p| filter.matches(p)),
            };
            let (ty, obj) = match (was_in, now_in) {
                (false, true) => ("ADDED", (*ev.object).clone()),
                (true, true) => ("MODIFIED", (*ev.object).clone()),
                (true, false) => {
                    // The previous state with this event's version.
                    let mut o = ev
                        .prev
                        .as_deref()
                        .cloned()
                        .unwrap_or_else(|| (*ev.object).clone());
                    o["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
                    ("DELETED", o)
                }
                (false, false) => continue,
            };
            tokio::time::sleep_until(ev.visible_at.into()).await;
            if tx
                .send(line(&json!({"type": ty, "object": obj})))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}
