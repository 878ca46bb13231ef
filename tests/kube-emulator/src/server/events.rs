//! The event log behind watches: every successful write through
//! `App::send` becomes an event (ADDED, MODIFIED, DELETED) with its
//! resourceVersion, kept in a bounded window for watches resuming from a
//! version, and broadcast to the open watches.
//!
//! A mirror of the last state of every object gives MODIFIED events their
//! previous state (a watch with a label selector turns a change of labels
//! into ADDED or DELETED) and finds what a delete removed: the object, the
//! objects of a deletecollection, and the dependents the store's
//! ownerReferences cascade removed with them.

use super::routes::{parse_api_path, ApiPath};
use super::{failure, meta_str, rv_of, App, RespBody};
use crate::store::StoreResponse;
use bytes::Bytes;
use http::{Method, Response};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Events kept for watches resuming from a resourceVersion (default).
pub const DEFAULT_WINDOW: usize = 10_000;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One write as watches see it.
#[derive(Debug)]
pub(super) struct Event {
    pub(super) rv: u64,
    /// `group/version/resource` of the object's collection.
    pub(super) collection: String,
    pub(super) namespace: String,
    pub(super) kind: EventType,
    /// The new state (for a delete: the last state, with the delete's
    /// resourceVersion).
    pub(super) object: Arc<Value>,
    /// The state before (MODIFIED only, when known).
    pub(super) prev: Option<Arc<Value>>,
    /// When watches may deliver it (`/__emulator/watch-delay`).
    pub(super) visible_at: Instant,
}

/// `(collection, namespace, name)`.
type Key = (String, String, String);

struct LogInner {
    events: VecDeque<Arc<Event>>,
    /// Watches from a resourceVersion older than this answer 410 Gone.
    floor: u64,
    window: usize,
    mirror: HashMap<Key, Arc<Value>>,
    /// Owner uid → the mirrored objects whose ownerReferences name it.
    dependents: HashMap<String, HashSet<Key>>,
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The log, the mirror and the broadcast channel to open watches.
pub(super) struct EventLog {
    inner: Mutex<LogInner>,
    tx: broadcast::Sender<Arc<Event>>,
}

/// Where a watch starts.
pub(super) enum Resume {
    /// Events after the version, from the log; then live.
    Events(Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>),
    /// The version is older than the log's window (410 Gone).
    Expired { floor: u64 },
}

pub(super) fn collection_key(api: &ApiPath) -> String {
    format!("{}/{}/{}", api.group, api.version, api.resource)
}

impl EventLog {
    pub(super) fn new(window: usize, floor: u64) -> EventLog {
        let (tx, _) = broadcast::channel(16_384);
        EventLog {
            inner: Mutex::new(LogInner {
                events: VecDeque::new(),
                floor,
                window: window.max(1),
                mirror: HashMap::new(),
                dependents: HashMap::new(),
            }),
            tx,
        }
    }

    /// Subscribe to live events; with `since`, also the logged events after
    /// it (atomically: no event falls between the two).
    pub(super) fn resume(&self, since: Option<u64>) -> Resume {
        let inner = self.inner.lock().unwrap();
        let rx = self.tx.subscribe();
        match since {
            Some(rv) if rv < inner.floor => Resume::Expired { floor: inner.floor },
            Some(rv) => Resume::Events(
                inner.events.iter().filter(|e| e.rv > rv).cloned().collect(),
                rx,
            ),
            None => Resume::Events(Vec::new(), rx),
        }
    }

    /// Every version up to `rv` answers 410 on watch from now on.
    pub(super) fn compact(&self, rv: u64) {
        let mut inner = self.inner.lock().unwrap();
        inner.events.clear();
        inner.floor = inner.floor.max(rv);
    }

    /// The oldest version a watch may resume from.
    pub(super) fn floor(&self) -> u64 {
        self.inner.lock().unwrap().floor
    }

    fn push(&self, inner: &mut LogInner, ev: Event) {
        let ev = Arc::new(ev);
        let key = (
            ev.collection.clone(),
            ev.namespace.clone(),
            meta_str(&ev.object, "name").unwrap_or("").to_string(),
        );
        let old = if ev.kind == EventType::Deleted {
            inner.mirror.remove(&key)
        } else {
            inner.mirror.insert(key.clone(), Arc::clone(&ev.object))
        };
        for uid in old.as_deref().map(owner_uids).unwrap_or_default() {
            if let Some(set) = inner.dependents.get_mut(&uid) {
                set.remove(&key);
                if set.is_empty() {
                    inner.dependents.remove(&uid);
                }
            }
        }
        if ev.kind != EventType::Deleted {
            for uid in owner_uids(&ev.object) {
                inner.dependents.entry(uid).or_default().insert(key.clone());
            }
        }
        inner.events.push_back(Arc::clone(&ev));
        while inner.events.len() > inner.window {
            if let Some(old) = inner.events.pop_front() {
                inner.floor = inner.floor.max(old.rv);
            }
        }
        // No receiver is not an error: nobody watches.
        let _ = self.tx.send(ev);
    }
}

impl App {
    /// A write (or read) to the store; successful writes become events.
    /// Every write of the emulator goes through here.
    pub(super) async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> StoreResponse {
        let r = self
            .store
            .send(method.clone(), path_and_query, content_type, body)
            .await;
        if method != Method::GET && r.ok() {
            let path = path_and_query.split('?').next().unwrap_or("");
            if let Some(api) = parse_api_path(path) {
                self.record(&method, &api, &r).await;
            }
        }
        r
    }

    fn visible_at(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.watch_delay_ms.load(Ordering::Relaxed))
    }

    async fn record(&self, method: &Method, api: &ApiPath, r: &StoreResponse) {
        let collection = collection_key(api);
        if *method != Method::DELETE {
            if rv_of(&r.body) == 0 || meta_str(&r.body, "name").is_none() {
                return;
            }
            let ns = meta_str(&r.body, "namespace").unwrap_or("").to_string();
            let key = (
                collection.clone(),
                ns.clone(),
                meta_str(&r.body, "name").unwrap_or("").to_string(),
            );
            let mut inner = self.events.inner.lock().unwrap();
            let prev = inner.mirror.get(&key).cloned();
            if prev.as_ref().is_some_and(|p| rv_of(p) >= rv_of(&r.body)) {
                return; // already recorded
            }
            let ev = Event {
                rv: rv_of(&r.body),
                collection,
                namespace: ns,
                kind: if prev.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                },
                object: Arc::new(r.body.clone()),
                prev,
                visible_at: self.visible_at(),
            };
            self.events.push(&mut inner, ev);
            return;
        }
        // Deletes: the object (or the collection's vanished objects), then
        // whatever the ownerReferences cascade took with them.
        let mut gone: Vec<Key> = Vec::new();
        if let Some(name) = &api.name {
            gone.push((
                collection.clone(),
                api.namespace.clone().unwrap_or_default(),
                name.clone(),
            ));
        } else {
            let listed = self.store.get(&api.collection_path()).await;
            let present: HashSet<(String, String)> = listed
                .body
                .get("items")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|o| {
                            (
                                meta_str(o, "namespace").unwrap_or("").to_string(),
                                meta_str(o, "name").unwrap_or("").to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let inner = self.events.inner.lock().unwrap();
            gone.extend(
                inner
                    .mirror
                    .keys()
                    .filter(|(c, ns, name)| {
                        *c == collection
                            && api.namespace.as_ref().is_none_or(|want| want == ns)
                            && !present.contains(&(ns.clone(), name.clone()))
                    })
                    .cloned(),
            );
        }
        let mut uids: HashSet<String> = HashSet::new();
        let mut done: HashSet<Key> = HashSet::new();
        while !gone.is_empty() {
            for key in std::mem::take(&mut gone) {
                if !done.insert(key.clone()) {
                    continue;
                }
                let mut inner = self.events.inner.lock().unwrap();
                let Some(last) = inner.mirror.get(&key).cloned() else {
                    continue;
                };
                if let Some(uid) = meta_str(&last, "uid") {
                    uids.insert(uid.to_string());
                }
                let rv = self.store.allocate_rv();
                let mut obj = (*last).clone();
                obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                let ev = Event {
                    rv,
                    collection: key.0.clone(),
                    namespace: key.1.clone(),
                    kind: EventType::Deleted,
                    object: Arc::new(obj),
                    prev: Some(last),
                    visible_at: self.visible_at(),
                };
                self.events.push(&mut inner, ev);
            }
            // Dependents of what went, if the store no longer has them.
            let candidates: Vec<Key> = {
                let inner = self.events.inner.lock().unwrap();
                let mut c: Vec<Key> = std::mem::take(&mut uids)
                    .iter()
                    .filter_map(|u| inner.dependents.get(u))
                    .flatten()
                    .filter(|k| !done.contains(*k))
                    .cloned()
                    .collect();
                c.sort();
                c.dedup();
                c
            };
            for key in candidates {
                if !self.store.get(&object_path(&key)).await.ok() {
                    gone.push(key);
                }
            }
        }
    }

    /// A list at an exact version older than the event window: 410 Expired
    /// (the API server's answer for a compacted version).
    pub(super) fn expired_list(
        &self,
        rv: Option<&str>,
        rv_match: Option<&str>,
    ) -> Option<Response<RespBody>> {
        if rv_match != Some("Exact") {
            return None;
        }
        let n: u64 = rv?.parse().ok()?;
        let floor = self.events.floor();
        (n < floor).then(|| {
            failure(
                410,
                "Expired",
                &format!("too old resource version: {n} ({floor})"),
            )
        })
    }

    /// The store was emptied: every object known is deleted.
    pub(super) fn record_reset(&self) {
        let mut inner = self.events.inner.lock().unwrap();
        let mut keys: Vec<Key> = inner.mirror.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let Some(last) = inner.mirror.get(&key).cloned() else {
                continue;
            };
            let rv = self.store.allocate_rv();
            let mut obj = (*last).clone();
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            let ev = Event {
                rv,
                collection: key.0.clone(),
                namespace: key.1.clone(),
                kind: EventType::Deleted,
                object: Arc::new(obj),
                prev: Some(last),
                visible_at: self.visible_at(),
            };
            self.events.push(&mut inner, ev);
        }
    }
}

/// The URL of a mirrored object.
fn object_path(key: &Key) -> String {
    let (collection, ns, name) = key;
    let mut parts = collection.splitn(3, '/');
    let (g, v, res) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let prefix = if g.is_empty() {
        format!("/api/{v}")
    } else {
        format!("/apis/{g}/{v}")
    };
    if ns.is_empty() {
        format!("{prefix}/{res}/{name}")
    } else {
        format!("{prefix}/namespaces/{ns}/{res}/{name}")
    }
}
