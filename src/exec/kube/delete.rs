//! Deleting a system: everything labelled `tycho-guid=<guid>` — Deployments first, then
//! ReplicaSets, Pods, Services, NetworkPolicies, PersistentVolumeClaims and the token
//! Secret all at once — with one deletecollection per kind. Idempotent: an unknown or
//! already deleted GUID succeeds. A service account that may not delete Secrets (a
//! Role from before the token Secret) is not an error: the Secret is owned by the
//! Deployment, so the garbage collector removes it (a warning names the rule).
//!
//! A delete wins over a start of the same GUID running at the same time: the start's
//! objects are owned by its Deployment; a start in this process is cancelled
//! (`inflight`); a start elsewhere finds its Deployment gone once it has created the
//! rest (the Deployment goes first, so anything created after the others were deleted
//! was created after the Deployment vanished) and removes what it created.

use super::client;
use super::error::{summarise, Cause, KubeError};
use super::inflight;
use super::retry;
use super::{check_label_value, err, Kind, GUID_LABEL};
use crate::error::{ErrorKind, Result};
use futures::future::join_all;
use kube::api::{DeleteParams, ListParams};
use serde_json::{json, Value};

const KIND: ErrorKind = ErrorKind::Delete;

/// Deletes the system with GUID `guid` (blocking). See [`delete_async`].
pub fn delete(guid: &str, namespace: Option<&str>) -> Result<Value> {
    client::block_on(KIND, delete_async(guid, namespace))
}

/// Deletes every object labelled `tycho-guid=<guid>` in `namespace`; returns `{}`.
/// Errors are `ErrorKind::Delete`, naming each collection that could not be deleted
/// (the others are deleted all the same).
pub async fn delete_async(guid: &str, namespace: Option<&str>) -> Result<Value> {
    if guid.is_empty() {
        return Err(err(KIND, "Failed to delete system: no GUID given"));
    }
    check_label_value(KIND, "GUID", guid)?;
    let _deleting = inflight::Deleting::begin(guid);
    let settings = client::settings();
    let connection = client::connection(KIND, &settings).await?;
    let namespace = client::resolve_namespace(KIND, namespace, &connection, &settings)?;
    let timeout = settings.operation_timeout;
    let outcome = tokio::time::timeout(timeout, cleanup(&connection.client, &namespace, guid, &[]))
        .await
        .unwrap_or_else(|_| {
            Err(vec![(
                "delete".to_string(),
                KubeError::new(
                    Cause::Timeout,
                    format!("timed out after {timeout:?} (TYCHO_KUBE_TIMEOUT)"),
                ),
            )])
        });
    match outcome {
        Ok(()) => {
            // Read your own writes: the system is gone from this process's cache now.
            if let Some(cache) = super::cache::namespace(&settings, &connection, &namespace) {
                cache.deleted_guid(guid);
            }
            log::info!(target: super::LOG_TARGET, "deleted system {guid} in namespace {namespace}");
            Ok(json!({}))
        }
        Err(problems) => Err(err(
            KIND,
            format!("Failed to delete system {guid}: {}", summarise(&problems)),
        )),
    }
}

/// Deletes everything labelled with `guid`, plus the objects `by_name` (which may lack
/// the label). Returns the problems (what was being done, why it failed), if any; all
/// deletions are attempted. [`summarise`] puts them in one line.
pub(crate) async fn cleanup(
    client: &kube::Client,
    namespace: &str,
    guid: &str,
    by_name: &[(Kind, String)],
) -> std::result::Result<(), Problems> {
    let selector = format!("{GUID_LABEL}={guid}");
    // The Deployments first: a start running elsewhere checks its Deployment after its
    // last create, so whatever it creates after the rest is deleted, it removes itself.
    let first = delete_collection(client, namespace, Kind::Deployment, &selector).await;
    let collections = join_all(
        Kind::CLEANUP
            .iter()
            .filter(|kind| **kind != Kind::Deployment)
            .map(|kind| delete_collection(client, namespace, *kind, &selector)),
    );
    let named = join_all(
        by_name
            .iter()
            .filter(|(_, name)| !name.is_empty())
            .map(|(kind, name)| delete_named(client, namespace, *kind, name)),
    );
    let (collections, named) = tokio::join!(collections, named);
    let problems: Problems = std::iter::once(first)
        .chain(collections)
        .chain(named)
        .filter_map(|r| r.err())
        .flatten()
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// What failed, and why.
pub(crate) type Problems = Vec<(String, KubeError)>;

async fn delete_named(
    client: &kube::Client,
    namespace: &str,
    kind: Kind,
    name: &str,
) -> std::result::Result<(), Problems> {
    let api = kind.api(client, namespace);
    let what = format!("{} {name:?}", kind.name());
    let dp = DeleteParams::background();
    match retry::idempotent(&what, || api.delete(name, &dp)).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(vec![(format!("cannot delete {what}"), e)]),
    }
}

async fn delete_collection(
    client: &kube::Client,
    namespace: &str,
    kind: Kind,
    selector: &str,
) -> std::result::Result<(), Problems> {
    let api = kind.api(client, namespace);
    let what = format!("{} labelled {selector}", kind.plural());
    let list = ListParams::default().labels(selector);
    let dp = DeleteParams::background();
    match retry::idempotent(&what, || api.delete_collection(&dp, &list)).await {
        Ok(_) => Ok(()),
        // An API server without deletecollection for this kind: list, then delete each.
        Err(e) if e.code() == Some(405) => {
            let items = retry::idempotent(&what, || api.list(&list))
                .await
                .map_err(|e| vec![(format!("cannot list {what}"), e)])?;
            let names: Vec<(Kind, String)> = items
                .items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .map(|n| (kind, n))
                .collect();
            let results = join_all(
                names
                    .iter()
                    .map(|(k, n)| delete_named(client, namespace, *k, n)),
            )
            .await;
            let problems: Problems = results
                .into_iter()
                .filter_map(|r| r.err())
                .flatten()
                .collect();
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems)
            }
        }
        Err(e) if kind == Kind::Secret && e.code() == Some(403) => {
            log::warn!(target: super::LOG_TARGET, "not allowed to delete {what} (RBAC rule `deletecollection secrets` missing): the garbage collector removes them with their Deployment");
            Ok(())
        }
        Err(e) => Err(vec![(format!("cannot delete {what}"), e)]),
    }
}
