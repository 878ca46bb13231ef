//! The Docker backplane: runs the compiled [`System`](crate::model::System) on one
//! machine's Docker Engine through its API (bollard over the Unix socket, `DOCKER_HOST`
//! honoured) — the single-machine counterpart of [`crate::exec::kube`], with the same
//! operations and result shapes.
//!
//! * [`start`] — one network per system, one container per compose service on it
//!   (reachable by service name), a named volume per `pvc://` claim (and sub path); all
//!   or nothing: when any step fails, everything created for the system is removed.
//!   An existing volume is mounted only when tycho created it or it is allow-listed.
//! * [`status`] — the containers labelled for the system, their state and health.
//! * [`delete`] — removes the containers and the network; named volumes are kept.
//! * [`modify`] — cpu/memory with container update; label changes are refused.
//!
//! State lives only in labels (`executor=tycho`, `tycho-guid`, `username`, `app-name`
//! on every container and network; `executor=tycho`, `tycho-shared=true`, `tycho-claim`
//! on the volumes, which outlive systems), so the backplane is stateless like the
//! Kubernetes one. Every operation selects by `executor=tycho` and the GUID (or user):
//! objects someone else labelled are left alone. Settings: `client`; System → Engine
//! objects: `mapping`, with the user, capabilities, read-only root and memory
//! filesystems in `security` (as `templates/pod.yaml` maps them; what the Engine cannot
//! do is a warning, an error in strict mode). The pod security level is checked on the
//! compiled pod before anything is created.

mod client;
mod delete;
mod mapping;
mod modify;
mod security;
mod start;
mod status;

pub use client::{HostPorts, Pull, Settings};
pub use delete::{delete, delete_async};
pub use mapping::{cpus_to_nano, memory_to_bytes};
pub use modify::{modify, modify_async};
pub use start::{start, start_async};
pub use status::{status, status_async};

use crate::error::{Error, ErrorKind};

/// Log target of the Docker backplane (a Python logger of the same name receives the records).
pub const LOG_TARGET: &str = "tycho.docker";

/// The label naming the system's GUID (as on Kubernetes).
pub(crate) const GUID_LABEL: &str = "tycho-guid";
/// The label naming the compose service of a container.
pub(crate) const SERVICE_LABEL: &str = "tycho-service";

/// Ok when the Engine answers (`GET /version`): the readiness probe of `tycho api -b docker`.
pub async fn ping(config: &serde_json::Value) -> crate::Result<()> {
    let settings = Settings::from_config(config)?;
    client::connect(ErrorKind::Kube, &settings)
        .await
        .map(|_| ())
}

/// A short description of an Engine API failure: the HTTP code and the Engine's
/// message, or the transport error with its causes.
pub(crate) fn describe(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("HTTP {status_code}: {}", message.trim()),
        other => crate::error::with_causes(
            format!("connection to the Docker Engine failed: {other}"),
            other,
        ),
    }
}

/// HTTP status of an Engine error (None for transport errors).
pub(crate) fn status_code(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    status_code(e) == Some(404)
}

/// An error of `kind` with `message`.
pub(crate) fn err(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::new(kind, message)
}

/// A label filter for list calls: `label=<key>=<value>` for each pair.
pub(crate) fn label_filter(
    pairs: &[(&str, &str)],
) -> std::collections::HashMap<String, Vec<String>> {
    let mut filters = std::collections::HashMap::new();
    filters.insert(
        "label".to_string(),
        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    );
    filters
}

/// The selector of a status request, as on Kubernetes: the username wins over the
/// GUID; neither selects every tycho system.
pub(crate) fn selector<'a>(
    name: Option<&'a str>,
    username: Option<&'a str>,
) -> (&'static str, &'a str) {
    match (
        name.filter(|s| !s.is_empty()),
        username.filter(|s| !s.is_empty()),
    ) {
        (_, Some(u)) => ("username", u),
        (Some(n), None) => (GUID_LABEL, n),
        (None, None) => ("executor", "tycho"),
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
        assert_send(&start_async(config, system));
        assert_send(&status_async(config, None, None, false));
        assert_send(&delete_async(config, "g"));
        assert_send(&modify_async(config, config));
    }

    #[test]
    fn selectors_follow_the_kubernetes_backplane() {
        assert_eq!(selector(None, None), ("executor", "tycho"));
        assert_eq!(selector(Some("g"), None), ("tycho-guid", "g"));
        assert_eq!(selector(Some("g"), Some("u")), ("username", "u"));
    }

    #[test]
    fn describe_names_code_and_message() {
        let e = bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message: "Conflict. The container name is already in use\n".into(),
        };
        assert_eq!(
            describe(&e),
            "HTTP 409: Conflict. The container name is already in use"
        );
    }
}
