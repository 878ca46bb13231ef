//! The system model: a start request (name, principal, compose document, settings and
//! services) parsed into a [`System`] of [`Container`]s, with tycho-api 1.17.3's semantics
//! for every compose field and environment switch. Field names follow the original's
//! attributes, so templates written for it find what they read.
//!
//! By concern: [`request`] reads the start request, [`caps`] refuses a system over the
//! size caps before anything is built, [`template`] renders the compose
//! document with the settings, [`compose`] converts each compose service key (and warns
//! about the ones it does not convert, see [`warning`]), [`volumes`] resolves the mounts,
//! and [`build`] assembles the [`System`]. The builder reads no environment variable: the
//! switches come in as [`ModelSwitches`], read once at the entry point.

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value};

pub mod build;
pub mod caps;
pub mod compose;
pub mod placement;
pub mod request;
pub mod schema;
pub mod template;
pub mod volumes;
pub mod warning;

pub use crate::environment::model::{ModelCaps, ModelSwitches};
pub use build::{client_network, parse, StringRenderer};
pub use request::StartRequest;
pub use volumes::volumes_of;
pub use warning::Warning;

/// Log target (Python logger) of the model's warnings about odd but accepted input.
pub const LOG_TARGET: &str = "tycho.model";

pub(crate) use crate::text::pyfmt::truthy;

/// Resource limits or reservations of a container (`deploy.resources.limits`).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
#[allow(non_snake_case)]
pub struct Limits {
    /// CPUs, possibly fractional (`0.5`, `"500m"`).
    pub cpus: Value,
    /// GPU count.
    pub gpus: Value,
    /// Memory (`"1G"`).
    pub memory: Value,
    /// Ephemeral storage (`"10G"`).
    pub ephemeralStorage: Value,
}

/// A liveness or readiness probe (`ext.kube.livenessProbe`).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
#[allow(non_snake_case)]
pub struct Probe {
    /// Command of an exec probe.
    pub cmd: Value,
    /// initialDelaySeconds.
    pub delay: Value,
    /// periodSeconds.
    pub period: Value,
    /// failureThreshold.
    pub threshold: Value,
    /// httpGet path (HTTP probes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Value>,
    /// Port (HTTP and TCP probes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<Value>,
    /// httpGet headers: a mapping name → value, or a list of {name, value}.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub httpHeaders: Option<Value>,
    /// timeoutSeconds (a compose `healthcheck.timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Value>,
}

/// A port entry: `{"containerPort": ...}`, with the protocol when one is written.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[allow(non_snake_case)]
pub struct Port {
    /// The container port as written (a string like "8888" or a number).
    pub containerPort: Value,
    /// "TCP", "UDP" or "SCTP" from a `/tcp`, `/udp`, `/sctp` suffix (none: TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// One compose service: a container of the pod.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Container {
    /// Compose service name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Unused by the built-in templates; kept for the original's attribute set.
    pub identity: Value,
    /// Limits.
    pub limits: Limits,
    /// Reservations (requests).
    pub requests: Limits,
    /// `ports` (container side of "host:container").
    pub ports: Vec<Port>,
    /// `expose`.
    pub expose: Vec<Port>,
    /// `depends_on`.
    pub depends_on: Value,
    /// Entrypoint as a list of arguments, or null.
    pub command: Value,
    /// Environment as `[name, value]` pairs.
    pub env: Vec<Vec<String>>,
    /// Volume specs (`pvc://...`), defaults included.
    pub volumes: Vec<String>,
    /// Liveness probe.
    pub liveness_probe: Option<Probe>,
    /// Readiness probe.
    pub readiness_probe: Option<Probe>,
    /// Compose fields the original ignored (`command`, `working_dir`, `user`, host ports,
    /// `read_only`, capabilities); left out of the plain model when none is set.
    #[serde(default, skip_serializing_if = "ComposeExtras::is_empty")]
    pub compose: ComposeExtras,
}

/// Compose fields the original ignored: the Docker backplane maps them (`crate::exec::docker`),
/// pod.yaml turns them into container fields (see [`compose`]).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ComposeExtras {
    /// `command`: the arguments after the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// `working_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `user` as written (`uid[:gid]` or a name); both backplanes run
    /// [`run_as_user`](Self::run_as_user) / [`run_as_group`](Self::run_as_group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Host side of each `ports` entry (`"8080:80"` → 8080), null where none is written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_ports: Vec<Option<u16>>,
    /// runAsUser from a numeric `user` (none when the registry sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<String>,
    /// runAsGroup from a numeric `user` `uid:gid` (none when the registry sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<String>,
    /// `read_only`: readOnlyRootFilesystem.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// `cap_add`, without the CAP_ prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// `cap_drop`, without the CAP_ prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// The GPUs of `deploy.resources.reservations.devices` (`capabilities: [gpu]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_devices: Option<GpuDevices>,
    /// The Kubernetes resource of this container's GPUs when its device `driver` names
    /// another vendor than the system's (`amd` → `amd.com/gpu`); none: the system's
    /// `gpu_resource_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_resource: Option<String>,
    /// The GPU limit of the pod's container from `gpu_devices` (none when
    /// `deploy.resources.limits.gpus` is set, which wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_count: Option<u64>,
}

/// GPUs a container reserves in compose's device form: an entry of
/// `deploy.resources.reservations.devices` whose `capabilities` hold `gpu`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct GpuDevices {
    /// `count`; none with no `device_ids`: every GPU of the host (`all`, or unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// `device_ids`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    /// `driver` (`nvidia`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

impl GpuDevices {
    /// How many GPUs: `count`, else the number of `device_ids`; none for all of them.
    pub fn number(&self) -> Option<u64> {
        self.count
            .or_else(|| (!self.device_ids.is_empty()).then_some(self.device_ids.len() as u64))
    }
}

/// A memory-backed emptyDir volume (`tmpfs`, `shm_size` at /dev/shm).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct MemoryVolume {
    /// Container mounting it.
    pub container_name: String,
    /// Pod volume name (`tycho-tmpfs-<container index>-<n>`, `tycho-shm-<container index>`).
    pub name: String,
    /// Mount path.
    pub path: String,
    /// sizeLimit, a Kubernetes quantity.
    pub size_limit: Option<String>,
}

/// Network exposure of a container (`services` of the request).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Service {
    /// Port from the request (informational; the container's ports are used).
    pub port: Value,
    /// Client CIDRs allowed in (normalised, e.g. "10.0.0.0/8").
    pub clients: Vec<String>,
    /// `<container>-<guid>`.
    pub name: String,
    /// The container name.
    pub name_noid: String,
}

/// A volume mount resolved from a `pvc://` spec.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Volume {
    /// Container mounting it.
    pub container_name: String,
    /// Claim name on its first use in the system, null after (one pod volume per claim).
    pub pvc_name: Option<String>,
    /// Pod volume name (= claim name).
    pub volume_name: String,
    /// Mount path.
    pub path: Option<String>,
    /// Sub path inside the claim ("" for none).
    pub subpath: Option<String>,
    /// Mounted read-only (`:ro` suffix).
    pub read_only: bool,
}

/// A compiled system: everything the templates need.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct System {
    /// The GUID (uuid4 hex).
    pub identifier: String,
    /// The app name of the request.
    pub system_name: String,
    /// Same as `system_name`; the label `tycho-app-id`.
    pub app_id: String,
    /// Running behind an Ambassador gateway.
    pub amb: bool,
    /// IROD_HOST is set.
    pub irods_enabled: bool,
    /// Kept for the original's attribute set.
    pub nfrods_uid: String,
    /// DEV_PHASE.
    pub dev_phase: String,
    /// `<app>-<guid>`.
    pub name: String,
    /// The containers, in compose-service name order.
    pub containers: Vec<Container>,
    /// Services by container name.
    pub services: IndexMap<String, Service>,
    /// Volume mounts.
    pub volumes: Vec<Volume>,
    /// Port of the app's main container (set by the executor).
    pub system_port: Value,
    /// AMBASSADOR_ID.
    pub ambassador_id: String,
    /// The principal's fields, added to every container's environment.
    pub system_env: Map<String, Value>,
    /// The principal's username.
    pub username: String,
    /// Username with '_' and '.' turned into '-'.
    pub username_all_hyphens: String,
    /// The principal's host.
    pub host: Value,
    /// Extra annotations (unused by the built-in templates).
    pub annotations: Map<String, Value>,
    /// Namespace hint.
    pub namespace: String,
    /// Service account name.
    pub serviceaccount: Value,
    /// TYCHO_APP_ENABLE_INIT_CONTAINER.
    pub enable_init_container: String,
    /// URL suffix of the app.
    pub conn_string: Value,
    /// CREATE_HOME_DIRS (lowercased).
    pub create_home_dirs: String,
    /// STDNFS_PVC.
    pub stdnfs_pvc: String,
    /// PARENT_DIR.
    pub parent_dir: String,
    /// SUBPATH_DIR.
    pub subpath_dir: String,
    /// SHARED_DIR.
    pub shared_dir: String,
    /// Default uid from the config.
    pub default_run_as_user: Value,
    /// Default gid from the config.
    pub default_run_as_group: Value,
    /// Pod/container security context: run_as_user, run_as_group, fs_group.
    pub security_context: Map<String, Value>,
    /// Init container security context: run_as_user, run_as_group.
    pub init_security_context: Map<String, Value>,
    /// TYCHO_APP_INIT_IMAGE_REPOSITORY.
    pub init_image_repository: String,
    /// TYCHO_APP_INIT_IMAGE_TAG.
    pub init_image_tag: String,
    /// TYCHO_APP_INIT_CPUS.
    pub init_cpus: String,
    /// TYCHO_APP_INIT_MEMORY.
    pub init_memory: String,
    /// The GPU resource: the request's `gpu_resource` (the registry's app or context),
    /// else TYCHO_APP_GPU_RESOURCE_NAME (`nvidia.com/gpu`).
    pub gpu_resource_name: String,
    /// Pod placement (nodeSelector, tolerations, affinity, priorityClassName,
    /// runtimeClassName, imagePullSecrets), merged from its sources (see [`placement`]).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub placement: Map<String, Value>,
    /// `{"enabled": bool, "target": str|null}`.
    pub proxy_rewrite: Value,
    /// Mount a gitea ssh key.
    pub gitea_integration: Value,
    /// GITEA_HOST.
    pub gitea_host: String,
    /// GITEA_USER.
    pub gitea_user: String,
    /// GITEA_SERVICE_NAME.
    pub gitea_service_name: String,
    /// NFSRODS_HOST (when IROD_HOST is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfsrods_host: Option<String>,
    /// `extra_container_env` of the principal, added to every container.
    pub extra_env: Vec<Vec<String>>,
    /// Pod labels from the services' compose `labels` (tycho's own left out).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub pod_labels: IndexMap<String, String>,
    /// Memory-backed volumes (`tmpfs`, `shm_size`) of all containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory_volumes: Vec<MemoryVolume>,
    /// The request's `count`: how many instances of the app a user may run
    /// (`tycho.policy.enforce_count`; `crate::exec::kube` enforces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// What the compose document holds that is not (fully) converted; not part of the
    /// serialized model.
    #[serde(skip)]
    pub warnings: Vec<Warning>,
}

impl System {
    /// Whether any service restricts its clients (a NetworkPolicy is needed).
    pub fn requires_network_policy(&self) -> bool {
        self.services.values().any(|s| !s.clients.is_empty())
    }

    /// The port the Ambassador mapping points at: the first port of the container named
    /// like the app, else the first port of any container.
    pub fn resolve_system_port(&mut self) {
        let named = self
            .containers
            .iter()
            .find(|c| c.name == self.system_name)
            .and_then(|c| c.ports.first());
        let any = self.containers.iter().find_map(|c| c.ports.first());
        self.system_port = named
            .or(any)
            .map(|p| p.containerPort.clone())
            .unwrap_or(Value::Null);
    }
}

#[cfg(test)]
mod tests;
