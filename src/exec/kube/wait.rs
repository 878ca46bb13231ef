//! Readiness of one system and why it is not ready, one look at a time or followed from
//! watch events until it is: `tycho up --wait`, `tycho events`, `GET /system/events`,
//! `TychoContext.readiness`, `TychoContext.aprogress` and `TychoContext.wait`.
//!
//! A look reads the system's Deployment (by its `tycho-guid` label), its pods and the
//! Kubernetes Events about them, from the watch cache when it is fresh (else from the API
//! server), on the executor's client ([`super::client`]): the same configuration, runtime
//! and namespace rule as start, status and delete. Readiness comes from the Deployment's
//! status (every replica available, of the current generation); the reason it is not
//! ready from the pods' conditions, their containers' states (`OOMKilled` included) and
//! the newest event that explains them (`Pulling: Pulling image "x"`, `FailedScheduling:
//! 0/3 nodes are available: 3 Insufficient cpu.`, `BackOff: ...`, `ImagePullBackOff`,
//! `CrashLoopBackOff`). Progress events are modelled on JupyterHub KubeSpawner's: a
//! percentage, a phase, a message, and `ready` / `failed` flags.
//!
//! A [`Follower`] subscribes to the changes of its system in the watch cache
//! (`super::cache::Hub`) and looks again at each: a pod turning Ready reaches it as soon
//! as the watch delivers it, with no polling. A process without the cache (a one-shot
//! command) watches that one system for as long as it follows.

use super::client;
use super::error::KubeError;
use super::GUID_LABEL;
use crate::error::{ErrorKind, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use serde::Serialize;
use std::time::Duration;

const KIND: ErrorKind = ErrorKind::Kube;

/// How often a follower looks again when its watches are not fresh.
const INTERVAL: Duration = Duration::from_millis(500);

/// How waiting for a system ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Every replica is available.
    Available,
    /// It cannot become available without a change (the reason names it).
    Failed(String),
    /// The time ran out; the last reason seen, if any.
    TimedOut(String),
}

/// One progress event of a system (KubeSpawner's `{"progress", "message", "ready"}`,
/// plus `failed` and the short `reason`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// The system's GUID.
    pub sid: String,
    /// 0 (nothing seen yet) to 100 (ready).
    pub progress: u8,
    /// Where it is: `Pending` (no pod yet), `Scheduling`, `Pulling` (an image),
    /// `Starting`, `Running` (not every replica available yet), `Ready`, `Failed`,
    /// `Stopped` (scaled to zero), `Deleted` (no Deployment).
    pub phase: String,
    /// What is happening, in one line (names the Deployment and the pod).
    pub message: String,
    /// Every replica is available.
    pub ready: bool,
    /// It cannot become ready without a change (image, crash loop, deadline).
    pub failed: bool,
    /// Why it is not ready, short (`ImagePullBackOff: ...`); None when ready or unknown.
    pub reason: Option<String>,
}

/// Waiting reasons of a container that do not go away by waiting.
const FATAL_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// What one look at the cluster found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The Deployment's name.
    pub name: String,
    /// How far the pods got: 0 none, 1 created, 2 scheduled, 3 containers running.
    pub stage: u8,
    /// Why it is not ready, short (the fatal reason first).
    pub reason: Option<String>,
    /// Replicas wanted.
    pub desired: i32,
    /// Replicas available.
    pub available: i32,
    /// Every replica available (and the status is of the current spec).
    pub done: bool,
    /// A reason it cannot get there.
    pub fatal: Option<String>,
    /// Why it is not there yet (pod phase, container waiting reason, scheduling).
    pub pending: Option<String>,
    /// A pod's newest image event is `Pulling` (no `Pulled` since).
    pub pulling: bool,
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The reason of a stopped system (its Deployment scaled to 0 by `tycho stop`).
pub const STOPPED_REASON: &str = "Stopped: scaled to 0 replicas (tycho resume starts it again)";

/// Container waiting reasons that say nothing a pod's events do not say better.
const GENERIC_WAITING: &[&str] = &["ContainerCreating", "PodInitializing"];

/// Normal events that explain a pod that is not running yet (image pulls).
const IMAGE_EVENTS: &[&str] = &["Pulling", "Pulled"];

/// When an event last happened: its last timestamp, its series' last observation, its
/// event time or its first timestamp; then its resourceVersion (timestamps are seconds).
fn event_order(e: &Event) -> (Option<String>, u64) {
    let time = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .or_else(|| {
            e.series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref())
                .map(|t| t.0.to_string())
        })
        .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0.to_string()));
    let version = e
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (time, version)
}

/// Judges a Deployment and its pods (and the events about them).
// Long because: one judgement over a Deployment's conditions and each pod's container states, case by case.
pub fn observe(deployment: &Deployment, pods: &[Pod], events: &[Event]) -> Observation {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let current = status.observed_generation.is_none_or(|g| g >= generation);
    let mut obs = Observation {
        name: deployment.metadata.name.clone().unwrap_or_default(),
        desired,
        available,
        done: current && available >= desired,
        ..Default::default()
    };
    for c in status.conditions.iter().flatten() {
        let reason = c.reason.clone().unwrap_or_default();
        let message = one_line(c.message.as_deref().unwrap_or(""));
        if c.type_ == "Progressing" && c.status == "False" && reason == "ProgressDeadlineExceeded" {
            let text = short("ProgressDeadlineExceeded", &message);
            obs.fatal = Some(text.clone());
            obs.reason = Some(text);
        }
        if c.type_ == "ReplicaFailure" && c.status == "True" {
            obs.fatal = Some(format!("ReplicaFailure {reason}: {message}"));
            obs.reason = Some(short(&reason, &message));
        }
    }
    // Why it is not ready, from the most telling to the least: (long, short).
    let mut scheduling: Option<(String, String)> = None;
    let mut oom: Option<(String, String)> = None;
    let mut waiting_specific: Option<(String, String)> = None;
    let mut waiting_generic: Option<(String, String)> = None;
    let mut phase: Option<(String, String)> = None;
    for pod in pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        obs.stage = obs.stage.max(1);
        let Some(ps) = pod.status.as_ref() else {
            continue;
        };
        let scheduled = ps
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
            || ps.phase.as_deref() == Some("Running");
        if scheduled {
            obs.stage = obs.stage.max(2);
        }
        let running = ps.container_statuses.as_ref().is_some_and(|s| {
            !s.is_empty()
                && s.iter()
                    .all(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
        });
        if running {
            obs.stage = obs.stage.max(3);
        }
        let statuses = ps
            .init_container_statuses
            .iter()
            .flatten()
            .chain(ps.container_statuses.iter().flatten());
        for cs in statuses {
            let ended = |s: Option<&k8s_openapi::api::core::v1::ContainerState>| {
                s.and_then(|s| s.terminated.as_ref())
                    .and_then(|t| t.reason.clone())
            };
            let killed = [ended(cs.state.as_ref()), ended(cs.last_state.as_ref())]
                .into_iter()
                .flatten()
                .any(|r| r == "OOMKilled");
            if killed && oom.is_none() {
                let restarts = if cs.restart_count > 0 {
                    format!(" (restarted {} times)", cs.restart_count)
                } else {
                    String::new()
                };
                let message = format!(
                    "container {} was killed for using more memory than its limit{restarts}",
                    cs.name
                );
                oom = Some((
                    format!("pod {pod_name}: OOMKilled: {message}"),
                    short("OOMKilled", &message),
                ));
            }
            let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = waiting.reason.clone().unwrap_or_default();
            let message = one_line(waiting.message.as_deref().unwrap_or(""));
            let text = if message.is_empty() {
                format!("pod {pod_name} container {}: {reason}", cs.name)
            } else {
                format!("pod {pod_name} container {}: {reason}: {message}", cs.name)
            };
            if FATAL_WAITING.contains(&reason.as_str()) {
                if obs.fatal.is_none() {
                    obs.fatal = Some(text);
                    // A crash loop of a container the kernel killed for its memory says so.
                    obs.reason = Some(match (&oom, reason.as_str()) {
                        (Some((_, why)), "CrashLoopBackOff") => why.clone(),
                        _ => short(&reason, &message),
                    });
                }
            } else if reason.is_empty() {
                continue;
            } else if GENERIC_WAITING.contains(&reason.as_str()) {
                waiting_generic.get_or_insert((text, short(&reason, &message)));
            } else {
                waiting_specific.get_or_insert((text, short(&reason, &message)));
            }
        }
        for c in ps.conditions.iter().flatten() {
            if c.type_ == "PodScheduled" && c.status == "False" {
                let reason = c.reason.clone().unwrap_or_else(|| "Unschedulable".into());
                let message = one_line(c.message.as_deref().unwrap_or(""));
                scheduling.get_or_insert((
                    format!("pod {pod_name}: {reason}: {message}"),
                    short(&reason, &message),
                ));
            }
        }
        if let Some(p) = ps.phase.as_deref().filter(|p| *p != "Running") {
            phase.get_or_insert((format!("pod {pod_name}: {p}"), p.to_string()));
        }
    }
    // The newest event that explains a pod: a Warning (FailedScheduling, BackOff,
    // Unhealthy, FailedMount, ...), or an image pull while the containers do not run.
    let explains = |e: &&Event| match e.type_.as_deref() {
        Some("Warning") => true,
        _ => obs.stage < 3 && IMAGE_EVENTS.contains(&e.reason.as_deref().unwrap_or("")),
    };
    let newest = events
        .iter()
        .filter(explains)
        .max_by_key(|e| event_order(e));
    obs.pulling = obs.stage < 3
        && events
            .iter()
            .filter(|e| IMAGE_EVENTS.contains(&e.reason.as_deref().unwrap_or("")))
            .max_by_key(|e| event_order(e))
            .is_some_and(|e| e.reason.as_deref() == Some("Pulling"));
    let event = newest.map(|e| {
        let reason = e.reason.clone().unwrap_or_default();
        let message = one_line(e.message.as_deref().unwrap_or(""));
        let who = e.involved_object.name.clone().unwrap_or_default();
        let failed_scheduling = reason == "FailedScheduling";
        (
            (
                format!("pod {who}: {reason}: {message}"),
                short(&reason, &message),
            ),
            failed_scheduling,
        )
    });
    let (scheduling_event, other_event) = match event {
        Some((e, true)) => (Some(e), None),
        Some((e, false)) => (None, Some(e)),
        None => (None, None),
    };
    let pending = scheduling_event
        .or(scheduling)
        .or(oom)
        .or(waiting_specific)
        .or(other_event)
        .or(waiting_generic)
        .or(phase);
    if let Some((long, reason)) = pending {
        obs.pending = Some(long);
        if obs.reason.is_none() && !obs.done {
            obs.reason = Some(reason);
        }
    }
    if desired == 0 {
        // Scaled to 0 by `tycho stop` (super::scale): not ready, and said so.
        obs.reason = Some(STOPPED_REASON.into());
    }
    obs
}

/// `Reason: message`, or the reason alone.
fn short(reason: &str, message: &str) -> String {
    if message.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}: {message}")
    }
}

impl Observation {
    /// The progress event of this observation of system `sid`.
    pub fn progress(&self, sid: &str) -> Progress {
        let ready = self.done && self.desired > 0;
        let failed = !ready && self.fatal.is_some();
        let progress = if ready {
            100
        } else {
            [10, 30, 50, 80][usize::from(self.stage.min(3))]
        };
        let detail = self.fatal.as_ref().or(self.pending.as_ref());
        let message = match detail {
            _ if ready => format!(
                "{}: {}/{} replicas available",
                self.name, self.available, self.desired
            ),
            Some(p) => format!(
                "{}: {}/{} available; {p}",
                self.name, self.available, self.desired
            ),
            None => format!(
                "{}: {}/{} available",
                self.name, self.available, self.desired
            ),
        };
        let phase = if ready {
            "Ready"
        } else if failed {
            "Failed"
        } else if self.desired == 0 {
            "Stopped"
        } else {
            match self.stage {
                0 => "Pending",
                1 => "Scheduling",
                2 if self.pulling => "Pulling",
                2 => "Starting",
                _ => "Running",
            }
        };
        Progress {
            sid: sid.to_string(),
            progress,
            phase: phase.to_string(),
            message,
            ready,
            failed,
            reason: if ready { None } else { self.reason.clone() },
        }
    }
}

/// The objects labelled with `guid` that a fresh reflector holds, as `K` (None: not
/// fresh, or an object that does not read as `K`: ask the API server).
fn from_cache<K: serde::de::DeserializeOwned>(
    reflector: &super::cache::Reflector,
    guid: &str,
) -> Option<Vec<K>> {
    reflector
        .select(super::cache::Select::Guid(guid))?
        .iter()
        .map(|o| serde_json::from_value(o.as_ref().clone()).ok())
        .collect()
}

/// One look at system `guid`: None when it has no Deployment. The Deployment, its pods
/// and the events about them come from the watches when they are fresh (`followed`: a
/// long-lived process's cache, or a follower's own watches), else from the API server.
/// With `confirm`, a Deployment the watches do not know is looked for on the API server
/// too (a system another process has just started).
// Long because: the cache path and the API path of one look, side by side.
async fn look(
    client: &kube::Client,
    namespace: &str,
    guid: &str,
    followed: Option<&super::cache::Followed>,
    confirm: bool,
) -> std::result::Result<Option<Observation>, KubeError> {
    let selector = format!("{GUID_LABEL}={guid}");
    let cached = followed
        .and_then(|c| from_cache::<Deployment>(&c.deployments, guid))
        .filter(|found| !(confirm && found.is_empty()));
    let found = match cached {
        Some(found) => found,
        None => {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            deployments
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| {
                    KubeError::from_kube(&e, 1)
                        .context(format!("cannot read the deployment of system {guid}"))
                })?
                .items
        }
    };
    let Some(deployment) = found.into_iter().next() else {
        return Ok(None);
    };
    // The namespace cache's pods reflector selects executor=tycho: it knows this
    // system's pods when its pod template carries that label (tycho's pod.yaml does; an
    // override may not).
    let labelled = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get("executor"))
        .is_some_and(|v| v == "tycho");
    let from_watch = followed.filter(|c| labelled || !c.pods_by_executor);
    let pods = match from_watch.and_then(|c| from_cache::<Pod>(&c.pods, guid)) {
        Some(pods) => pods,
        None => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            pods.list(&ListParams::default().labels(&selector))
                .await
                .map(|l| l.items)
                .unwrap_or_default()
        }
    };
    let current = |e: &Event| {
        pods.iter().any(|p| {
            p.metadata.name.is_some()
                && p.metadata.name == e.involved_object.name
                && (p.metadata.uid.is_none()
                    || e.involved_object.uid.is_none()
                    || p.metadata.uid == e.involved_object.uid)
        })
    };
    let events = match from_watch.and_then(|c| from_cache::<Event>(&c.events, guid)) {
        Some(events) => events.into_iter().filter(|e| current(e)).collect(),
        None => {
            let mut events = Vec::new();
            let events_api: Api<Event> = Api::namespaced(client.clone(), namespace);
            for pod in pods.iter().take(5) {
                let Some(pod_name) = pod.metadata.name.as_deref() else {
                    continue;
                };
                let selector = format!("involvedObject.name={pod_name}");
                // Events are an explanation, not a requirement: without them (no
                // permission, none kept) the pod status still tells.
                if let Ok(list) = events_api
                    .list(&ListParams::default().fields(&selector))
                    .await
                {
                    events.extend(list.items.into_iter().filter(|e| current(e)));
                }
            }
            events
        }
    };
    Ok(Some(observe(&deployment, &pods, &events)))
}

/// The event of a system without a Deployment.
fn gone(sid: &str, namespace: &str) -> Progress {
    Progress {
        sid: sid.to_string(),
        progress: 0,
        phase: "Deleted".into(),
        message: format!("system {sid} has no deployment in namespace {namespace}"),
        ready: false,
        failed: true,
        reason: Some("NotFound".into()),
    }
}

/// One look at system `sid` (its GUID) in `namespace` (None: the executor's rule).
/// A system without a Deployment is `failed` with reason `NotFound`.
pub async fn readiness_async(sid: &str, namespace: Option<&str>) -> Result<Progress> {
    super::check_label_value(KIND, "GUID", sid)?;
    let settings = client::kube_env();
    let connection = client::connection(KIND, &settings).await?;
    let namespace = client::resolve_namespace(KIND, namespace, &connection, &settings)?;
    let cache = super::cache::namespace(&settings, &connection, &namespace);
    let followed = cache.as_ref().map(|c| c.followed());
    match look(&connection.client, &namespace, sid, followed.as_ref(), true).await {
        Ok(Some(obs)) => Ok(obs.progress(sid)),
        Ok(None) => Ok(gone(sid, &namespace)),
        Err(e) => Err(e.into_error(KIND)),
    }
}

/// The longest a follower follows (a caller's "no limit").
pub const MAX_FOLLOW: Duration = Duration::from_secs(86_400);

/// How a follow ended, for the event stream's last event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct End {
    /// The system's GUID.
    pub sid: String,
    /// `ready`, `failed`, `deleted` or `timeout`.
    pub end: &'static str,
    /// Why, when it is not ready (the last reason seen).
    pub reason: Option<String>,
}

/// What a follower tells: a progress event, then how the follow ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The system changed (phase, readiness, reason or message).
    Progress(Progress),
    /// The follow is over.
    End(End),
}

/// A stream of [`Step`]s that owns everything it needs (its watches, its subscription):
/// dropping it frees them.
pub type Steps = std::pin::Pin<Box<dyn futures::Stream<Item = Step> + Send>>;

/// Follows one system from watch events: each change of an object labelled with its
/// GUID (its Deployment, its pods, the events about them) wakes it, and it looks again
/// at what the watches hold. Where no watch is fresh (none allowed, one broken), it
/// looks every [`INTERVAL`] instead.
pub struct Follower {
    sid: String,
    namespace: String,
    client: kube::Client,
    followed: Option<super::cache::Followed>,
    subscription: Option<super::cache::Subscription>,
    /// The follower's own watches (a process without the namespace's cache).
    _scoped: Option<super::cache::Scoped>,
    deadline: tokio::time::Instant,
    looked: bool,
    last: Option<Progress>,
    last_reason: String,
    outcome: Option<WaitOutcome>,
}

impl Follower {
    /// A follower of system `sid` (its GUID) in `namespace` (None: the executor's rule)
    /// for at most `timeout` (at most [`MAX_FOLLOW`]).
    pub async fn new(sid: &str, namespace: Option<&str>, timeout: Duration) -> Result<Follower> {
        super::check_label_value(KIND, "GUID", sid)?;
        let settings = client::kube_env();
        let connection = client::connection(KIND, &settings).await?;
        let namespace = client::resolve_namespace(KIND, namespace, &connection, &settings)?;
        let (followed, scoped) = match super::cache::namespace(&settings, &connection, &namespace) {
            Some(cache) => (Some(cache.followed()), None),
            None => match super::cache::scoped(&settings, &connection, &namespace, sid) {
                Some(scoped) => (Some(scoped.followed.clone()), Some(scoped)),
                None => (None, None),
            },
        };
        // Subscribed before the first look: no change between the two is missed.
        let subscription = followed.as_ref().and_then(|f| f.hub.subscribe(sid));
        Ok(Follower {
            sid: sid.to_string(),
            namespace,
            client: connection.client.clone(),
            followed,
            subscription,
            _scoped: scoped,
            deadline: tokio::time::Instant::now() + timeout.min(MAX_FOLLOW),
            looked: false,
            last: None,
            last_reason: String::new(),
            outcome: None,
        })
    }

    /// The system followed.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// How the follow ended (None while it goes on).
    pub fn outcome(&self) -> Option<&WaitOutcome> {
        self.outcome.as_ref()
    }

    /// Waits for a change (or, without fresh watches, for [`INTERVAL`]); false when the
    /// deadline came first.
    async fn changed(&mut self) -> bool {
        let fresh = self
            .followed
            .as_ref()
            .is_some_and(super::cache::Followed::fresh);
        let poll = if fresh && self.subscription.is_some() {
            None
        } else {
            Some(INTERVAL)
        };
        let deadline = self.deadline;
        let change = async {
            match self.subscription.as_mut() {
                Some(s) => s.changed().await,
                None => std::future::pending().await,
            }
        };
        let tick = async {
            match poll {
                Some(p) => tokio::time::sleep(p).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = change => true,
            () = tick => tokio::time::Instant::now() < deadline,
            () = tokio::time::sleep_until(deadline) => false,
        }
    }

    /// The next progress event that differs from the one before; None once the follow
    /// has ended (ready, failed, deleted: after its event; or the time ran out).
    pub async fn next(&mut self) -> Option<Progress> {
        loop {
            if self.outcome.is_some() {
                return None;
            }
            if self.looked && !self.changed().await {
                self.outcome = Some(WaitOutcome::TimedOut(self.last_reason.clone()));
                return None;
            }
            let confirm = !self.looked;
            self.looked = true;
            let looked = look(
                &self.client,
                &self.namespace,
                &self.sid,
                self.followed.as_ref(),
                confirm,
            )
            .await;
            let event = match looked {
                Ok(Some(obs)) => {
                    let event = obs.progress(&self.sid);
                    if event.ready {
                        self.outcome = Some(WaitOutcome::Available);
                    } else if let Some(reason) = obs.fatal {
                        self.outcome = Some(WaitOutcome::Failed(reason));
                    } else if let Some(p) = obs.pending {
                        self.last_reason = p;
                    }
                    event
                }
                Ok(None) => {
                    let event = gone(&self.sid, &self.namespace);
                    self.outcome = Some(WaitOutcome::Failed(event.message.clone()));
                    event
                }
                Err(e) => Progress {
                    sid: self.sid.clone(),
                    progress: self.last.as_ref().map_or(0, |l| l.progress),
                    phase: self
                        .last
                        .as_ref()
                        .map_or_else(|| "Pending".into(), |l| l.phase.clone()),
                    message: format!("cannot read the deployment yet: {}", e.message),
                    ..Progress::default()
                },
            };
            if self.last.as_ref() != Some(&event) {
                self.last = Some(event.clone());
                return Some(event);
            }
        }
    }

    /// How the follow ended, as the stream's last step (None while it goes on).
    fn end(&self) -> Option<End> {
        let outcome = self.outcome.as_ref()?;
        let last = self.last.as_ref();
        let (end, reason) = match outcome {
            WaitOutcome::Available => ("ready", None),
            WaitOutcome::Failed(why) if last.is_some_and(|l| l.phase == "Deleted") => {
                ("deleted", Some(why.clone()))
            }
            WaitOutcome::Failed(why) => (
                "failed",
                last.and_then(|l| l.reason.clone()).or(Some(why.clone())),
            ),
            WaitOutcome::TimedOut(why) => (
                "timeout",
                last.and_then(|l| l.reason.clone())
                    .or_else(|| Some(why.clone()).filter(|w| !w.is_empty())),
            ),
        };
        Some(End {
            sid: self.sid.clone(),
            end,
            reason,
        })
    }

    /// The follow as a stream: each progress event, then how it ended.
    pub fn steps(self) -> Steps {
        Box::pin(futures::stream::unfold(
            (self, false),
            |(mut follower, ended)| async move {
                if ended {
                    return None;
                }
                match follower.next().await {
                    Some(event) => Some((Step::Progress(event), (follower, false))),
                    None => {
                        let end = follower.end()?;
                        Some((Step::End(end), (follower, true)))
                    }
                }
            },
        ))
    }
}

/// The most systems one event stream of a user follows.
pub const MAX_USER_SYSTEMS: usize = 64;

/// The event stream of system `name`, or of every system of `username` (at most
/// [`MAX_USER_SYSTEMS`], those it has when the stream begins), for at most `timeout`;
/// with its first events read. A system without a Deployment is an error of kind
/// `Input` naming it (`tycho api` answers 404).
pub async fn follow_async(
    name: Option<&str>,
    username: Option<&str>,
    namespace: Option<&str>,
    timeout: Duration,
) -> Result<Steps> {
    use futures::StreamExt;
    let sids: Vec<String> = match (name, username) {
        (Some(name), _) => vec![name.to_string()],
        (None, Some(user)) => super::status_async(None, Some(user), namespace)
            .await?
            .iter()
            .filter_map(|row| Some(row.get("sid")?.as_str()?.to_string()))
            .take(MAX_USER_SYSTEMS)
            .collect(),
        (None, None) => {
            return Err(crate::error::Error::input(
                "name (a GUID) or username is required",
            ))
        }
    };
    if sids.is_empty() {
        return Err(crate::error::Error::input(format!(
            "user {:?} has no systems",
            username.unwrap_or_default()
        ))
        .at("username"));
    }
    let mut streams = Vec::new();
    for sid in &sids {
        let mut steps = Follower::new(sid, namespace, timeout).await?.steps();
        let first = steps.next().await;
        if let (Some(_), Some(Step::Progress(p))) = (name, &first) {
            if p.phase == "Deleted" {
                return Err(
                    crate::error::Error::input(format!("no system with GUID {sid}")).at("name"),
                );
            }
        }
        streams.push(futures::stream::iter(first).chain(steps).boxed());
    }
    Ok(Box::pin(futures::stream::select_all(streams)))
}

/// How many systems' readiness [`add_reasons`] reads at once.
const REASON_READS: usize = 8;

/// Sets `reason` on each status row: why the system is not ready, from
/// [`readiness_async`] (at most [`REASON_READS`] at once); None on a ready row, and
/// when the reading fails (the row itself stays as it was).
pub async fn add_reasons(rows: &mut [serde_json::Value], namespace: Option<&str>) {
    use futures::stream::{self, StreamExt};
    let wanted: Vec<(usize, String)> = rows
        .iter()
        .enumerate()
        .filter(|(_, row)| row.get("is_ready") != Some(&serde_json::Value::Bool(true)))
        .filter_map(|(i, row)| Some((i, row.get("sid")?.as_str()?.to_string())))
        .collect();
    let found: Vec<(usize, Option<String>)> = stream::iter(wanted)
        .map(|(i, sid)| async move {
            let reason = match readiness_async(&sid, namespace).await {
                Ok(p) => p.reason,
                Err(e) => {
                    log::debug!(target: super::LOG_TARGET, "no reason for {sid}: {}", e.message);
                    None
                }
            };
            (i, reason)
        })
        .buffer_unordered(REASON_READS)
        .collect()
        .await;
    for row in rows.iter_mut() {
        if let Some(map) = row.as_object_mut() {
            map.insert("reason".into(), serde_json::Value::Null);
        }
    }
    for (i, reason) in found {
        if let Some(map) = rows[i].as_object_mut() {
            map.insert("reason".into(), reason.into());
        }
    }
}

/// [`readiness_async`], blocking (on the executor's runtime).
pub fn readiness(sid: &str, namespace: Option<&str>) -> Result<Progress> {
    client::block_on(KIND, readiness_async(sid, namespace))
}

/// Follows system `sid` until it is ready, cannot become ready, or `timeout` passes,
/// calling `progress` with each event that differs from the one before ([`Follower`]:
/// from watch events). A failing read of the API server is reported as an event and
/// the wait goes on.
pub async fn wait_async(
    sid: &str,
    namespace: Option<&str>,
    timeout: Duration,
    mut progress: impl FnMut(&Progress),
) -> Result<WaitOutcome> {
    let mut follower = Follower::new(sid, namespace, timeout).await?;
    while let Some(event) = follower.next().await {
        progress(&event);
    }
    Ok(follower
        .outcome()
        .cloned()
        .unwrap_or_else(|| WaitOutcome::TimedOut(String::new())))
}

/// [`wait_async`], blocking (on the executor's runtime); returns the last event.
pub fn wait(sid: &str, namespace: Option<&str>, timeout: Duration) -> Result<Progress> {
    client::block_on(KIND, async {
        let mut last = Progress::default();
        let outcome = wait_async(sid, namespace, timeout, |p| last = p.clone()).await?;
        if let WaitOutcome::TimedOut(_) = outcome {
            last.message = format!(
                "not ready after {} s (timeout): {}",
                timeout.as_secs_f64(),
                last.message
            );
        }
        Ok(last)
    })
}

/// Runs `fut` on the executor's runtime (the command line's `up --wait`).
pub fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    client::block_on(KIND, fut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": 1},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    #[test]
    fn available_when_replicas_available() {
        let d = deployment(json!({"availableReplicas": 1, "observedGeneration": 1}));
        assert!(observe(&d, &[], &[]).done);
        let d = deployment(json!({"availableReplicas": 1, "observedGeneration": 0}));
        assert!(!observe(&d, &[], &[]).done);
    }

    #[test]
    fn reasons() {
        let d = deployment(json!({}));
        let p = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}}]}),
        );
        let o = observe(&d, &[p], &[]);
        assert!(o.fatal.unwrap().contains("ImagePullBackOff"));
        let p = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu."}]}),
        );
        let o = observe(&d, &[p], &[]);
        assert!(o.fatal.is_none());
        assert!(o.pending.unwrap().contains("Unschedulable: 0/3 nodes"));
        let p = pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        );
        assert!(observe(&d, &[p], &[])
            .fatal
            .unwrap()
            .contains("CrashLoopBackOff"));
    }

    fn event(name: &str, kind: &str, reason: &str, message: &str, at: &str, rv: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": name, "resourceVersion": rv},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "type": kind, "reason": reason, "message": message, "lastTimestamp": at,
        }))
        .unwrap()
    }

    fn scheduled_pod(state: serde_json::Value) -> Pod {
        let phase = if state.get("running").is_some() {
            "Running"
        } else {
            "Pending"
        };
        pod(json!({"phase": phase,
                   "conditions": [{"type": "PodScheduled", "status": "True"}],
                   "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false,
                                          "restartCount": 0, "state": state}]}))
    }

    #[test]
    fn image_pulls_are_the_reason_while_the_containers_wait() {
        let d = deployment(json!({}));
        let p = scheduled_pod(json!({"waiting": {"reason": "ContainerCreating"}}));
        let o = observe(&d, std::slice::from_ref(&p), &[]);
        assert_eq!(o.reason.as_deref(), Some("ContainerCreating"));
        assert_eq!(o.progress("g").phase, "Starting");
        let pulling = event(
            "e1",
            "Normal",
            "Pulling",
            "Pulling image \"x\"",
            "2024-01-02T03:04:05Z",
            "5",
        );
        let o = observe(&d, std::slice::from_ref(&p), std::slice::from_ref(&pulling));
        assert_eq!(o.reason.as_deref(), Some("Pulling: Pulling image \"x\""));
        let progress = o.progress("g");
        assert_eq!(
            (progress.phase.as_str(), progress.progress),
            ("Pulling", 50)
        );
        // Pulled in the same second: the resourceVersion orders them.
        let pulled = event(
            "e2",
            "Normal",
            "Pulled",
            "Successfully pulled image \"x\" in 2s",
            "2024-01-02T03:04:05Z",
            "6",
        );
        let o = observe(
            &d,
            std::slice::from_ref(&p),
            &[pulled.clone(), pulling.clone()],
        );
        assert_eq!(
            o.reason.as_deref(),
            Some("Pulled: Successfully pulled image \"x\" in 2s")
        );
        assert_eq!(o.progress("g").phase, "Starting");
        // Once the containers run, image events no longer explain anything.
        let running = scheduled_pod(json!({"running": {}}));
        let o = observe(&d, &[running], &[pulled, pulling]);
        assert_eq!(o.progress("g").phase, "Running");
        assert!(o.reason.is_none(), "{o:?}");
    }

    #[test]
    fn warnings_scheduling_and_oom_kills_are_named() {
        let d = deployment(json!({}));
        let p = pod(json!({"phase": "Pending"}));
        let failed = event(
            "e1",
            "Warning",
            "FailedScheduling",
            "0/3 nodes are available: 3 Insufficient memory.",
            "2024-01-02T03:04:05Z",
            "5",
        );
        let o = observe(&d, &[p], &[failed]);
        assert_eq!(
            o.reason.as_deref(),
            Some("FailedScheduling: 0/3 nodes are available: 3 Insufficient memory.")
        );
        assert_eq!(o.progress("g").phase, "Scheduling");
        assert!(!o.progress("g").failed);
        let p = scheduled_pod(json!({"waiting": {"reason": "ContainerCreating"}}));
        let backoff = event(
            "e2",
            "Warning",
            "BackOff",
            "Back-off pulling image \"x\"",
            "2024-01-02T03:04:06Z",
            "6",
        );
        let o = observe(&d, &[p], &[backoff]);
        assert_eq!(
            o.reason.as_deref(),
            Some("BackOff: Back-off pulling image \"x\"")
        );
        // A container the kernel killed for its memory, restarting: OOMKilled.
        let oom = pod(json!({"phase": "Running",
            "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 1,
                                   "state": {"running": {}},
                                   "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}));
        let o = observe(&d, &[oom], &[]);
        assert_eq!(o.reason.as_deref(), Some("OOMKilled: container web was killed for using more memory than its limit (restarted 1 times)"));
        assert!(!o.progress("g").failed);
        // In a crash loop it has failed, and the reason still says why.
        let looping = pod(json!({"phase": "Running",
            "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
                                   "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                                   "lastState": {"terminated": {"reason": "OOMKilled"}}}]}));
        let o = observe(&d, &[looping], &[]);
        let progress = o.progress("g");
        assert!(
            progress.failed && progress.phase == "Failed",
            "{progress:?}"
        );
        assert!(progress
            .reason
            .unwrap()
            .starts_with("OOMKilled: container web"));
        assert!(o.fatal.unwrap().contains("CrashLoopBackOff"));
    }

    #[test]
    fn phases() {
        let ready = deployment(json!({"availableReplicas": 1, "observedGeneration": 1}));
        assert_eq!(observe(&ready, &[], &[]).progress("g").phase, "Ready");
        let d = deployment(json!({}));
        assert_eq!(observe(&d, &[], &[]).progress("g").phase, "Pending");
        assert_eq!(
            observe(&d, &[pod(json!({}))], &[]).progress("g").phase,
            "Scheduling"
        );
        let mut stopped = deployment(json!({}));
        stopped.spec.as_mut().unwrap().replicas = Some(0);
        assert_eq!(observe(&stopped, &[], &[]).progress("g").phase, "Stopped");
        assert_eq!(gone("g", "ns").phase, "Deleted");
    }

    /// Readiness reads the cache's slim objects: what it makes of them is what it makes
    /// of the whole objects.
    #[test]
    fn slim_objects_observe_as_whole_ones() {
        use super::super::{slim, Kind};
        let typed =
            |v: &serde_json::Value| -> Deployment { serde_json::from_value(v.clone()).unwrap() };
        let pods = [
            json!({"metadata": {"name": "p1", "labels": {"tycho-guid": "g"}, "annotations": {"a": "x".repeat(10_000)}},
                   "spec": {"containers": [{"name": "web", "image": "x"}]},
                   "status": {"phase": "Pending",
                              "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                              "message": "0/3 nodes are available: 3 Insufficient cpu.",
                                              "lastTransitionTime": "2024-01-02T03:04:05Z"}],
                              "initContainerStatuses": [{"name": "init", "image": "i", "imageID": "", "ready": false,
                                                         "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}],
                              "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false,
                                                     "restartCount": 0,
                                                     "state": {"waiting": {"reason": "ImagePullBackOff",
                                                                           "message": "Back-off pulling image \"x\""}}}]}}),
            json!({"metadata": {"name": "p2"},
                   "status": {"phase": "Running",
                              "conditions": [{"type": "PodScheduled", "status": "True"}],
                              "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": true,
                                                     "restartCount": 0,
                                                     "state": {"running": {"startedAt": "2024-01-02T03:04:05Z"}}}]}}),
        ];
        let mut failing = slim::tests::deployment("d", 5_000);
        failing["status"] = json!({"replicas": 1, "observedGeneration": 1, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet \"d-1\" has timed out progressing."},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota"}]});
        for d in [slim::tests::deployment("d", 5_000), failing] {
            let slim_d = typed(&slim::slim(Kind::Deployment, d.clone()));
            for chosen in [&pods[..0], &pods[..1], &pods[1..], &pods[..]] {
                let whole: Vec<Pod> = chosen
                    .iter()
                    .map(|p| serde_json::from_value(p.clone()).unwrap())
                    .collect();
                let slim_pods: Vec<Pod> = chosen
                    .iter()
                    .map(|p| serde_json::from_value(slim::slim(Kind::Pod, p.clone())).unwrap())
                    .collect();
                assert_eq!(
                    observe(&typed(&d), &whole, &[]),
                    observe(&slim_d, &slim_pods, &[])
                );
            }
        }
    }
}
