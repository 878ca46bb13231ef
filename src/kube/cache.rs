//! The watch cache: what the executor reads, kept in memory by watches.
//!
//! One per process and namespace, started lazily by the first operation in the
//! namespace of a long-lived process (a Python process that imports tycho, `tycho api`;
//! never for one-shot command-line commands, never when `TYCHO_KUBE_CACHE=off`), made
//! again after `fork()` (the parent's watch tasks belong to the parent's runtime: they
//! are left alone, never dropped, in the child).
//!
//! * Reflectors over tycho's own objects, labelled `executor=tycho`: Deployments,
//!   Services, NetworkPolicies and Pods. `status` reads these.
//! * Reflectors over single names that start looks up: the Ambassador Service, each
//!   `<app>-env` Secret, each claim (made on the first lookup of the name; at most
//!   [`MAX_NAMED`] per namespace, beyond that lookups go to the API server).
//!
//! Each reflector is kube-rs's [`watcher`] (list, then watch from the list's
//! resourceVersion; a dropped stream resumes from the last resourceVersion seen; `410
//! Gone` relists; errors back off) feeding a store of ours, so the executor's writes
//! can be applied too:
//!
//! * Until a reflector has listed once, and after any watch error until its next event,
//!   it is not *fresh*: readers go to the API server, as without the cache.
//! * Read your own writes: what start creates is put in the store's overlay from the
//!   create's response (until the watch delivers that resourceVersion of the object, or
//!   a newer one, or the object's deletion); what delete removes is hidden (by uid)
//!   until the watch delivers its deletion. Overlays and hidden entries older than
//!   [`OVERLAY_TTL`] are dropped, and a relist drops those older than it.
//! * Objects deleted while watched are remembered by uid for [`GONE_TTL`]: start's last
//!   check ("was my Deployment deleted meanwhile?") reads that.

use super::{Kind, GUID_LABEL, LOG_TARGET};
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Named reflectors per namespace (Ambassador, `<app>-env` Secrets, claims).
pub(crate) const MAX_NAMED: usize = 256;
/// Namespaces with a cache per process (more go to the API server).
const MAX_NAMESPACES: usize = 16;
/// How long a write's overlay (or a delete's hiding) outlives a silent watch.
pub(crate) const OVERLAY_TTL: Duration = Duration::from_secs(60);
/// How long a deletion seen by a watch is remembered (by uid).
const GONE_TTL: Duration = Duration::from_secs(600);
/// The label of tycho's own objects, which the kind reflectors select.
pub(crate) const OWN_SELECTOR: &str = "executor=tycho";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn meta<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get(key)?.as_str()
}

/// A label of an object.
pub(crate) fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("labels")?.get(key)?.as_str()
}

/// `a` is the same as or newer than `b` (resourceVersions that are integers, as etcd's
/// are; otherwise only equality counts).
fn not_older(a: &str, b: &str) -> bool {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) => a >= b,
        _ => a == b,
    }
}

struct Overlay {
    object: Arc<Value>,
    uid: String,
    rv: String,
    at: Instant,
}

#[derive(Default)]
struct Store {
    objects: BTreeMap<String, Arc<Value>>,
    /// A relist in progress: (when it began, what it listed so far).
    relist: Option<(Instant, BTreeMap<String, Arc<Value>>)>,
    synced: bool,
    healthy: bool,
    overlay: BTreeMap<String, Overlay>,
    hidden: HashMap<String, Instant>,
    gone: HashMap<String, Instant>,
}

impl Store {
    fn note_gone(&mut self, uid: &str) {
        let now = Instant::now();
        if self.gone.len() > 10_000 {
            self.gone.retain(|_, at| now.duration_since(*at) < GONE_TTL);
        }
        self.gone.insert(uid.to_string(), now);
        self.hidden.remove(uid);
        self.overlay.retain(|_, o| o.uid != uid);
    }

    fn apply(&mut self, object: Value) {
        let Some(name) = meta(&object, "name").map(str::to_string) else {
            return;
        };
        if let Some(o) = self.overlay.get(&name) {
            let rv = meta(&object, "resourceVersion").unwrap_or_default();
            if meta(&object, "uid") != Some(o.uid.as_str()) || not_older(rv, &o.rv) {
                self.overlay.remove(&name);
            }
        }
        if let Some((_, buffer)) = &mut self.relist {
            buffer.insert(name, Arc::new(object));
        } else {
            if let Some(old) = self.objects.get(&name) {
                if meta(old, "uid") != meta(&object, "uid") {
                    if let Some(uid) = meta(old, "uid").map(str::to_string) {
                        self.note_gone(&uid);
                    }
                }
            }
            self.objects.insert(name, Arc::new(object));
        }
    }

    fn delete(&mut self, object: &Value) {
        let Some(name) = meta(object, "name") else {
            return;
        };
        if let Some(uid) = meta(object, "uid") {
            self.note_gone(uid);
        }
        self.objects.remove(name);
    }

    fn relist_done(&mut self) {
        let Some((began, listed)) = self.relist.take() else {
            return;
        };
        let old = std::mem::replace(&mut self.objects, listed);
        for (name, object) in &old {
            let uid = meta(object, "uid").unwrap_or_default();
            let kept = self
                .objects
                .get(name)
                .is_some_and(|o| meta(o, "uid").unwrap_or_default() == uid);
            if !kept && !uid.is_empty() {
                self.note_gone(uid);
            }
        }
        // Writes that finished before the list began are in it (a quorum read).
        self.overlay.retain(|_, o| o.at >= began);
        self.hidden.retain(|_, at| *at >= began);
        self.synced = true;
    }

    fn expire(&mut self) {
        let now = Instant::now();
        self.overlay
            .retain(|_, o| now.duration_since(o.at) < OVERLAY_TTL);
        self.hidden
            .retain(|_, at| now.duration_since(*at) < OVERLAY_TTL);
    }
}

/// One reflector: a watch and the store it feeds.
pub(crate) struct Reflector {
    store: Mutex<Store>,
}

impl Reflector {
    fn new() -> Arc<Reflector> {
        Arc::new(Reflector {
            store: Mutex::new(Store::default()),
        })
    }

    /// Listed once and no watch error since the last event.
    pub(crate) fn fresh(&self) -> bool {
        let s = lock(&self.store);
        s.synced && s.healthy
    }

    /// The objects (name order) that satisfy `keep`, writes of this process applied;
    /// None when not fresh (read the API server instead).
    pub(crate) fn select(&self, keep: impl Fn(&Value) -> bool) -> Option<Vec<Arc<Value>>> {
        let mut s = lock(&self.store);
        if !(s.synced && s.healthy) {
            return None;
        }
        s.expire();
        let mut out: BTreeMap<&str, &Arc<Value>> = BTreeMap::new();
        for (name, object) in &s.objects {
            let uid = meta(object, "uid").unwrap_or_default();
            if !s.hidden.contains_key(uid) && keep(object) {
                out.insert(name, object);
            }
        }
        for (name, o) in &s.overlay {
            if s.hidden.contains_key(&o.uid) {
                continue;
            }
            if keep(&o.object) {
                out.insert(name, &o.object);
            } else {
                out.remove(name.as_str());
            }
        }
        Some(out.into_values().cloned().collect())
    }

    /// The object `name` (Some(None): known absent); None when not fresh.
    pub(crate) fn get(&self, name: &str) -> Option<Option<Arc<Value>>> {
        self.select(|o| meta(o, "name") == Some(name))
            .map(|v| v.into_iter().next())
    }

    /// Whether the watch saw the object with `uid` deleted (or replaced).
    pub(crate) fn saw_deleted(&self, uid: &str) -> bool {
        lock(&self.store).gone.contains_key(uid)
    }

    /// Applies the response of a create or update of this process.
    pub(crate) fn wrote(&self, object: Value) {
        let (Some(name), Some(uid)) = (meta(&object, "name"), meta(&object, "uid")) else {
            return;
        };
        let (name, uid) = (name.to_string(), uid.to_string());
        let rv = meta(&object, "resourceVersion")
            .unwrap_or_default()
            .to_string();
        let mut s = lock(&self.store);
        if s.gone.contains_key(&uid) {
            return;
        }
        if let Some(current) = s.objects.get(&name) {
            let current_rv = meta(current, "resourceVersion").unwrap_or_default();
            if meta(current, "uid") == Some(uid.as_str()) && not_older(current_rv, &rv) {
                return;
            }
        }
        s.overlay.insert(
            name,
            Overlay {
                object: Arc::new(strip(object)),
                uid,
                rv,
                at: Instant::now(),
            },
        );
    }

    /// Hides the objects (as this reflector knows them) that satisfy `deleted`: this
    /// process deleted them.
    pub(crate) fn deleted_where(&self, deleted: impl Fn(&Value) -> bool) {
        let mut s = lock(&self.store);
        let now = Instant::now();
        let mut uids: Vec<String> = s
            .objects
            .values()
            .filter(|o| deleted(o))
            .filter_map(|o| meta(o, "uid").map(str::to_string))
            .collect();
        uids.extend(
            s.overlay
                .values()
                .filter(|o| deleted(&o.object))
                .map(|o| o.uid.clone()),
        );
        s.overlay.retain(|_, o| !deleted(&o.object));
        for uid in uids {
            s.hidden.insert(uid, now);
        }
    }

    fn on_event(&self, event: Event<DynamicObject>) {
        let value = |o: DynamicObject| strip(serde_json::to_value(o).unwrap_or_default());
        let mut s = lock(&self.store);
        s.healthy = true;
        match event {
            Event::Init => s.relist = Some((Instant::now(), BTreeMap::new())),
            Event::InitApply(o) | Event::Apply(o) => s.apply(value(o)),
            Event::Delete(o) => s.delete(&value(o)),
            Event::InitDone => s.relist_done(),
        }
    }

    fn on_error(&self, e: &watcher::Error) {
        let mut s = lock(&self.store);
        if s.healthy {
            log::debug!(target: LOG_TARGET, "watch failed, reading from the API server until it recovers: {e}");
        }
        s.healthy = false;
    }
}

/// Drops what is never read and costs memory (managedFields).
fn strip(mut object: Value) -> Value {
    if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    object
}

fn spawn(
    runtime: &tokio::runtime::Runtime,
    tasks: &Mutex<Vec<tokio::task::AbortHandle>>,
    api: Api<DynamicObject>,
    config: watcher::Config,
) -> Arc<Reflector> {
    let reflector = Reflector::new();
    let feed = Arc::clone(&reflector);
    // The resource's plural (the URL's last segment) labels its metrics.
    let kind = api
        .resource_url()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let task = runtime.spawn(async move {
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(e) => {
                    let synced = matches!(e, Event::InitDone);
                    feed.on_event(e);
                    if synced {
                        crate::metrics::cache_synced(&kind, true);
                    }
                }
                Err(e) => {
                    feed.on_error(&e);
                    // The watcher starts again (with backoff); reads go to the API server.
                    crate::metrics::cache_synced(&kind, false);
                    crate::metrics::watch_restarted(&kind);
                }
            }
        }
    });
    lock(tasks).push(task.abort_handle());
    reflector
}

/// The cache of one namespace.
pub(crate) struct Namespace {
    client: kube::Client,
    namespace: String,
    runtime: &'static tokio::runtime::Runtime,
    pub deployments: Arc<Reflector>,
    pub services: Arc<Reflector>,
    pub network_policies: Arc<Reflector>,
    pub pods: Arc<Reflector>,
    named: Mutex<HashMap<(Kind, String), Arc<Reflector>>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Namespace {
    /// The reflector of the kind's own objects, if the cache has one.
    pub(crate) fn of_kind(&self, kind: Kind) -> Option<&Arc<Reflector>> {
        match kind {
            Kind::Deployment => Some(&self.deployments),
            Kind::Service => Some(&self.services),
            Kind::NetworkPolicy => Some(&self.network_policies),
            Kind::Pod => Some(&self.pods),
            _ => None,
        }
    }

    /// The object `name` of `kind` if a fresh reflector of that name knows it (Some(None):
    /// it does not exist). The first lookup of a name starts its reflector and answers
    /// None (read the API server).
    pub(crate) fn named(&self, kind: Kind, name: &str) -> Option<Option<Arc<Value>>> {
        let reflector = {
            let mut named = lock(&self.named);
            match named.get(&(kind, name.to_string())) {
                Some(r) => Arc::clone(r),
                None => {
                    if named.len() >= MAX_NAMED {
                        return None;
                    }
                    let api = kind.api(&self.client, &self.namespace);
                    let config =
                        watcher::Config::default().fields(&format!("metadata.name={name}"));
                    // Secrets: a streaming list (one watch with sendInitialEvents), which
                    // needs RBAC `watch` only; `list` would grant reading every Secret's
                    // data of the namespace in one request.
                    let config = if kind == Kind::Secret {
                        config.streaming_lists()
                    } else {
                        config
                    };
                    let r = spawn(self.runtime, &self.tasks, api, config);
                    named.insert((kind, name.to_string()), Arc::clone(&r));
                    log::debug!(target: LOG_TARGET, "watching {} {name:?} in namespace {}", kind.name(), self.namespace);
                    return None;
                }
            }
        };
        reflector.get(name)
    }

    /// Records a delete of this process: everything labelled with `guid` is hidden
    /// until the watches deliver the deletions.
    pub(crate) fn deleted_guid(&self, guid: &str) {
        for r in [
            &self.deployments,
            &self.services,
            &self.network_policies,
            &self.pods,
        ] {
            r.deleted_where(|o| label(o, GUID_LABEL) == Some(guid));
        }
    }
}

impl Namespace {
    /// Stops the watches.
    fn stop(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

struct Registry {
    pid: u32,
    /// The client configuration the caches watch with.
    client_key: String,
    caches: HashMap<String, Arc<Namespace>>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// The cache of `namespace` for `client`, started on first use; None when the cache is
/// off or full. A change of client configuration stops the caches of the old one.
pub(crate) fn namespace(
    settings: &super::Settings,
    client: &kube::Client,
    namespace: &str,
) -> Option<Arc<Namespace>> {
    if !settings.cache {
        return None;
    }
    let runtime = crate::runtime::get(crate::error::ErrorKind::Kube).ok()?;
    let pid = crate::runtime::generation();
    let mut slot = lock(&REGISTRY);
    if slot.as_ref().is_some_and(|r| r.pid != pid) {
        // Inherited over fork: the parent's watch tasks are not running here.
        std::mem::forget(slot.take());
    }
    let client_key = settings.client_key();
    let registry = slot.get_or_insert_with(|| Registry {
        pid,
        client_key: client_key.clone(),
        caches: HashMap::new(),
    });
    if registry.client_key != client_key {
        // Another cluster or configuration: what the old watches know is of no use.
        for (_, cache) in registry.caches.drain() {
            cache.stop();
        }
        registry.client_key = client_key;
    }
    let key = namespace.to_string();
    if let Some(c) = registry.caches.get(&key) {
        return Some(Arc::clone(c));
    }
    if registry.caches.len() >= MAX_NAMESPACES {
        return None;
    }
    log::debug!(target: LOG_TARGET, "starting the watch cache of namespace {namespace}");
    // Lists in pages of 500 (kube-rs's default, client-go's): a namespace of 10,000
    // systems is not one response the API server must build in memory.
    let own = || watcher::Config::default().labels(OWN_SELECTOR);
    let tasks = Mutex::new(Vec::new());
    let kind = |k: Kind| spawn(runtime, &tasks, k.api(client, namespace), own());
    let (deployments, services, network_policies, pods) = (
        kind(Kind::Deployment),
        kind(Kind::Service),
        kind(Kind::NetworkPolicy),
        kind(Kind::Pod),
    );
    let cache = Arc::new(Namespace {
        client: client.clone(),
        namespace: namespace.to_string(),
        runtime,
        deployments,
        services,
        network_policies,
        pods,
        named: Mutex::new(HashMap::new()),
        tasks,
    });
    registry.caches.insert(key, Arc::clone(&cache));
    Some(cache)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, uid: &str, rv: &str, guid: &str) -> Value {
        json!({"metadata": {"name": name, "uid": uid, "resourceVersion": rv,
            "labels": {"tycho-guid": guid}, "managedFields": [{"x": 1}]}})
    }

    fn synced() -> Arc<Reflector> {
        let r = Reflector::new();
        {
            let mut s = lock(&r.store);
            s.synced = true;
            s.healthy = true;
        }
        r
    }

    fn names(r: &Reflector) -> Vec<String> {
        r.select(|_| true)
            .unwrap()
            .iter()
            .map(|o| meta(o, "name").unwrap().to_string())
            .collect()
    }

    #[test]
    fn not_fresh_until_listed() {
        let r = Reflector::new();
        assert!(r.select(|_| true).is_none());
        lock(&r.store).relist = Some((Instant::now(), BTreeMap::new()));
        lock(&r.store).apply(obj("a", "u1", "5", "g"));
        lock(&r.store).healthy = true;
        assert!(r.select(|_| true).is_none());
        lock(&r.store).relist_done();
        assert_eq!(names(&r), ["a"]);
    }

    #[test]
    fn own_writes_show_until_the_watch_catches_up() {
        let r = synced();
        r.wrote(obj("a", "u1", "10", "g"));
        assert_eq!(names(&r), ["a"]);
        // an older version from the watch leaves the overlay in place
        lock(&r.store).apply(obj("a", "u1", "9", "g"));
        assert_eq!(lock(&r.store).overlay.len(), 1);
        lock(&r.store).apply(obj("a", "u1", "10", "g"));
        assert!(lock(&r.store).overlay.is_empty());
        assert_eq!(names(&r), ["a"]);
    }

    #[test]
    fn own_deletes_hide_until_the_watch_catches_up() {
        let r = synced();
        lock(&r.store).apply(obj("a", "u1", "10", "g"));
        lock(&r.store).apply(obj("b", "u2", "11", "h"));
        r.wrote(obj("c", "u3", "12", "g"));
        r.deleted_where(|o| label(o, GUID_LABEL) == Some("g"));
        assert_eq!(names(&r), ["b"]);
        lock(&r.store).delete(&obj("a", "u1", "13", "g"));
        // a's delete was delivered: no longer hidden; c (own write, never delivered)
        // stays hidden, so a late ADDED of it cannot bring it back
        assert!(!lock(&r.store).hidden.contains_key("u1"));
        assert!(lock(&r.store).hidden.contains_key("u3"));
        assert!(r.saw_deleted("u1"));
        // a new object of the same name (a new start of the GUID) shows
        lock(&r.store).apply(obj("a", "u9", "14", "g"));
        assert_eq!(names(&r), ["a", "b"]);
    }

    #[test]
    fn relist_forgets_what_it_does_not_list() {
        let r = synced();
        lock(&r.store).apply(obj("a", "u1", "10", "g"));
        lock(&r.store).apply(obj("b", "u2", "11", "g"));
        r.on_event(Event::Init);
        lock(&r.store).apply(obj("b", "u2", "12", "g"));
        lock(&r.store).relist_done();
        assert_eq!(names(&r), ["b"]);
        assert!(r.saw_deleted("u1"));
        assert!(!r.saw_deleted("u2"));
    }

    #[test]
    fn resource_versions_compare_as_integers() {
        assert!(not_older("10", "9"));
        assert!(!not_older("9", "10"));
        assert!(not_older("abc", "abc"));
        assert!(!not_older("abd", "abc"));
    }
}
