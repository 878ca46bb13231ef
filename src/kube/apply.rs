//! Creating or updating one object idempotently, by server-side apply (`tycho prepull
//! --apply`): the object is sent as an apply patch (`fieldManager=tycho`, forced), which
//! creates it when it is absent and otherwise sets the fields tycho owns (dropping those
//! it no longer sends). A `get` before tells created, configured and unchanged apart.
//! Both calls are idempotent and retried on transient failures ([`super::retry`]).
//!
//! RBAC: `get` and `patch` of the kind, and `create` (the API server authorizes an
//! apply that creates the object as a create).

use super::retry::idempotent;
use crate::error::{Error, ErrorKind, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// The field manager tycho's applies are recorded under.
pub const FIELD_MANAGER: &str = "tycho";

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The object did not exist and was created.
    Created,
    /// The object existed and was changed.
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

fn resource_version(object: &DynamicObject) -> Option<&str> {
    object.metadata.resource_version.as_deref()
}

/// Creates or updates `object` (a namespaced object with apiVersion, kind and name) in
/// `namespace` (default: as the executor chooses it); returns what happened and the
/// object the API server stored.
pub fn apply(object: &Value, namespace: Option<&str>) -> Result<(Applied, Value)> {
    let object = object.clone();
    let namespace = namespace.map(str::to_string);
    super::wait::block_on(async move { apply_async(object, namespace.as_deref()).await })
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
    if api_version.is_empty() || kind.is_empty() || name.is_empty() {
        return Err(Error::input(
            "an applied object needs apiVersion, kind and metadata.name",
        ));
    }
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("", api_version.as_str()));
    let shown = format!("{} {name:?}", kind);
    let settings = super::settings();
    let connection = super::client::connection(ErrorKind::Kube, &settings).await?;
    let namespace =
        super::client::resolve_namespace(ErrorKind::Kube, namespace, &connection, &settings)?;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
    let api: Api<DynamicObject> =
        Api::namespaced_with(connection.client.clone(), &namespace, &resource);
    let mut typed: DynamicObject = serde_json::from_value(object)
        .map_err(|e| Error::input(format!("{shown}: not a Kubernetes object: {e}")))?;
    // An apply names no resourceVersion: it is not a compare-and-swap.
    typed.metadata.resource_version = None;
    typed.metadata.namespace = Some(namespace.clone());
    let before = idempotent(&format!("get {shown}"), || api.get_opt(&name))
        .await
        .map_err(|e| {
            e.context(format!("cannot read {shown} in namespace {namespace}"))
                .into_error(ErrorKind::Kube)
        })?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&typed);
    let after = idempotent(&format!("apply {shown}"), || {
        api.patch(&name, &params, &patch)
    })
    .await
    .map_err(|e| {
        e.context(format!("cannot apply {shown} in namespace {namespace}"))
            .into_error(ErrorKind::Kube)
    })?;
    let applied = match &before {
        None => Applied::Created,
        Some(b) if resource_version(b) == resource_version(&after) => Applied::Unchanged,
        Some(_) => Applied::Configured,
    };
    log::info!(target: super::LOG_TARGET, "{shown} in namespace {namespace} {}", applied.word());
    let stored = serde_json::to_value(&after).unwrap_or(Value::Null);
    Ok((applied, stored))
}
