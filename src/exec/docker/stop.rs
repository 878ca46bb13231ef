//! Stopping and resuming a system on the Docker Engine: its containers (selected by
//! `executor=tycho` and `tycho-guid`, as delete selects them) stopped and started
//! again. The network, the volumes and the containers themselves are kept. Both are
//! idempotent (a container already stopped or running is left as it is).

use super::client::{self, Settings};
use super::{describe, err, status_code, LOG_TARGET};
use crate::error::{ErrorKind, Result};
use bollard::query_parameters::{StartContainerOptions, StopContainerOptions};
use futures::future::join_all;
use serde_json::{json, Value};

const KIND: ErrorKind = ErrorKind::Kube;

/// Seconds a container gets to exit after SIGTERM before it is killed.
const STOP_GRACE: i32 = 10;

/// Stops system `guid` (blocking). See [`stop_async`].
pub fn stop(config: &Value, guid: &str) -> Result<Value> {
    client::block_on(KIND, run(config, guid, true))
}

/// Resumes system `guid` (blocking). See [`resume_async`].
pub fn resume(config: &Value, guid: &str) -> Result<Value> {
    client::block_on(KIND, run(config, guid, false))
}

/// Stops every container of system `guid`; returns `{"name": guid, "containers": n}`.
pub async fn stop_async(config: &Value, guid: &str) -> Result<Value> {
    run(config, guid, true).await
}

/// Starts every container of system `guid` again; returns `{"name": guid, "containers": n}`.
pub async fn resume_async(config: &Value, guid: &str) -> Result<Value> {
    run(config, guid, false).await
}

async fn run(config: &Value, guid: &str, stop: bool) -> Result<Value> {
    let verb = if stop { "stop" } else { "resume" };
    if guid.is_empty() || !crate::text::names::is_label_value(guid) {
        return Err(err(
            KIND,
            format!("Failed to {verb} system: the GUID {guid:?} is not valid"),
        ));
    }
    let settings = Settings::from_config(config).map_err(|e| err(KIND, e.message))?;
    let docker = client::connect(KIND, &settings).await?;
    let ids = super::delete::containers_of(&docker, guid)
        .await
        .map_err(|e| err(KIND, format!("Failed to {verb} system {guid}: {e}")))?;
    if ids.is_empty() {
        return Err(err(
            KIND,
            format!(
                "Failed to {verb} system {guid}: no system with GUID {guid} on the Docker Engine"
            ),
        ));
    }
    let results = join_all(ids.iter().map(|id| {
        let docker = docker.clone();
        async move {
            let outcome = if stop {
                let options = StopContainerOptions {
                    t: Some(STOP_GRACE),
                    signal: None,
                };
                docker.stop_container(id, Some(options)).await
            } else {
                docker
                    .start_container(id, None::<StartContainerOptions>)
                    .await
            };
            match outcome {
                Ok(()) => Ok(()),
                // 304: already stopped (or running).
                Err(e) if status_code(&e) == Some(304) => Ok(()),
                Err(e) => Err(format!("container {id:.12}: {}", describe(&e))),
            }
        }
    }))
    .await;
    let problems: Vec<String> = results.into_iter().filter_map(|r| r.err()).collect();
    if !problems.is_empty() {
        return Err(err(
            KIND,
            format!("Failed to {verb} system {guid}: {}", problems.join("; ")),
        ));
    }
    log::info!(target: LOG_TARGET, "{verb} system {guid}: {} container(s)", ids.len());
    Ok(json!({"name": guid, "containers": ids.len()}))
}
