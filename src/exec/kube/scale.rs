//! Stopping, resuming and touching a system: its Deployments scaled to 0 (the replica
//! count kept in the annotation [`STOPPED_REPLICAS`]) and back, and the time of its last
//! activity recorded in the annotation [`LAST_ACTIVITY`]. Everything else a system owns
//! (Services, the token Secret, claims, the NetworkPolicy) is left as it is.
//!
//! Each is one merge patch per Deployment, after one read of the system's Deployments
//! (from the watch cache when it is fresh and knows the system: then one round trip). All are idempotent: a
//! stopped system stops again without a change, a running one resumes without one.

use super::client;
use super::retry;
use super::{check_label_value, err, Kind, GUID_LABEL, LOG_TARGET};
use crate::error::{ErrorKind, Result};
use futures::future::join_all;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{json, Value};

const KIND: ErrorKind = ErrorKind::Kube;

/// The annotation of a stopped Deployment: the replica count it had.
pub const STOPPED_REPLICAS: &str = "tycho.renci.org/stopped-replicas";
/// The annotation `touch` sets: the time of the system's last activity (RFC 3339, UTC).
pub const LAST_ACTIVITY: &str = "tycho.renci.org/last-activity";
/// The annotation of the app's activity probe (`{"port", "path", "field"}` as JSON),
/// copied from the registry's `activity` at start.
pub const ACTIVITY_PROBE: &str = crate::text::names::ACTIVITY_ANNOTATION;

/// What a lifecycle operation does to each Deployment of a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Scale to 0, keeping the replica count in [`STOPPED_REPLICAS`].
    Stop,
    /// Scale back to the kept replica count (1 when none is kept).
    Resume,
    /// Set [`LAST_ACTIVITY`] to the time given.
    Touch,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Resume => "resume",
            Action::Touch => "touch",
        }
    }
}

/// The time as the annotations write it: RFC 3339, UTC, seconds.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The replica count of a Deployment's spec (1 when unset, as Kubernetes defaults it).
pub(crate) fn spec_replicas(d: &Value) -> i64 {
    d.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// The patch `action` makes to Deployment `d` at time `now`; None when it is as wanted.
pub(crate) fn patch_for(action: Action, d: &Value, now: &str) -> Option<Value> {
    let replicas = spec_replicas(d);
    let kept = d
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(STOPPED_REPLICAS))
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<i32>().ok())
        .filter(|n| (1..=1000).contains(n));
    match action {
        Action::Stop if replicas == 0 => None,
        Action::Stop => Some(json!({
            "metadata": {"annotations": {STOPPED_REPLICAS: replicas.to_string()}},
            "spec": {"replicas": 0},
        })),
        // A resumed system counts as active now (culling must not stop it at once).
        Action::Resume if replicas > 0 => None,
        Action::Resume => Some(json!({
            "metadata": {"annotations": {STOPPED_REPLICAS: null, LAST_ACTIVITY: now}},
            "spec": {"replicas": kept.unwrap_or(1)},
        })),
        Action::Touch => Some(json!({"metadata": {"annotations": {LAST_ACTIVITY: now}}})),
    }
}

/// Stops system `guid` (blocking). See [`apply_async`].
pub fn stop(guid: &str, namespace: Option<&str>) -> Result<Value> {
    client::block_on(
        KIND,
        apply_async(Action::Stop, guid, namespace, chrono::Utc::now()),
    )
}

/// Resumes system `guid` (blocking), its last activity set to `crate::environment::cull::clock`.
/// See [`apply_async`].
pub fn resume(guid: &str, namespace: Option<&str>) -> Result<Value> {
    let now = crate::environment::cull::clock()?;
    client::block_on(KIND, apply_async(Action::Resume, guid, namespace, now))
}

/// Records activity of system `guid` at `now` (blocking). See [`apply_async`].
pub fn touch(
    guid: &str,
    namespace: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Value> {
    client::block_on(KIND, apply_async(Action::Touch, guid, namespace, now))
}

/// The Deployments of system `guid` (whole from the API server, slim from a fresh cache).
async fn deployments_of(
    connection: &client::Connection,
    cache: Option<&super::cache::Namespace>,
    namespace: &str,
    guid: &str,
) -> Result<Vec<Value>> {
    // An empty answer may be a system another process just created that the watch has
    // not delivered yet: the API server then says.
    if let Some(found) = cache
        .and_then(|c| c.deployments.select(super::cache::Select::Guid(guid)))
        .filter(|found| !found.is_empty())
    {
        return Ok(found.iter().map(|d| d.as_ref().clone()).collect());
    }
    let api = Kind::Deployment.api(&connection.client, namespace);
    let selector = format!("{GUID_LABEL}={guid}");
    let what = format!("deployments labelled {selector}");
    let params = ListParams::default().labels(&selector);
    let list = retry::idempotent(&what, || api.list(&params))
        .await
        .map_err(|e| err(KIND, format!("cannot list {what}: {e}")))?;
    Ok(list
        .items
        .iter()
        .map(|d| serde_json::to_value(d).unwrap_or_default())
        .collect())
}

/// Applies `action` to every Deployment of system `guid` in `namespace` at time `now`;
/// returns `{"name": guid, "deployments": {name: replicas after}}`. A system without a
/// Deployment is an error naming the GUID; a Deployment already as wanted is left alone.
pub async fn apply_async(
    action: Action,
    guid: &str,
    namespace: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Value> {
    let verb = action.verb();
    if guid.is_empty() {
        return Err(err(KIND, format!("Failed to {verb} system: no GUID given")));
    }
    check_label_value(KIND, "GUID", guid)?;
    let settings = client::settings();
    let connection = client::connection(KIND, &settings).await?;
    let namespace = client::resolve_namespace(KIND, namespace, &connection, &settings)?;
    let cache = super::cache::namespace(&settings, &connection, &namespace);
    let now = timestamp(now);
    let work = async {
        let deployments = deployments_of(&connection, cache.as_deref(), &namespace, guid).await?;
        if deployments.is_empty() {
            return Err(err(
                KIND,
                format!("Failed to {verb} system {guid}: no system with GUID {guid} in namespace {namespace}"),
            ));
        }
        let api = Kind::Deployment.api(&connection.client, &namespace);
        let results = join_all(deployments.iter().map(|d| {
            let api = &api;
            let name = d
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let patch = patch_for(action, d, &now);
            let replicas = spec_replicas(d);
            async move {
                let Some(patch) = patch else {
                    return Ok::<_, String>((name, replicas, None));
                };
                let what = format!("Deployment {name:?}");
                let params = PatchParams::default();
                let body = Patch::Merge(&patch);
                let patched = retry::idempotent(&what, || api.patch(&name, &params, &body))
                    .await
                    .map_err(|e| format!("cannot patch {what}: {e}"))?;
                let value = serde_json::to_value(&patched).unwrap_or_default();
                Ok((name, spec_replicas(&value), Some(value)))
            }
        }))
        .await;
        let mut out = serde_json::Map::new();
        let mut problems: Vec<String> = Vec::new();
        for r in results {
            match r {
                Ok((name, replicas, written)) => {
                    if let (Some(cache), Some(value)) = (cache.as_deref(), written) {
                        cache.deployments.wrote(value);
                    }
                    out.insert(name, json!(replicas));
                }
                Err(problem) => problems.push(problem),
            }
        }
        if !problems.is_empty() {
            return Err(err(
                KIND,
                format!("Failed to {verb} system {guid}: {}", problems.join("; ")),
            ));
        }
        Ok(json!({"name": guid, "deployments": out}))
    };
    let timeout = settings.operation_timeout;
    let result = tokio::time::timeout(timeout, work).await.unwrap_or_else(|_| {
        Err(err(
            KIND,
            format!("Failed to {verb} system {guid}: timed out after {timeout:?} (TYCHO_KUBE_TIMEOUT)"),
        ))
    })?;
    if action != Action::Touch {
        log::info!(target: LOG_TARGET, "{verb} system {guid} in namespace {namespace}: {}", result["deployments"]);
    }
    Ok(result)
}

/// The Deployments and Services of every tycho system in `namespace` (or of
/// `username`'s), for culling: from the watch cache when it is fresh, else two lists.
pub async fn systems_async(
    username: Option<&str>,
    namespace: Option<&str>,
) -> Result<(String, Vec<Value>, Vec<Value>)> {
    let settings = client::settings();
    let connection = client::connection(KIND, &settings).await?;
    let namespace = client::resolve_namespace(KIND, namespace, &connection, &settings)?;
    let label = username
        .filter(|u| !u.is_empty())
        .map(crate::text::names::username_label);
    if let Some(cache) = super::cache::namespace(&settings, &connection, &namespace) {
        use super::cache::Select;
        let select = match label.as_deref() {
            Some(u) => Select::Username(u),
            None => Select::All,
        };
        if let (Some(d), Some(s)) = (
            cache.deployments.select(select),
            cache.services.select(select),
        ) {
            let d = d.iter().map(|v| v.as_ref().clone()).collect();
            let s = s.iter().map(|v| v.as_ref().clone()).collect();
            return Ok((namespace, d, s));
        }
    }
    let selector = match label.as_deref() {
        Some(u) => format!("username={u}"),
        None => "executor=tycho".to_string(),
    };
    let params = ListParams::default().labels(&selector);
    let deployments_api = Kind::Deployment.api(&connection.client, &namespace);
    let services_api = Kind::Service.api(&connection.client, &namespace);
    let what_d = format!("deployments labelled {selector}");
    let what_s = format!("services labelled {selector}");
    let timeout = settings.operation_timeout;
    let (d, s) = tokio::time::timeout(timeout, async {
        tokio::join!(
            retry::idempotent(&what_d, || deployments_api.list(&params)),
            retry::idempotent(&what_s, || services_api.list(&params)),
        )
    })
    .await
    .map_err(|_| err(KIND, format!("listing the systems of namespace {namespace}: timed out after {timeout:?} (TYCHO_KUBE_TIMEOUT)")))?;
    let d = d.map_err(|e| err(KIND, format!("cannot list {what_d}: {e}")))?;
    let s = s.map_err(|e| err(KIND, format!("cannot list {what_s}: {e}")))?;
    let values = |items: &[kube::api::DynamicObject]| -> Vec<Value> {
        items
            .iter()
            .map(|o| serde_json::to_value(o).unwrap_or_default())
            .collect()
    };
    Ok((namespace, values(&d.items), values(&s.items)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_keeps_the_count_and_resume_restores_it() {
        let running = json!({"spec": {"replicas": 3}});
        let stop = patch_for(Action::Stop, &running, "t").unwrap();
        assert_eq!(stop["spec"]["replicas"], 0);
        assert_eq!(stop["metadata"]["annotations"][STOPPED_REPLICAS], "3");
        assert_eq!(patch_for(Action::Resume, &running, "t"), None);
        let stopped =
            json!({"metadata": {"annotations": {STOPPED_REPLICAS: "3"}}, "spec": {"replicas": 0}});
        assert_eq!(patch_for(Action::Stop, &stopped, "t"), None);
        let resume = patch_for(Action::Resume, &stopped, "t").unwrap();
        assert_eq!(resume["spec"]["replicas"], 3);
        assert_eq!(
            resume["metadata"]["annotations"][STOPPED_REPLICAS],
            Value::Null
        );
        assert_eq!(resume["metadata"]["annotations"][LAST_ACTIVITY], "t");
        // A hostile or missing count resumes one replica.
        let odd = json!({"metadata": {"annotations": {STOPPED_REPLICAS: "99999"}}, "spec": {"replicas": 0}});
        assert_eq!(
            patch_for(Action::Resume, &odd, "t").unwrap()["spec"]["replicas"],
            1
        );
    }
}
