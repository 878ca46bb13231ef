//! Watch streams (`?watch=true`) in the API server's chunked JSON format.

use super::routes::{encode_query, ApiPath};
use super::{meta_str, rv_of, App, RespBody};
use bytes::Bytes;
use http::{header, Response};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

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

impl App {
    /// Watch by polling the store (50 ms): ADDED/MODIFIED/DELETED events in
    /// the API server's chunked JSON stream format.
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
}
