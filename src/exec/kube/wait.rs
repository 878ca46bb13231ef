//! Readiness of one system and why it is not ready, one look at a time or as a stream
//! of progress events until it is: `tycho up --wait`, `TychoContext.readiness`,
//! `TychoContext.aprogress` and `TychoContext.wait`.
//!
//! A look reads the system's Deployment (by its `tycho-guid` label), its pods and their
//! Warning events on the executor's client ([`super::client`]): the same configuration,
//! runtime and namespace rule as start, status and delete. Readiness comes from the
//! Deployment's status (every replica available, of the current generation); the reason
//! it is not ready from the pods' conditions, their containers' states and the newest
//! Warning event (`ImagePullBackOff: ...`, `Unschedulable: 0/3 nodes are available: 3
//! Insufficient cpu.`, `CrashLoopBackOff`). Progress events are modelled on JupyterHub
//! KubeSpawner's: a percentage, a message, and `ready` / `failed` flags.

use super::client;
use super::error::KubeError;
use super::GUID_LABEL;
use crate::error::{ErrorKind, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use serde::Serialize;
use std::time::{Duration, Instant};

const KIND: ErrorKind = ErrorKind::Kube;

/// How often a wait looks again.
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
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Judges a Deployment and its pods (and their Warning events).
pub fn observe(deployment: &Deployment, pods: &[Pod], events: &[Event]) -> Observation {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let mut pending_reason: Option<String> = None;
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
                    obs.reason = Some(short(&reason, &message));
                }
            } else if !reason.is_empty() && obs.pending.is_none() {
                obs.pending = Some(text);
                pending_reason = Some(short(&reason, &message));
            }
        }
        for c in ps.conditions.iter().flatten() {
            if c.type_ == "PodScheduled" && c.status == "False" {
                let reason = c.reason.clone().unwrap_or_else(|| "Unschedulable".into());
                let message = one_line(c.message.as_deref().unwrap_or(""));
                if obs.pending.is_none() {
                    obs.pending = Some(format!("pod {pod_name}: {reason}: {message}"));
                    pending_reason = Some(short(&reason, &message));
                }
            }
        }
        if obs.pending.is_none() {
            if let Some(phase) = ps.phase.as_deref().filter(|p| *p != "Running") {
                obs.pending = Some(format!("pod {pod_name}: {phase}"));
                pending_reason = Some(phase.to_string());
            }
        }
    }
    // The newest Warning event explains what the pod status does not say yet.
    if obs.fatal.is_none() {
        let newest = events
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .max_by_key(|e| {
                e.last_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .or_else(|| e.event_time.as_ref().map(|t| t.0))
            });
        if let Some(e) = newest {
            let reason = e.reason.clone().unwrap_or_default();
            let message = one_line(e.message.as_deref().unwrap_or(""));
            let who = e.involved_object.name.clone().unwrap_or_default();
            let text = format!("pod {who}: {reason}: {message}");
            if matches!(reason.as_str(), "FailedScheduling") || obs.pending.is_none() {
                obs.pending = Some(text);
                pending_reason = Some(short(&reason, &message));
            }
        }
    }
    if obs.reason.is_none() && !obs.done {
        obs.reason = pending_reason;
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
        Progress {
            sid: sid.to_string(),
            progress,
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

/// One look at system `guid`: None when it has no Deployment. The Deployment and pods
/// come from the watch cache when it is fresh (a long-lived process), the Warning
/// events from the API server.
async fn look(
    client: &kube::Client,
    namespace: &str,
    guid: &str,
    cache: Option<&super::cache::Namespace>,
) -> std::result::Result<Option<Observation>, KubeError> {
    let selector = format!("{GUID_LABEL}={guid}");
    let cached_deployments = cache.and_then(|c| from_cache::<Deployment>(&c.deployments, guid));
    let found = match cached_deployments {
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
    // The pods reflector selects executor=tycho: it knows this system's pods when its
    // pod template carries that label (tycho's pod.yaml does; an override may not).
    let labelled = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get("executor"))
        .is_some_and(|v| v == "tycho");
    let pods = match cache
        .filter(|_| labelled)
        .and_then(|c| from_cache::<Pod>(&c.pods, guid))
    {
        Some(pods) => pods,
        None => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            pods.list(&ListParams::default().labels(&selector))
                .await
                .map(|l| l.items)
                .unwrap_or_default()
        }
    };
    let mut events = Vec::new();
    let events_api: Api<Event> = Api::namespaced(client.clone(), namespace);
    for pod in pods.iter().take(5) {
        let Some(pod_name) = pod.metadata.name.as_deref() else {
            continue;
        };
        let selector = format!("involvedObject.name={pod_name}");
        // Events are an explanation, not a requirement: without them (no permission,
        // none kept) the pod status still tells.
        if let Ok(list) = events_api
            .list(&ListParams::default().fields(&selector))
            .await
        {
            events.extend(list.items);
        }
    }
    Ok(Some(observe(&deployment, &pods, &events)))
}

/// The event of a system without a Deployment.
fn gone(sid: &str, namespace: &str) -> Progress {
    Progress {
        sid: sid.to_string(),
        progress: 0,
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
    let settings = client::settings();
    let connection = client::connection(KIND, &settings).await?;
    let namespace = client::resolve_namespace(KIND, namespace, &connection, &settings)?;
    let cache = super::cache::namespace(&settings, &connection, &namespace);
    match look(&connection.client, &namespace, sid, cache.as_deref()).await {
        Ok(Some(obs)) => Ok(obs.progress(sid)),
        Ok(None) => Ok(gone(sid, &namespace)),
        Err(e) => Err(e.into_error(KIND)),
    }
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
/// calling `progress` with each event that differs from the one before. A failing read
/// of the API server is reported as an event and the wait goes on.
pub async fn wait_async(
    sid: &str,
    namespace: Option<&str>,
    timeout: Duration,
    mut progress: impl FnMut(&Progress),
) -> Result<WaitOutcome> {
    super::check_label_value(KIND, "GUID", sid)?;
    let settings = client::settings();
    let connection = client::connection(KIND, &settings).await?;
    let namespace = client::resolve_namespace(KIND, namespace, &connection, &settings)?;
    let deadline = Instant::now() + timeout;
    let mut last = Progress::default();
    let mut last_reason = String::new();
    let cache = super::cache::namespace(&settings, &connection, &namespace);
    loop {
        let (event, obs) = match look(&connection.client, &namespace, sid, cache.as_deref()).await {
            Ok(Some(obs)) => (obs.progress(sid), Some(obs)),
            Ok(None) => {
                let event = gone(sid, &namespace);
                progress(&event);
                return Ok(WaitOutcome::Failed(event.message));
            }
            Err(e) => {
                let event = Progress {
                    sid: sid.to_string(),
                    progress: last.progress,
                    message: format!("cannot read the deployment yet: {}", e.message),
                    ..Progress::default()
                };
                (event, None)
            }
        };
        if event != last {
            progress(&event);
        }
        if event.ready {
            return Ok(WaitOutcome::Available);
        }
        if let Some(obs) = obs {
            if let Some(reason) = obs.fatal {
                return Ok(WaitOutcome::Failed(reason));
            }
            if let Some(p) = obs.pending {
                last_reason = p;
            }
        }
        last = event;
        let now = Instant::now();
        if now >= deadline {
            return Ok(WaitOutcome::TimedOut(last_reason));
        }
        tokio::time::sleep((deadline - now).min(INTERVAL)).await;
    }
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
