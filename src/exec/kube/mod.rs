//! The Kubernetes executor: starts, lists, modifies and deletes systems on a cluster
//! with kube-rs (the cluster half of tycho-api's `KubernetesCompute`).
//!
//! * [`start`] — reads what the cluster knows about the system (the Ambassador Service,
//!   the `<app>-env` Secret, each mounted claim) by name and concurrently, then creates
//!   the Deployment, then its Services and NetworkPolicy concurrently: three sequential
//!   round trips. All or nothing: when a step fails, everything created for the GUID is
//!   deleted before the error is returned.
//! * [`status`] — one list of Deployments and one of Services (concurrently), selected
//!   on the server by label.
//! * [`delete`] — deletes every object labelled `tycho-guid=<guid>`, the token Secret
//!   included (idempotent).
//! * [`modify`] — strategic-merge-patches labels and cpu/memory into the system's
//!   Deployments; reverted when any patch fails.
//!
//! Configuration, the per-process client, timeouts and namespaces are in `client` (the
//! runtime is `crate::runtime`); the watch cache of long-lived processes, which status
//! and start read when it is warm, in `cache` (what it keeps of each object: `slim`);
//! retries with backoff in `retry`. Each operation has a blocking form (for
//! Python and the CLI; it runs on the executor's own runtime) and an `_async` form for
//! callers that already run on tokio.

mod cache;
pub(crate) mod client;
mod count;
mod delete;
pub mod error;
mod inflight;
mod modify;
mod retry;
mod slim;
mod start;
mod status;
pub mod wait;

/// The process's executor runtime, shared with the Docker backplane.
pub(crate) use client::block_on;
pub use client::{
    api_server_url, default_namespace, set_overrides, settings, KubeOverrides, OverridesGuard,
    Settings,
};
pub use delete::{delete, delete_async};
pub use error::{Cause, KubeError};
pub use modify::{modify, modify_async};
pub use start::{start, start_async, system_from_value};
/// The original's creation-time format, shared with the Docker backplane.
pub(crate) use status::creation_time;
pub use status::{status, status_async};
pub use wait::add_reasons;

use crate::error::{Error, ErrorKind};
use k8s_openapi::api::{apps, core, networking};
use kube::api::{Api, ApiResource, DynamicObject};

/// Log target of the executor (a Python logger of the same name receives the records).
pub const LOG_TARGET: &str = "tycho.kube";

/// The label every object of a system carries: its GUID.
pub(crate) const GUID_LABEL: &str = "tycho-guid";

/// The kinds tycho creates or cleans up, in the order delete reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Deployment,
    ReplicaSet,
    Pod,
    Service,
    NetworkPolicy,
    PersistentVolumeClaim,
    Secret,
}

impl Kind {
    /// Everything delete removes by label.
    pub(crate) const CLEANUP: [Kind; 7] = [
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::Pod,
        Kind::Service,
        Kind::NetworkPolicy,
        Kind::PersistentVolumeClaim,
        Kind::Secret,
    ];

    pub(crate) fn resource(self) -> ApiResource {
        match self {
            Kind::Deployment => ApiResource::erase::<apps::v1::Deployment>(&()),
            Kind::ReplicaSet => ApiResource::erase::<apps::v1::ReplicaSet>(&()),
            Kind::Pod => ApiResource::erase::<core::v1::Pod>(&()),
            Kind::Service => ApiResource::erase::<core::v1::Service>(&()),
            Kind::NetworkPolicy => ApiResource::erase::<networking::v1::NetworkPolicy>(&()),
            Kind::PersistentVolumeClaim => {
                ApiResource::erase::<core::v1::PersistentVolumeClaim>(&())
            }
            Kind::Secret => ApiResource::erase::<core::v1::Secret>(&()),
        }
    }

    /// The kind as Kubernetes names it (`Deployment`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::Secret => "Secret",
        }
    }

    /// The resource's plural (`deployments`), for messages about collections.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::NetworkPolicy => "networkpolicies",
            Kind::PersistentVolumeClaim => "persistentvolumeclaims",
            Kind::Secret => "secrets",
        }
    }

    /// The kind of a rendered object (`kind` field), when tycho knows it.
    pub(crate) fn of(object: &serde_json::Value) -> Option<Kind> {
        match object.get("kind").and_then(|k| k.as_str())? {
            "Deployment" => Some(Kind::Deployment),
            "Service" => Some(Kind::Service),
            "NetworkPolicy" => Some(Kind::NetworkPolicy),
            "PersistentVolumeClaim" => Some(Kind::PersistentVolumeClaim),
            "Pod" => Some(Kind::Pod),
            "ReplicaSet" => Some(Kind::ReplicaSet),
            "Secret" => Some(Kind::Secret),
            _ => None,
        }
    }

    pub(crate) fn api(self, client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), namespace, &self.resource())
    }
}

/// A short description of a Kubernetes API failure: the server's reason, code and
/// message, or the transport error. Never contains credentials (the tokens of a system
/// being started are redacted: `start::redact_current`).
pub(crate) fn describe(e: &kube::Error) -> String {
    start::redact_current(describe_unredacted(e))
}

fn describe_unredacted(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() {
                "Failure"
            } else {
                status.reason.as_str()
            };
            if status.message.is_empty() {
                format!("{reason} (HTTP {})", status.code)
            } else {
                format!("{reason} (HTTP {}): {}", status.code, status.message)
            }
        }
        other => {
            let url = client::api_url();
            let at = if url.is_empty() {
                String::new()
            } else {
                format!(" at {url}")
            };
            crate::error::with_causes(
                format!("connection to the Kubernetes API{at} failed: {other}"),
                other,
            )
        }
    }
}

/// Ok when the Kubernetes API server answers `GET /version` on the executor's client
/// (the `/readyz` of `tycho api`).
pub async fn api_ready() -> crate::Result<()> {
    let connection = client::connection(ErrorKind::Kube, &client::settings()).await?;
    connection
        .client
        .apiserver_version()
        .await
        .map(|_| ())
        .map_err(|e| KubeError::from_kube(&e, 1).into_error(ErrorKind::Kube))
}

/// The URL of the Tycho API Service `name` in `namespace`, as the original's
/// `TychoClientFactory.get_client` builds it: `http://<name>:<first port>` (the cluster
/// DNS name of the Service; the original wrote the literal `tycho-api`, the default
/// name). None when there is no such Service or it has no port.
pub async fn service_url_async(name: &str, namespace: &str) -> crate::Result<Option<String>> {
    let kind = ErrorKind::Kube;
    if !crate::text::names::is_dns_label(name, 63) {
        return Err(err(kind, format!("{name:?} is not a valid Service name")));
    }
    check_label_value(kind, "namespace", namespace)?;
    let connection = client::connection(kind, &client::settings()).await?;
    let api: Api<core::v1::Service> = Api::namespaced(connection.client.clone(), namespace);
    let what = format!("Service {name:?} in namespace {namespace}");
    let service = retry::idempotent(&what, || api.get_opt(name))
        .await
        .map_err(|e| e.context(format!("cannot read {what}")).into_error(kind))?;
    let port = service
        .and_then(|s| s.spec)
        .and_then(|spec| spec.ports)
        .and_then(|ports| ports.first().map(|p| p.port));
    Ok(port.map(|port| format!("http://{name}:{port}")))
}

/// [`service_url_async`], blocking (on the executor's runtime).
pub fn service_url(name: &str, namespace: &str) -> crate::Result<Option<String>> {
    client::block_on(ErrorKind::Kube, service_url_async(name, namespace))
}

/// HTTP status of an API error (None for transport errors).
pub(crate) fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// An error of `kind` with `message`.
pub(crate) fn err(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::new(kind, message)
}

/// Checks a value used in a label selector or a URL path before any request is made.
pub(crate) fn check_label_value(kind: ErrorKind, what: &str, value: &str) -> crate::Result<()> {
    if crate::text::names::is_label_value(value) {
        Ok(())
    } else {
        Err(err(
            kind,
            format!("{what} {value:?} is not a valid Kubernetes label value"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// The async operations can be spawned on a multi-threaded runtime (the REST
    /// server): checked at compile time, never run.
    #[allow(dead_code)]
    fn operations_are_send(config: &serde_json::Value, system: crate::model::System) {
        assert_send(&start_async(config, system, None));
        assert_send(&status_async(None, None, None));
        assert_send(&delete_async("g", None));
        assert_send(&modify_async(config, config, None));
    }

    #[test]
    fn describe_names_reason_code_and_message() {
        let e = kube::Error::Api(Box::new(
            kube::core::Status::failure("services \"x\" already exists", "AlreadyExists")
                .with_code(409),
        ));
        assert_eq!(
            describe(&e),
            "AlreadyExists (HTTP 409): services \"x\" already exists"
        );
    }
}
