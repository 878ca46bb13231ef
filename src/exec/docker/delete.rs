//! Deleting a system: its containers and its network, selected by the labels
//! `executor=tycho` and `tycho-guid` (as status selects them: an object someone else
//! labelled with the GUID alone is left alone). Idempotent. Named volumes are kept:
//! they hold user data, like the claims a Kubernetes system mounts (`docker volume rm`
//! removes them).

use super::client::{self, DockerConfig};
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

/// Removes every container labelled `executor=tycho` and `tycho-guid=<guid>` (killed,
/// with its anonymous volumes) and the system's networks; returns `{}`. Deleting a system that does not
/// exist succeeds.
pub async fn delete_async(config: &Value, guid: &str) -> Result<Value> {
    if guid.is_empty() || !crate::text::names::is_label_value(guid) {
        return Err(err(
            KIND,
            format!("Failed to delete system: the GUID {guid:?} is not valid"),
        ));
    }
    let settings = DockerConfig::from_config(config).map_err(|e| err(KIND, e.message))?;
    let docker = client::connect(KIND, &settings).await?;
    let mut problems = remove_containers(&docker, guid, &[]).await;
    if problems.is_empty() {
        match networks_of(&docker, guid).await {
            Ok(networks) => {
                for n in networks {
                    if let Err(e) = remove_network(&docker, &n).await {
                        problems.push(e.message);
                    }
                }
            }
            Err(e) => problems.push(e.message),
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

/// The labels that select the objects of system `guid`.
fn system_filter(guid: &str) -> std::collections::HashMap<String, Vec<String>> {
    label_filter(&[("executor", "tycho"), (GUID_LABEL, guid)])
}

/// True when `labels` are those of system `guid`'s objects.
fn labelled_for(labels: Option<&std::collections::HashMap<String, String>>, guid: &str) -> bool {
    labels.is_some_and(|l| {
        l.get("executor").map(String::as_str) == Some("tycho")
            && l.get(GUID_LABEL).map(String::as_str) == Some(guid)
    })
}

/// Ids of the containers of system `guid` (labelled `executor=tycho` and
/// `tycho-guid=<guid>`; any state).
pub(crate) async fn containers_of(docker: &Docker, guid: &str) -> Result<Vec<String>> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(system_filter(guid)),
        ..Default::default()
    };
    let list = docker.list_containers(Some(options)).await.map_err(|e| {
        err(
            KIND,
            format!(
                "cannot list the containers of system {guid}: {}",
                describe(&e)
            ),
        )
        .caused_by(e)
    })?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}

async fn networks_of(docker: &Docker, guid: &str) -> Result<Vec<String>> {
    let options = ListNetworksOptions {
        filters: Some(system_filter(guid)),
    };
    let list = docker.list_networks(Some(options)).await.map_err(|e| {
        err(
            KIND,
            format!(
                "cannot list the networks of system {guid}: {}",
                describe(&e)
            ),
        )
        .caused_by(e)
    })?;
    Ok(list.into_iter().filter_map(|n| n.id.or(n.name)).collect())
}

/// Removes (force) the containers of system `guid`: those its labels select and those
/// named in `names` that carry its labels (concurrently; not found is success).
/// Returns the problems.
pub(crate) async fn remove_containers(
    docker: &Docker,
    guid: &str,
    names: &[String],
) -> Vec<String> {
    let mut targets: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    // A name whose create failed may be someone else's container (a name conflict).
    let named = join_all(names.iter().map(|n| async move {
        match docker.inspect_container(n, None).await {
            Ok(c) => Ok(c
                .id
                .filter(|_| labelled_for(c.config.as_ref().and_then(|c| c.labels.as_ref()), guid))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(format!("cannot inspect container {n:?}: {}", describe(&e))),
        }
    }))
    .await;
    for r in named {
        match r {
            Ok(Some(id)) => targets.push(id),
            Ok(None) => {}
            Err(e) => problems.push(e),
        }
    }
    match containers_of(docker, guid).await {
        Ok(ids) => {
            for id in ids {
                if !targets.contains(&id) {
                    targets.push(id);
                }
            }
        }
        Err(e) => problems.push(e.message),
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

/// Removes network `name` when it carries the labels of system `guid` (not found, or
/// someone else's network of that name, is success: nothing of the system is left).
pub(crate) async fn remove_system_network(docker: &Docker, guid: &str, name: &str) -> Result<()> {
    match docker
        .inspect_network(
            name,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
    {
        Ok(n) if labelled_for(n.labels.as_ref(), guid) => {
            remove_network(docker, n.id.as_deref().unwrap_or(name)).await
        }
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(err(
            KIND,
            format!("cannot inspect network {name:?}: {}", describe(&e)),
        )
        .caused_by(e)),
    }
}

/// Removes network `name` (not found is success).
pub(crate) async fn remove_network(docker: &Docker, name: &str) -> Result<()> {
    match docker.remove_network(name).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(err(
            KIND,
            format!("cannot remove network {name:?}: {}", describe(&e)),
        )
        .caused_by(e)),
    }
}
