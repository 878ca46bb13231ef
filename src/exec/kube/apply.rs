//! Creating or updating one object idempotently (`tycho prepull --apply`): get it by
//! name; absent, create it; present and already as sent, write nothing; else replace it.
//!
//! "Already as sent": the stored object carries the SHA-256 of what tycho sent last
//! (annotation [`HASH_ANNOTATION`]) and still holds every field tycho sends with the same
//! value (the API server's defaults and other writers' additions aside). So a second
//! apply of the same object writes nothing (the resourceVersion stays), a field tycho no
//! longer sends is dropped by the replace, and a field someone else changed is put back.
//! A replace keeps the stored labels and annotations tycho does not set (another
//! manager's, the controller's) and names the stored resourceVersion: when the object
//! changed meanwhile (409 Conflict), or another apply created it first (409
//! AlreadyExists), it is read again and the decision made again. Reads are retried on
//! transient failures ([`super::retry`]); a write that failed transiently is decided
//! again from a fresh read (it may have been applied).
//!
//! RBAC: `get`, `create` and `update` of the kind.

use super::retry::{backoff, idempotent, transient};
use crate::error::{Error, ErrorKind, Result};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value};

/// The annotation holding the SHA-256 (hex) of the object tycho sent last.
pub const HASH_ANNOTATION: &str = "tycho/applied-hash";

/// Reads and writes an apply makes at most before giving up on an object that keeps
/// changing under it.
const MAX_ROUNDS: u32 = 5;

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The object did not exist and was created.
    Created,
    /// The object existed and was replaced.
    Configured,
    /// The object existed as it is sent: nothing was written.
    Unchanged,
}

impl Applied {
    /// The word kubectl prints for it.
    pub fn word(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// True when `stored` holds every field of `sent` with the same value: mappings key by
/// key (more keys in `stored` are defaults or other writers'), lists entry by entry
/// (the same length).
pub fn covers(stored: &Value, sent: &Value) -> bool {
    match (stored, sent) {
        (Value::Object(s), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| s.get(k).is_some_and(|sv| covers(sv, v))),
        (Value::Array(s), Value::Array(w)) => {
            s.len() == w.len() && s.iter().zip(w).all(|(a, b)| covers(a, b))
        }
        (s, w) => s == w,
    }
}

/// The SHA-256 (hex) of `object` as JSON.
fn hash(object: &Value) -> String {
    let text = serde_json::to_string(object).unwrap_or_default();
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `metadata.<key>` of `object` as a mapping (empty when absent).
fn meta_map(object: &Value, key: &str) -> Map<String, Value> {
    object
        .pointer(&format!("/metadata/{key}"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// What replaces `stored`: `desired` with the stored labels and annotations it does not
/// set, and the stored resourceVersion.
fn replacement(desired: &Value, stored: &Value) -> Value {
    let mut out = desired.clone();
    for key in ["labels", "annotations"] {
        let mut merged = meta_map(stored, key);
        merged.extend(meta_map(desired, key));
        out["metadata"][key] = Value::Object(merged);
    }
    if let Some(rv) = stored.pointer("/metadata/resourceVersion") {
        out["metadata"]["resourceVersion"] = rv.clone();
    }
    out
}

/// Creates or updates `object` (a namespaced object with apiVersion, kind and name) in
/// `namespace` (default: as the executor chooses it); returns what happened and the
/// object as stored.
pub fn apply(object: &Value, namespace: Option<&str>) -> Result<(Applied, Value)> {
    let object = object.clone();
    let namespace = namespace.map(str::to_string);
    super::wait::block_on(async move { apply_async(object, namespace.as_deref()).await })
}

fn to_value(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// [`apply`] on the caller's runtime.
pub async fn apply_async(object: Value, namespace: Option<&str>) -> Result<(Applied, Value)> {
    let field = |key: &str| {
        object
            .pointer(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind, name) = (
        field("/apiVersion"),
        field("/kind"),
        field("/metadata/name"),
    );
    if api_version.is_empty() || kind.is_empty() || name.is_empty() || !object.is_object() {
        return Err(Error::input(
            "an applied object needs apiVersion, kind and metadata.name",
        ));
    }
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("", api_version.as_str()));
    let shown = format!("{kind} {name:?}");
    let settings = super::settings();
    let connection = super::client::connection(ErrorKind::Kube, &settings).await?;
    let namespace =
        super::client::resolve_namespace(ErrorKind::Kube, namespace, &connection, &settings)?;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
    let api: Api<DynamicObject> =
        Api::namespaced_with(connection.client.clone(), &namespace, &resource);
    let mut desired = object;
    desired["metadata"]["namespace"] = Value::String(namespace.clone());
    if let Some(meta) = desired["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
        if let Some(Value::Object(a)) = meta.get_mut("annotations") {
            a.remove(HASH_ANNOTATION);
        }
    }
    let digest = hash(&desired);
    desired["metadata"]["annotations"][HASH_ANNOTATION] = Value::String(digest.clone());
    let typed = |v: &Value| -> Result<DynamicObject> {
        serde_json::from_value(v.clone())
            .map_err(|e| Error::input(format!("{shown}: not a Kubernetes object: {e}")))
    };
    let failed = |verb: &str, e: &kube::Error| {
        Error::new(
            ErrorKind::Kube,
            format!(
                "cannot {verb} {shown} in namespace {namespace}: {}",
                super::describe(e)
            ),
        )
    };
    for round in 0..MAX_ROUNDS {
        if round > 0 {
            tokio::time::sleep(backoff(round - 1)).await;
        }
        let stored = idempotent(&format!("get {shown}"), || api.get_opt(&name))
            .await
            .map_err(|e| {
                e.context(format!("cannot read {shown} in namespace {namespace}"))
                    .into_error(ErrorKind::Kube)
            })?;
        let (verb, written, applied) = match stored.map(|s| to_value(&s)) {
            None => (
                "create",
                api.create(&PostParams::default(), &typed(&desired)?).await,
                Applied::Created,
            ),
            Some(stored)
                if meta_map(&stored, "annotations")
                    .get(HASH_ANNOTATION)
                    .and_then(Value::as_str)
                    == Some(digest.as_str())
                    && covers(&stored, &desired) =>
            {
                log::info!(target: super::LOG_TARGET, "{shown} in namespace {namespace} unchanged");
                return Ok((Applied::Unchanged, stored));
            }
            Some(stored) => (
                "replace",
                api.replace(
                    &name,
                    &PostParams::default(),
                    &typed(&replacement(&desired, &stored))?,
                )
                .await,
                Applied::Configured,
            ),
        };
        match written {
            Ok(o) => {
                log::info!(target: super::LOG_TARGET, "{shown} in namespace {namespace} {}", applied.word());
                return Ok((applied, to_value(&o)));
            }
            // Created or changed meanwhile (409), or an outcome unknown: read again.
            Err(e) if super::status_code(&e) == Some(409) || transient(&e) => {
                log::info!(target: super::LOG_TARGET, "{verb} {shown}: {}; reading it again", super::describe(&e));
                if round + 1 == MAX_ROUNDS {
                    return Err(failed(verb, &e));
                }
            }
            Err(e) => return Err(failed(verb, &e)),
        }
    }
    Err(Error::new(
        ErrorKind::Kube,
        format!("cannot apply {shown} in namespace {namespace}: it kept changing"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_defaults_are_covered_removed_fields_are_not() {
        let sent = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        let stored = json!({"spec": {"containers": [{"name": "a", "image": "x", "imagePullPolicy": "IfNotPresent"}], "dnsPolicy": "ClusterFirst"}});
        assert!(covers(&stored, &sent));
        let changed = json!({"spec": {"containers": [{"name": "a", "image": "y"}]}});
        assert!(!covers(&stored, &changed));
        let more = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}});
        assert!(!covers(&stored, &more));
    }

    #[test]
    fn a_replacement_keeps_other_labels_and_the_version() {
        let desired = json!({"metadata": {"name": "d", "labels": {"a": "1"}}, "spec": {}});
        let stored = json!({"metadata": {"name": "d", "resourceVersion": "7",
            "labels": {"a": "0", "team": "x"}, "annotations": {"note": "y"}}});
        let out = replacement(&desired, &stored);
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "team": "x"}));
        assert_eq!(out["metadata"]["annotations"], json!({"note": "y"}));
        assert_eq!(out["metadata"]["resourceVersion"], "7");
        assert_ne!(hash(&desired), hash(&stored));
        let annotated = json!({"metadata": {"annotations": {HASH_ANNOTATION: "h"}}});
        assert_eq!(meta_map(&annotated, "annotations")[HASH_ANNOTATION], "h");
    }
}
