//! Cluster reads of the command line and the server that the executor does not offer:
//! `tycho up --wait` (is the Deployment available, and if not, why: pod status and
//! Warning events) and `/readyz` (does the API server answer).
//!
//! It uses the executor's kube client (one per process, made on first use and again
//! after `fork()`), so it honours the same configuration, `--kubeconfig` and `--context`.

use crate::error::{Error, ErrorKind, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use std::time::{Duration, Instant};

const KIND: ErrorKind = ErrorKind::Kube;
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

struct Shared {
    client: kube::Client,
    namespace: String,
}

/// The executor's client (`crate::kube`): same configuration, same process-wide client
/// (made again after `fork()`).
async fn shared() -> Result<Shared> {
    let (client, namespace) = crate::kube::shared_client(KIND).await?;
    Ok(Shared { client, namespace })
}

/// The namespace the executor uses for `explicit`: it, else NAMESPACE, else the pod's
/// service-account namespace, else the kubeconfig context's.
pub async fn namespace(explicit: Option<&str>) -> Result<String> {
    if let Some(n) = explicit.filter(|s| !s.is_empty()) {
        return Ok(n.to_string());
    }
    if let Some(n) = crate::kube::settings().namespace {
        return Ok(n);
    }
    if let Some(n) = std::fs::read_to_string(NAMESPACE_FILE)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
    {
        return Ok(n);
    }
    Ok(shared().await?.namespace.clone())
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} (HTTP {}): {}", s.reason, s.code, s.message),
        other => format!("cannot reach the Kubernetes API: {other}"),
    }
}

/// Ok when the Kubernetes API server answers (`GET /version`).
pub async fn api_ready() -> Result<()> {
    let shared = shared().await?;
    shared
        .client
        .apiserver_version()
        .await
        .map(|_| ())
        .map_err(|e| Error::new(KIND, describe(&e)))
}

/// How waiting for a Deployment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Every replica is available.
    Available,
    /// It cannot become available without a change (the reason names it).
    Failed(String),
    /// The time ran out; the last reason seen, if any.
    TimedOut(String),
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
    let current = status.observed_generation.is_none_or(|g| g >= generation);
    let mut obs = Observation {
        desired,
        available,
        done: current && available >= desired,
        ..Default::default()
    };
    for c in status.conditions.iter().flatten() {
        let reason = c.reason.clone().unwrap_or_default();
        let message = one_line(c.message.as_deref().unwrap_or(""));
        if c.type_ == "Progressing" && c.status == "False" && reason == "ProgressDeadlineExceeded" {
            obs.fatal = Some(format!("ProgressDeadlineExceeded: {message}"));
        }
        if c.type_ == "ReplicaFailure" && c.status == "True" {
            obs.fatal = Some(format!("ReplicaFailure {reason}: {message}"));
        }
    }
    for pod in pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let Some(ps) = pod.status.as_ref() else {
            continue;
        };
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
                obs.fatal.get_or_insert(text);
            } else if !reason.is_empty() {
                obs.pending.get_or_insert(text);
            }
        }
        for c in ps.conditions.iter().flatten() {
            if c.type_ == "PodScheduled" && c.status == "False" {
                let reason = c.reason.clone().unwrap_or_else(|| "Unschedulable".into());
                let message = one_line(c.message.as_deref().unwrap_or(""));
                obs.pending
                    .get_or_insert(format!("pod {pod_name}: {reason}: {message}"));
            }
        }
        if obs.pending.is_none() {
            if let Some(phase) = ps.phase.as_deref().filter(|p| *p != "Running") {
                obs.pending = Some(format!("pod {pod_name}: {phase}"));
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
            }
        }
    }
    obs
}

async fn look(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    guid: &str,
) -> Result<Observation> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployments.get(name).await.map_err(|e| match &e {
        kube::Error::Api(s) if s.code == 404 => Error::new(
            KIND,
            format!("deployment {name} no longer exists in namespace {namespace}"),
        ),
        _ => Error::new(KIND, describe(&e)),
    })?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = pods
        .list(&ListParams::default().labels(&format!("tycho-guid={guid}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
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
    Ok(observe(&deployment, &pods, &events))
}

/// Waits for Deployment `name` (of system `guid`) to become available, calling
/// `progress` with a line whenever what it sees changes.
pub async fn wait_available(
    namespace: Option<&str>,
    name: &str,
    guid: &str,
    timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<WaitOutcome> {
    let shared = shared().await?;
    let namespace = self::namespace(namespace).await?;
    let deadline = Instant::now() + timeout;
    let mut last_line = String::new();
    let mut last_reason = String::new();
    loop {
        let obs = match look(&shared.client, &namespace, name, guid).await {
            Ok(o) => o,
            Err(e) if e.message.contains("no longer exists") => {
                return Ok(WaitOutcome::Failed(e.message))
            }
            Err(e) => {
                // A hiccup of the API server: say so, keep waiting.
                let line = format!("cannot read the deployment yet: {}", e.message);
                if line != last_line {
                    progress(&line);
                    last_line = line;
                }
                Observation::default()
            }
        };
        if obs.done && obs.desired > 0 {
            progress(&format!(
                "{name}: {}/{} replicas available",
                obs.available, obs.desired
            ));
            return Ok(WaitOutcome::Available);
        }
        if let Some(reason) = obs.fatal {
            return Ok(WaitOutcome::Failed(reason));
        }
        if let Some(p) = &obs.pending {
            last_reason = p.clone();
        }
        let line = match &obs.pending {
            Some(p) => format!("{name}: {}/{} available; {p}", obs.available, obs.desired),
            None => format!("{name}: {}/{} available", obs.available, obs.desired),
        };
        if line != last_line && obs.desired > 0 {
            progress(&line);
            last_line = line;
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(WaitOutcome::TimedOut(last_reason));
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(500))).await;
    }
}

/// Runs `fut` on the process's runtime (`crate::runtime`; for the blocking command line).
pub fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    crate::runtime::block_on(KIND, fut)
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
}
