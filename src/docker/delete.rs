//! Deleting a system: its containers (by the `tycho-guid` label) and its network.
//! Idempotent. Named volumes are kept: they hold user data, like the claims a
//! Kubernetes system mounts (`docker volume rm` removes them).

use super::client::{self, Settings};
use super::{describe, err, is_not_found, label_filter, GUID_LABEL, LOG_TARGET};
use crate::error::{ErrorKind, Result};
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};
use bollard::Docker;
use futures::future::join_all;
use serde_json::{json, Value};

const KIND: ErrorKind = ErrorKind::Delete;

/// Deletes system `guid` (blocking). See [`delete_async`].
pub fn delete(config: &Value, guid: &str) -> Result<Value> {
    client::block_on(KIND, delete_async(config, guid))
}

/// Removes every container labelled `tycho-guid=<guid>` (killed, with its anonymous
/// volumes) and the system's networks; returns `{}`. Deleting a system that does not
/// exist succeeds.
pub async fn delete_async(config: &Value, guid: &str) -> Result<Value> {
    if guid.is_empty() || !crate::names::is_label_value(guid) {
        return Err(err(
            KIND,
            format!("Failed to delete system: the GUID {guid:?} is not valid"),
        ));
    }
    let settings = Settings::from_config(config).map_err(|e| err(KIND, e.message))?;
    let docker = client::connect(KIND, &settings).await?;
    let mut problems = remove_containers(&docker, guid, &[]).await;
    if problems.is_empty() {
        match networks_of(&docker, guid).await {
            Ok(networks) => {
                for n in networks {
                    if let Err(e) = remove_network(&docker, &n).await {
                        problems.push(e);
                    }
                }
            }
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(err(
            KIND,
            format!("Failed to delete system {guid}: {}", problems.join("; ")),
        ));
    }
    log::info!(target: LOG_TARGET, "deleted system {guid}");
    Ok(json!({}))
}

/// Ids of the containers labelled with `guid` (any state).
pub(crate) async fn containers_of(
    docker: &Docker,
    guid: &str,
) -> std::result::Result<Vec<String>, String> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(label_filter(&[(GUID_LABEL, guid)])),
        ..Default::default()
    };
    let list = docker.list_containers(Some(options)).await.map_err(|e| {
        format!(
            "cannot list the containers of system {guid}: {}",
            describe(&e)
        )
    })?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}

async fn networks_of(docker: &Docker, guid: &str) -> std::result::Result<Vec<String>, String> {
    let options = ListNetworksOptions {
        filters: Some(label_filter(&[(GUID_LABEL, guid)])),
    };
    let list = docker.list_networks(Some(options)).await.map_err(|e| {
        format!(
            "cannot list the networks of system {guid}: {}",
            describe(&e)
        )
    })?;
    Ok(list.into_iter().filter_map(|n| n.id.or(n.name)).collect())
}

/// Removes (force) the containers labelled `guid` and those named in `names`
/// (concurrently; not found is success). Returns the problems.
pub(crate) async fn remove_containers(
    docker: &Docker,
    guid: &str,
    names: &[String],
) -> Vec<String> {
    let mut targets: Vec<String> = names.to_vec();
    let mut problems = Vec::new();
    match containers_of(docker, guid).await {
        Ok(ids) => targets.extend(ids),
        Err(e) => problems.push(e),
    }
    let removals = join_all(targets.iter().map(|t| async move {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match docker.remove_container(t, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // Already being removed by a concurrent delete.
            Err(e)
                if super::status_code(&e) == Some(409)
                    && describe(&e).contains("already in progress") =>
            {
                Ok(())
            }
            Err(e) => Err(format!("cannot remove container {t:?}: {}", describe(&e))),
        }
    }))
    .await;
    problems.extend(removals.into_iter().filter_map(|r| r.err()));
    problems
}

/// Removes network `name` (not found is success).
pub(crate) async fn remove_network(docker: &Docker, name: &str) -> std::result::Result<(), String> {
    match docker.remove_network(name).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(format!("cannot remove network {name:?}: {}", describe(&e))),
    }
}
