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
//! Each reflector is a watch loop of ours ([`Source::run`]) feeding a store of ours, so
//! the executor's writes can be applied too. It lists (in pages of 500, a quorum read;
//! the named Secrets with a streaming list instead: one watch with `sendInitialEvents`),
//! then watches from the list's resourceVersion:
//!
//! * Watches are requests of the connection's watch client, whose read timeout is
//!   longer than the watch's `timeoutSeconds` (`TYCHO_KUBE_WATCH_TIMEOUT`, default 290 s
//!   and 330 s): the API server ends a quiet watch, the read timeout never does.
//! * A watch that ends (the server's `timeoutSeconds`, a closed stream) is made again at
//!   once from the last resourceVersion seen (an event's or a bookmark's; bookmarks are
//!   asked for) and the store stays fresh: nothing is listed again. Only `410 Gone` (the
//!   version is older than the server's history) lists again.
//! * Errors (no answer, a refused or broken connection, an error status) back off (0.5 s
//!   doubling to 30 s, with jitter) and resume from the last resourceVersion.
//! * *Fresh* (readers use the store): listed once, and no error since the last watch
//!   the API server accepted. Until a reflector has listed, after an error until a
//!   watch from its resourceVersion is accepted again, and after a `410` until the list
//!   again is done, readers go to the API server, as without the cache. A watch the
//!   server accepts from the store's resourceVersion sends every change since: the store
//!   is as fresh then as while the watch runs.
//! * Read your own writes: what start creates is put in the store's overlay from the
//!   create's response (until the watch delivers that resourceVersion of the object, or
//!   a newer one, or the object's deletion); what delete removes is hidden (by uid)
//!   until the watch delivers its deletion. Overlays and hidden entries older than
//!   [`OVERLAY_TTL`] are dropped, and a relist drops those older than it.
//! * Objects deleted while watched are remembered by uid for [`GONE_TTL`]: start's last
//!   check ("was my Deployment deleted meanwhile?") reads that.
//! * Only what the executor reads of an object is kept ([`super::slim`]), as JSON text
//!   (parsed when a reader asks for the object): the memory an object costs does not
//!   grow with its annotations, managedFields or pod template. The gauges
//!   `tycho_cache_objects` and `tycho_cache_bytes` tell what the stores hold.
//! * Readers select ([`Select`]) by `tycho-guid`, by `username` or by name, answered
//!   from indexes: a status of one user among 10,000 systems reads that user's objects.

use super::error::{Cause, KubeError};
use super::{slim, Kind, GUID_LABEL, LOG_TARGET};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
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
/// The label status selects a user's systems by.
const USERNAME_LABEL: &str = "username";
/// The label of tycho's own objects, which the kind reflectors select.
pub(crate) const OWN_SELECTOR: &str = "executor=tycho";
/// Objects per list request (client-go's and kube-rs's page size): a namespace of
/// 10,000 systems is not one response the API server must build in memory.
const PAGE: u32 = 500;
/// The first wait after an error; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A watch that ends sooner than this after it began waits a backoff before the next
/// (a server or proxy that ends every watch at once is not asked in a tight loop).
const SHORTEST_WATCH: Duration = Duration::from_secs(1);
/// The annotation of the bookmark that ends a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

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

/// An object as a store holds it: what selection and the store's bookkeeping read, and
/// the slim form ([`slim`]) as JSON text, parsed when a reader asks for the object. Text
/// costs a fraction of a parsed `Value` (whose every map entry is a hashed key and a
/// value of 80 bytes).
struct Stored {
    uid: Box<str>,
    rv: Box<str>,
    guid: Option<Box<str>>,
    username: Option<Box<str>>,
    json: Box<str>,
}

impl Stored {
    /// `object` (a slim form) as stored; None without a name.
    fn new(object: &Value) -> Option<(Arc<str>, Stored)> {
        let name: Arc<str> = Arc::from(meta(object, "name")?);
        let text = |s: Option<&str>| s.map(Box::from);
        let stored = Stored {
            uid: text(meta(object, "uid")).unwrap_or_default(),
            rv: text(meta(object, "resourceVersion")).unwrap_or_default(),
            guid: text(label(object, GUID_LABEL)),
            username: text(label(object, USERNAME_LABEL)),
            json: serde_json::to_string(object)
                .unwrap_or_default()
                .into_boxed_str(),
        };
        Some((name, stored))
    }

    /// The object, parsed (an object the store wrote itself: it parses).
    fn value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or_default()
    }

    /// The estimated bytes this object costs its store as `name`: itself, its strings,
    /// its entry in the store's tree and in the indexes.
    fn cost(&self, name: &str) -> i64 {
        let strings = [
            Some(&self.uid),
            Some(&self.rv),
            self.guid.as_ref(),
            self.username.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|s| s.len())
        .sum::<usize>();
        // The tree's entry (the Arc'd name and its counts, the slot's share of a node)
        // and an index entry per label.
        let entry = name.len() + 2 * std::mem::size_of::<usize>() + 32 + 2 * 24;
        i64::try_from(std::mem::size_of::<Stored>() + strings + self.json.len() + entry)
            .unwrap_or(i64::MAX)
    }
}

/// Which objects a reader wants: the selections status, readiness, start and delete
/// make, each answered from an index.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Select<'a> {
    /// Every object.
    All,
    /// The objects labelled `tycho-guid=<guid>`.
    Guid(&'a str),
    /// The objects labelled `username=<username>`.
    Username(&'a str),
    /// The object of this name.
    Name(&'a str),
}

impl Select<'_> {
    /// Whether `object` (a slim form) is selected.
    fn matches(self, object: &Value) -> bool {
        match self {
            Select::All => true,
            Select::Guid(g) => label(object, GUID_LABEL) == Some(g),
            Select::Username(u) => label(object, USERNAME_LABEL) == Some(u),
            Select::Name(n) => meta(object, "name") == Some(n),
        }
    }
}

/// Names by a label's value.
type Index = HashMap<Box<str>, Vec<Arc<str>>>;

fn index_add(index: &mut Index, value: Option<&str>, name: &Arc<str>) {
    if let Some(v) = value {
        index
            .entry(Box::from(v))
            .or_default()
            .push(Arc::clone(name));
    }
}

fn index_remove(index: &mut Index, value: Option<&str>, name: &str) {
    let Some(v) = value else {
        return;
    };
    if let Some(names) = index.get_mut(v) {
        names.retain(|n| &**n != name);
        if names.is_empty() {
            index.remove(v);
        }
    }
}

#[derive(Default)]
struct Store {
    objects: BTreeMap<Arc<str>, Stored>,
    /// `objects`' names by `tycho-guid` and by `username`.
    by_guid: Index,
    by_username: Index,
    /// A relist in progress: (when it began, what it listed so far).
    relist: Option<(Instant, BTreeMap<Arc<str>, Stored>)>,
    synced: bool,
    healthy: bool,
    overlay: BTreeMap<String, Overlay>,
    hidden: HashMap<String, Instant>,
    gone: HashMap<String, Instant>,
    /// The resource's plural (labels the gauges; "" in unit tests: no gauges).
    kind: &'static str,
    /// What `objects` and the relist's buffer hold: how many objects, and their
    /// estimated bytes ([`Stored::cost`]).
    count: i64,
    bytes: i64,
}

impl Store {
    /// Counts `object` (stored as `name`) in (`sign` 1) or out (-1) of what the store holds.
    fn account(&mut self, name: &str, object: &Stored, sign: i64) {
        let bytes = sign * object.cost(name);
        self.count += sign;
        self.bytes += bytes;
        if !self.kind.is_empty() {
            crate::metrics::cache_held(self.kind, sign, bytes);
        }
    }

    fn index(&mut self, name: &Arc<str>, object: &Stored) {
        index_add(&mut self.by_guid, object.guid.as_deref(), name);
        index_add(&mut self.by_username, object.username.as_deref(), name);
    }

    fn unindex(&mut self, name: &str, object: &Stored) {
        index_remove(&mut self.by_guid, object.guid.as_deref(), name);
        index_remove(&mut self.by_username, object.username.as_deref(), name);
    }

    /// Puts `object` as `name` in the relist's buffer (during a relist) or the store,
    /// counted and indexed.
    fn put(&mut self, name: Arc<str>, object: Stored) {
        self.account(&name, &object, 1);
        let old = if let Some((_, buffer)) = &mut self.relist {
            buffer.insert(Arc::clone(&name), object)
        } else {
            let old = self.objects.remove(&*name);
            if let Some(old) = &old {
                self.unindex(&name, old);
            }
            self.index(&name, &object);
            self.objects.insert(Arc::clone(&name), object);
            old
        };
        if let Some(old) = old {
            self.account(&name, &old, -1);
        }
    }

    /// Drops every object of `map` from the count.
    fn uncount(&mut self, map: &BTreeMap<Arc<str>, Stored>) {
        for (name, object) in map {
            self.account(name, object, -1);
        }
    }

    fn note_gone(&mut self, uid: &str) {
        let now = Instant::now();
        if self.gone.len() > 10_000 {
            self.gone.retain(|_, at| now.duration_since(*at) < GONE_TTL);
        }
        self.gone.insert(uid.to_string(), now);
        self.hidden.remove(uid);
        self.overlay.retain(|_, o| o.uid != uid);
    }

    /// Applies an object (its slim form) a list or watch delivered.
    fn apply(&mut self, object: Value) {
        let Some((name, stored)) = Stored::new(&object) else {
            return;
        };
        if let Some(o) = self.overlay.get(&*name) {
            if *stored.uid != *o.uid || not_older(&stored.rv, &o.rv) {
                self.overlay.remove(&*name);
            }
        }
        if self.relist.is_none() {
            if let Some(old) = self.objects.get(&*name) {
                if old.uid != stored.uid && !old.uid.is_empty() {
                    let uid = old.uid.to_string();
                    self.note_gone(&uid);
                }
            }
        }
        self.put(name, stored);
    }

    /// Applies a deletion a watch delivered.
    fn delete(&mut self, object: &Value) {
        let Some(name) = meta(object, "name") else {
            return;
        };
        if let Some(uid) = meta(object, "uid") {
            self.note_gone(uid);
        }
        let removed = if let Some((_, buffer)) = &mut self.relist {
            buffer.remove(name)
        } else {
            let removed = self.objects.remove(name);
            if let Some(old) = &removed {
                self.unindex(name, old);
            }
            removed
        };
        if let Some(removed) = removed {
            self.account(name, &removed, -1);
        }
    }

    /// A relist begins: what it lists goes to a buffer, the store serves meanwhile.
    fn begin_relist(&mut self) {
        self.abandon_relist();
        self.relist = Some((Instant::now(), BTreeMap::new()));
    }

    /// A relist that failed: its buffer is dropped.
    fn abandon_relist(&mut self) {
        if let Some((_, buffer)) = self.relist.take() {
            self.uncount(&buffer);
        }
    }

    fn relist_done(&mut self) {
        let Some((began, listed)) = self.relist.take() else {
            return;
        };
        let old = std::mem::replace(&mut self.objects, listed);
        self.uncount(&old);
        self.by_guid.clear();
        self.by_username.clear();
        let objects = std::mem::take(&mut self.objects);
        for (name, object) in &objects {
            self.index(name, object);
        }
        self.objects = objects;
        for (name, object) in &old {
            let kept = self.objects.get(name).is_some_and(|o| o.uid == object.uid);
            if !kept && !object.uid.is_empty() {
                self.note_gone(&object.uid);
            }
        }
        // Writes that finished before the list began are in it (a quorum read).
        self.overlay.retain(|_, o| o.at >= began);
        self.hidden.retain(|_, at| *at >= began);
        self.synced = true;
        self.healthy = true;
    }

    fn expire(&mut self) {
        let now = Instant::now();
        self.overlay
            .retain(|_, o| now.duration_since(o.at) < OVERLAY_TTL);
        self.hidden
            .retain(|_, at| now.duration_since(*at) < OVERLAY_TTL);
    }

    /// The stored objects `select` picks (from an index, or all of them).
    fn candidates<'s>(&'s self, select: Select<'_>) -> Vec<(&'s str, &'s Stored)> {
        let named = |names: Option<&'s Vec<Arc<str>>>| -> Vec<(&'s str, &'s Stored)> {
            names
                .into_iter()
                .flatten()
                .filter_map(|n| self.objects.get_key_value(&**n))
                .map(|(n, o)| (&**n, o))
                .collect()
        };
        match select {
            Select::All => self.objects.iter().map(|(n, o)| (&**n, o)).collect(),
            Select::Guid(g) => named(self.by_guid.get(g)),
            Select::Username(u) => named(self.by_username.get(u)),
            Select::Name(n) => self
                .objects
                .get_key_value(n)
                .map(|(n, o)| (&**n, o))
                .into_iter()
                .collect(),
        }
    }
}

/// One reflector: a watch and the store it feeds.
pub(crate) struct Reflector {
    /// The kind of its objects (what [`slim`] keeps of them).
    kind: Kind,
    store: Mutex<Store>,
}

impl Drop for Reflector {
    fn drop(&mut self) {
        let mut s = lock(&self.store);
        s.abandon_relist();
        let objects = std::mem::take(&mut s.objects);
        s.uncount(&objects);
    }
}

impl Reflector {
    /// A reflector of objects of `kind`; with `gauges`, it counts in the metrics
    /// labelled with the kind's plural (the unit tests' reflectors do not).
    fn new(kind: Kind, gauges: bool) -> Arc<Reflector> {
        Arc::new(Reflector {
            kind,
            store: Mutex::new(Store {
                kind: if gauges { kind.plural() } else { "" },
                ..Store::default()
            }),
        })
    }

    /// Listed once, and no error since the last watch the API server accepted.
    pub(crate) fn fresh(&self) -> bool {
        let s = lock(&self.store);
        s.synced && s.healthy
    }

    /// Runs `change` on the store; the synced gauge follows freshness.
    fn change<T>(&self, change: impl FnOnce(&mut Store) -> T) -> T {
        let mut s = lock(&self.store);
        let was = s.synced && s.healthy;
        let out = change(&mut s);
        let now = s.synced && s.healthy;
        if was != now && !s.kind.is_empty() {
            crate::metrics::cache_synced(s.kind, now);
        }
        out
    }

    /// A watch from the store's resourceVersion was accepted: it sends every change
    /// since, so the store is fresh again (when it has listed).
    fn accepted(&self) {
        self.change(|s| s.healthy = true);
    }

    /// An error of the watch or list: readers go to the API server until a watch is
    /// accepted again.
    fn failed(&self, e: &KubeError) {
        self.change(|s| {
            if s.healthy {
                log::debug!(target: LOG_TARGET, "watch of {} failed, reading from the API server until it recovers: {e}", s.kind);
            }
            s.healthy = false;
        });
        if let Some(kind) = self.kind() {
            crate::metrics::watch_restarted(kind);
        }
    }

    fn kind(&self) -> Option<&'static str> {
        Some(lock(&self.store).kind).filter(|k| !k.is_empty())
    }

    /// The objects (name order) `select` picks, writes of this process applied; None
    /// when not fresh (read the API server instead). Answered from an index: the cost
    /// is that of the objects picked, not of the store.
    pub(crate) fn select(&self, select: Select<'_>) -> Option<Vec<Arc<Value>>> {
        let mut s = lock(&self.store);
        if !(s.synced && s.healthy) {
            return None;
        }
        s.expire();
        let mut out: BTreeMap<&str, Arc<Value>> = BTreeMap::new();
        for (name, object) in s.candidates(select) {
            if !s.hidden.contains_key(&*object.uid) {
                out.insert(name, Arc::new(object.value()));
            }
        }
        for (name, o) in &s.overlay {
            if s.hidden.contains_key(&o.uid) {
                continue;
            }
            if select.matches(&o.object) {
                out.insert(name, Arc::clone(&o.object));
            } else {
                out.remove(name.as_str());
            }
        }
        Some(out.into_values().collect())
    }

    /// The object `name` (Some(None): known absent); None when not fresh.
    pub(crate) fn get(&self, name: &str) -> Option<Option<Arc<Value>>> {
        self.select(Select::Name(name))
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
        if let Some(current) = s.objects.get(name.as_str()) {
            if *current.uid == *uid && not_older(&current.rv, &rv) {
                return;
            }
        }
        s.overlay.insert(
            name,
            Overlay {
                object: Arc::new(slim::slim(self.kind, object)),
                uid,
                rv,
                at: Instant::now(),
            },
        );
    }

    /// Hides the objects labelled `tycho-guid=<guid>` (as this reflector knows them):
    /// this process deleted them.
    pub(crate) fn deleted_guid(&self, guid: &str) {
        let mut s = lock(&self.store);
        let now = Instant::now();
        let mut uids: Vec<String> = s
            .candidates(Select::Guid(guid))
            .into_iter()
            .map(|(_, o)| o.uid.to_string())
            .filter(|uid| !uid.is_empty())
            .collect();
        let of_guid = |o: &Overlay| label(&o.object, GUID_LABEL) == Some(guid);
        uids.extend(
            s.overlay
                .values()
                .filter(|o| of_guid(o))
                .map(|o| o.uid.clone()),
        );
        s.overlay.retain(|_, o| !of_guid(o));
        for uid in uids {
            s.hidden.insert(uid, now);
        }
    }
}

/// How a reflector fills its store, at first and after a `410 Gone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Initial {
    /// List requests, in pages of [`PAGE`].
    List,
    /// A streaming list: one watch request with `sendInitialEvents=true`, whose ADDED
    /// events up to the bookmark annotated [`INITIAL_EVENTS_END`] are the list. Needs
    /// RBAC `watch` only. An API server that cannot stream lists never sends that
    /// bookmark: the reflector never becomes fresh (readers use the API server).
    Stream,
}

/// Why a watch request ended.
#[derive(Debug)]
enum Ended {
    /// The API server ended it (its `timeoutSeconds`, or a stream closed cleanly):
    /// resume from the last resourceVersion; the store stays fresh.
    Closed,
    /// `410 Gone`: the resourceVersion is older than the server's history. List again.
    Gone,
    /// No answer, a broken connection or an error status: resume from the last
    /// resourceVersion after a backoff.
    Failed(KubeError),
}

/// Exponential backoff with jitter (a wait in [d/2, d]).
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: FIRST_BACKOFF,
        }
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }

    async fn wait(&mut self) {
        let d = self.next;
        self.next = (d * 2).min(MAX_BACKOFF);
        let half = d / 2;
        let jitter = fastrand::u64(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX));
        tokio::time::sleep(half + Duration::from_millis(jitter)).await;
    }
}

/// What a reflector watches, and how.
struct Source {
    kind: Kind,
    /// Lists go through the request client.
    api: Api<DynamicObject>,
    /// Watches go through the watch client.
    watch_api: Api<DynamicObject>,
    labels: Option<String>,
    fields: Option<String>,
    initial: Initial,
    /// The watches' `timeoutSeconds`.
    timeout: u32,
    /// How long the answer (head) of a watch request may take: the read timeout.
    answer_timeout: Duration,
}

impl Source {
    /// Feeds `reflector` until the task is aborted.
    async fn run(self, reflector: Arc<Reflector>) {
        let mut backoff = Backoff::new();
        // The resourceVersion the next watch resumes from; None: list first.
        let mut version: Option<String> = None;
        loop {
            if version.is_none() && self.initial == Initial::List {
                match self.list(&reflector).await {
                    Ok(listed) => version = Some(listed),
                    Err(e) => {
                        reflector.failed(&e);
                        backoff.wait().await;
                        continue;
                    }
                }
            }
            let began = Instant::now();
            match self.watch(&reflector, &mut version, &mut backoff).await {
                Ended::Closed => {
                    if began.elapsed() < SHORTEST_WATCH {
                        backoff.wait().await;
                    }
                }
                Ended::Gone => {
                    version = None;
                    reflector.failed(&KubeError::new(
                        Cause::Api {
                            reason: "Expired".into(),
                            code: 410,
                        },
                        "the watch's resourceVersion is gone from the API server's history: listing again",
                    ));
                    backoff.wait().await;
                }
                Ended::Failed(e) => {
                    reflector.failed(&e);
                    backoff.wait().await;
                }
            }
        }
    }

    /// Lists every object (in pages) into a relist of the store; the list's
    /// resourceVersion. A quorum read: every write that ended before it began is in it.
    async fn list(&self, reflector: &Reflector) -> std::result::Result<String, KubeError> {
        reflector.change(Store::begin_relist);
        let mut params = ListParams {
            label_selector: self.labels.clone(),
            field_selector: self.fields.clone(),
            limit: Some(PAGE),
            ..ListParams::default()
        };
        loop {
            let page = match self.api.list(&params).await {
                Ok(page) => page,
                Err(e) => {
                    reflector.change(Store::abandon_relist);
                    return Err(KubeError::from_kube(&e, 1)
                        .context(format!("cannot list {}", self.kind.plural())));
                }
            };
            let version = page.metadata.resource_version.filter(|v| !v.is_empty());
            let next = page.metadata.continue_.filter(|t| !t.is_empty());
            for object in page.items {
                let object = slim::from_dynamic(self.kind, object);
                reflector.change(|s| s.apply(object));
            }
            match (next, version) {
                (Some(token), _) => params.continue_token = Some(token),
                (None, Some(version)) => {
                    reflector.change(Store::relist_done);
                    return Ok(version);
                }
                (None, None) => {
                    reflector.change(Store::abandon_relist);
                    return Err(KubeError::invalid(format!(
                        "the list of {} has no resourceVersion",
                        self.kind.plural()
                    )));
                }
            }
        }
    }

    /// One watch request, from `version` (None: a streaming list), until it ends;
    /// `version` follows the events and bookmarks.
    async fn watch(
        &self,
        reflector: &Reflector,
        version: &mut Option<String>,
        backoff: &mut Backoff,
    ) -> Ended {
        let mut listing = version.is_none();
        let params = WatchParams {
            label_selector: self.labels.clone(),
            field_selector: self.fields.clone(),
            timeout: Some(self.timeout),
            bookmarks: true,
            send_initial_events: listing,
        };
        let from = version.clone().unwrap_or_else(|| "0".into());
        let started =
            tokio::time::timeout(self.answer_timeout, self.watch_api.watch(&params, &from));
        let stream = match started.await {
            Err(_) => {
                return Ended::Failed(KubeError::new(
                    Cause::Timeout,
                    format!(
                        "the watch of {} got no answer within {:?} (TYCHO_KUBE_READ_TIMEOUT)",
                        self.kind.plural(),
                        self.answer_timeout
                    ),
                ))
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 410 => return Ended::Gone,
            Ok(Err(e)) => {
                return Ended::Failed(
                    KubeError::from_kube(&e, 1)
                        .context(format!("cannot watch {}", self.kind.plural())),
                )
            }
            Ok(Ok(stream)) => stream,
        };
        if listing {
            reflector.change(Store::begin_relist);
        } else {
            reflector.accepted();
        }
        let mut stream = std::pin::pin!(stream);
        let ended = loop {
            let event = match stream.next().await {
                None => break Ended::Closed,
                Some(Err(e)) => {
                    break Ended::Failed(
                        KubeError::from_kube(&e, 1)
                            .context(format!("the watch of {} broke", self.kind.plural())),
                    )
                }
                Some(Ok(event)) => event,
            };
            backoff.reset();
            match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    if !listing {
                        follow(version, o.metadata.resource_version.as_deref());
                    }
                    let object = slim::from_dynamic(self.kind, o);
                    reflector.change(|s| s.apply(object));
                }
                WatchEvent::Deleted(o) => {
                    follow(version, o.metadata.resource_version.as_deref());
                    let object = slim::from_dynamic(self.kind, o);
                    reflector.change(|s| s.delete(&object));
                }
                WatchEvent::Bookmark(mark) => {
                    if listing {
                        if !mark.metadata.annotations.contains_key(INITIAL_EVENTS_END) {
                            continue;
                        }
                        listing = false;
                        reflector.change(Store::relist_done);
                    }
                    follow(version, Some(&mark.metadata.resource_version));
                }
                WatchEvent::Error(status) if status.code == 410 => break Ended::Gone,
                WatchEvent::Error(status) => {
                    break Ended::Failed(KubeError::new(
                        Cause::Api {
                            reason: status.reason.clone(),
                            code: status.code,
                        },
                        format!(
                            "the watch of {} failed: {} ({})",
                            self.kind.plural(),
                            status.message,
                            status.code
                        ),
                    ))
                }
            }
        };
        if listing {
            // A streaming list that ended before its initial events did: start over.
            reflector.change(Store::abandon_relist);
            *version = None;
        }
        ended
    }
}

/// Moves `version` to a delivered resourceVersion (an empty one is not a position).
fn follow(version: &mut Option<String>, delivered: Option<&str>) {
    if let Some(v) = delivered.filter(|v| !v.is_empty()) {
        *version = Some(v.to_string());
    }
}

/// What the watch loops of a namespace are made of, and their tasks.
struct Watches {
    connection: super::client::Connection,
    namespace: String,
    /// The watches' `timeoutSeconds`.
    timeout: u32,
    /// The bound on a watch request's answer (the read timeout).
    answer_timeout: Duration,
    runtime: &'static tokio::runtime::Runtime,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Watches {
    fn source(
        &self,
        kind: Kind,
        labels: Option<String>,
        fields: Option<String>,
        initial: Initial,
    ) -> Source {
        Source {
            kind,
            api: kind.api(&self.connection.client, &self.namespace),
            watch_api: kind.api(&self.connection.watch_client, &self.namespace),
            labels,
            fields,
            initial,
            timeout: self.timeout,
            answer_timeout: self.answer_timeout,
        }
    }

    /// Starts the watch loop of `source` on the runtime; its reflector.
    fn spawn(&self, source: Source) -> Arc<Reflector> {
        let reflector = Reflector::new(source.kind, true);
        let task = self.runtime.spawn(source.run(Arc::clone(&reflector)));
        lock(&self.tasks).push(task.abort_handle());
        reflector
    }

    /// The reflector of tycho's own objects of `kind` (labelled `executor=tycho`).
    fn own(&self, kind: Kind) -> Arc<Reflector> {
        self.spawn(self.source(kind, Some(OWN_SELECTOR.into()), None, Initial::List))
    }
}

/// The cache of one namespace.
pub(crate) struct Namespace {
    watches: Watches,
    pub deployments: Arc<Reflector>,
    pub services: Arc<Reflector>,
    pub network_policies: Arc<Reflector>,
    pub pods: Arc<Reflector>,
    named: Mutex<HashMap<(Kind, String), Arc<Reflector>>>,
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
                    // Secrets: a streaming list (one watch with sendInitialEvents), which
                    // needs RBAC `watch` only; `list` would grant reading every Secret's
                    // data of the namespace in one request.
                    let initial = if kind == Kind::Secret {
                        Initial::Stream
                    } else {
                        Initial::List
                    };
                    let fields = Some(format!("metadata.name={name}"));
                    let r = self
                        .watches
                        .spawn(self.watches.source(kind, None, fields, initial));
                    named.insert((kind, name.to_string()), Arc::clone(&r));
                    log::debug!(target: LOG_TARGET, "watching {} {name:?} in namespace {}", kind.name(), self.watches.namespace);
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
            r.deleted_guid(guid);
        }
    }
}

impl Namespace {
    /// Stops the watches.
    fn stop(&self) {
        for task in lock(&self.watches.tasks).drain(..) {
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
    connection: &super::client::Connection,
    namespace: &str,
) -> Option<Arc<Namespace>> {
    if !settings.cache {
        return None;
    }
    let runtime = crate::runtime::get(crate::error::ErrorKind::Kube).ok()?;
    let pid = crate::runtime::generation();
    let mut slot = lock(&REGISTRY);
    if slot.as_ref().is_some_and(|r| r.pid != pid) {
        // Inherited over fork: the parent's watch tasks are not running here. Its
        // stores are not this process's either: the gauges start from nothing.
        std::mem::forget(slot.take());
        crate::metrics::cache_held_reset();
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
    let watches = Watches {
        connection: connection.clone(),
        namespace: namespace.to_string(),
        timeout: u32::try_from(settings.watch_timeout.as_secs()).unwrap_or(u32::MAX),
        answer_timeout: settings.read_timeout,
        runtime,
        tasks: Mutex::new(Vec::new()),
    };
    let cache = Arc::new(Namespace {
        deployments: watches.own(Kind::Deployment),
        services: watches.own(Kind::Service),
        network_policies: watches.own(Kind::NetworkPolicy),
        pods: watches.own(Kind::Pod),
        named: Mutex::new(HashMap::new()),
        watches,
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
        let r = Reflector::new(Kind::Deployment, false);
        {
            let mut s = lock(&r.store);
            s.synced = true;
            s.healthy = true;
        }
        r
    }

    fn names(r: &Reflector) -> Vec<String> {
        r.select(Select::All)
            .unwrap()
            .iter()
            .map(|o| meta(o, "name").unwrap().to_string())
            .collect()
    }

    #[test]
    fn not_fresh_until_listed() {
        let r = Reflector::new(Kind::Deployment, false);
        assert!(r.select(Select::All).is_none());
        lock(&r.store).relist = Some((Instant::now(), BTreeMap::new()));
        lock(&r.store).apply(obj("a", "u1", "5", "g"));
        lock(&r.store).healthy = true;
        assert!(r.select(Select::All).is_none());
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
        r.deleted_guid("g");
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
        lock(&r.store).begin_relist();
        lock(&r.store).apply(obj("b", "u2", "12", "g"));
        lock(&r.store).relist_done();
        assert_eq!(names(&r), ["b"]);
        assert!(r.saw_deleted("u1"));
        assert!(!r.saw_deleted("u2"));
    }

    #[test]
    fn fresh_after_an_accepted_watch_and_not_after_an_error() {
        let r = Reflector::new(Kind::Deployment, false);
        r.accepted();
        assert!(!r.fresh(), "a watch accepted before any list is not fresh");
        r.change(Store::begin_relist);
        r.change(|s| s.apply(obj("a", "u1", "5", "g")));
        r.change(Store::relist_done);
        assert!(r.fresh());
        r.failed(&KubeError::new(Cause::Timeout, "no answer"));
        assert!(!r.fresh());
        assert!(r.select(Select::All).is_none());
        // The watch from the store's resourceVersion is accepted again: fresh, no list.
        r.accepted();
        assert_eq!(names(&r), ["a"]);
    }

    #[test]
    fn an_abandoned_relist_keeps_the_store() {
        let r = synced();
        r.change(|s| s.apply(obj("a", "u1", "10", "g")));
        r.change(Store::begin_relist);
        r.change(|s| s.apply(obj("b", "u2", "11", "g")));
        r.change(Store::abandon_relist);
        assert_eq!(names(&r), ["a"]);
        let s = lock(&r.store);
        assert_eq!(s.count, 1);
        assert_eq!(s.bytes, s.objects["a"].cost("a"));
    }

    #[test]
    fn the_count_follows_the_objects() {
        let r = synced();
        r.change(|s| s.apply(obj("a", "u1", "10", "g")));
        r.change(|s| s.apply(obj("a", "u1", "11", "g")));
        r.change(|s| s.apply(obj("b", "u2", "12", "g")));
        r.change(|s| s.delete(&obj("b", "u2", "13", "g")));
        r.change(Store::begin_relist);
        r.change(|s| s.apply(obj("c", "u3", "14", "g")));
        r.change(Store::relist_done);
        let s = lock(&r.store);
        assert_eq!(s.count, 1);
        assert_eq!(s.bytes, s.objects["c"].cost("c"));
    }

    /// 200 Deployments with 50 KB of annotations (and as much in their pod templates)
    /// cost the store at most `SLIM_CAP` bytes each, measured by the allocator; the
    /// gauge's estimate is within a factor of two of that.
    #[test]
    fn large_annotations_do_not_grow_what_an_object_costs() {
        const N: usize = 200;
        /// What one of these Deployments may cost the store (whole, it is over 100 KB).
        const SLIM_CAP: isize = 2048;
        let before = crate::test_alloc::live();
        let r = Reflector::new(Kind::Deployment, false);
        let whole: Vec<DynamicObject> = (0..N)
            .map(|i| {
                serde_json::from_value(slim::tests::deployment(&format!("d{i}"), 50_000)).unwrap()
            })
            .collect();
        let input = crate::test_alloc::live() - before;
        assert!(input > 100_000 * N as isize, "{input}");
        r.change(Store::begin_relist);
        for o in whole {
            let object = slim::from_dynamic(Kind::Deployment, o);
            r.change(|s| s.apply(object));
        }
        r.change(Store::relist_done);
        let per_object = (crate::test_alloc::live() - before) / N as isize;
        assert!(
            per_object <= SLIM_CAP,
            "{per_object} bytes per Deployment (cap {SLIM_CAP})"
        );
        let estimate = lock(&r.store).bytes / N as i64;
        eprintln!("per Deployment: measured {per_object} bytes, estimated {estimate}");
        assert_eq!(lock(&r.store).count, N as i64);
        assert!(
            estimate as isize <= 2 * per_object && per_object <= 2 * estimate as isize,
            "estimate {estimate}, measured {per_object}"
        );
        drop(r);
        assert!(
            crate::test_alloc::live() - before < 4096,
            "the store's memory is freed"
        );
    }

    fn of(name: &str, uid: &str, guid: &str, user: &str) -> Value {
        json!({"metadata": {"name": name, "uid": uid, "resourceVersion": "1",
            "labels": {"tycho-guid": guid, "username": user}}})
    }

    fn picked(r: &Reflector, select: Select<'_>) -> Vec<String> {
        r.select(select)
            .unwrap()
            .iter()
            .map(|o| meta(o, "name").unwrap().to_string())
            .collect()
    }

    #[test]
    fn selections_come_from_indexes_that_follow_changes() {
        let r = synced();
        r.change(|s| s.apply(of("a", "u1", "g", "alice")));
        r.change(|s| s.apply(of("b", "u2", "h", "alice")));
        r.change(|s| s.apply(of("c", "u3", "g", "bob")));
        assert_eq!(picked(&r, Select::Guid("g")), ["a", "c"]);
        assert_eq!(picked(&r, Select::Username("alice")), ["a", "b"]);
        assert_eq!(picked(&r, Select::Name("b")), ["b"]);
        assert_eq!(picked(&r, Select::Name("z")), Vec::<String>::new());
        assert_eq!(picked(&r, Select::All), ["a", "b", "c"]);
        // a is relabelled (a modify), c deleted
        r.change(|s| s.apply(of("a", "u1", "h", "bob")));
        r.change(|s| s.delete(&of("c", "u3", "g", "bob")));
        assert_eq!(picked(&r, Select::Guid("g")), Vec::<String>::new());
        assert_eq!(picked(&r, Select::Guid("h")), ["a", "b"]);
        assert_eq!(picked(&r, Select::Username("alice")), ["b"]);
        assert_eq!(picked(&r, Select::Username("bob")), ["a"]);
        // an own write shows in the selections of its labels only
        r.wrote(of("w", "u9", "g", "carol"));
        assert_eq!(picked(&r, Select::Guid("g")), ["w"]);
        assert_eq!(picked(&r, Select::Username("carol")), ["w"]);
        assert_eq!(picked(&r, Select::Username("bob")), ["a"]);
        // a relist rebuilds the indexes from what it listed
        r.change(Store::begin_relist);
        r.change(|s| s.apply(of("d", "u4", "g", "alice")));
        r.change(Store::relist_done);
        assert_eq!(picked(&r, Select::Username("alice")), ["d"]);
        assert_eq!(picked(&r, Select::Guid("h")), Vec::<String>::new());
        let s = lock(&r.store);
        assert_eq!(s.by_guid.len(), 1);
        assert_eq!(s.by_username.len(), 1);
    }

    #[test]
    fn resource_versions_compare_as_integers() {
        assert!(not_older("10", "9"));
        assert!(!not_older("9", "10"));
        assert!(not_older("abc", "abc"));
        assert!(!not_older("abd", "abc"));
    }
}
