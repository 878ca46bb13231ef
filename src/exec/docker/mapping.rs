//! The System model → Engine objects: names, labels, container create bodies (command,
//! env, working_dir, resources, GPUs, published ports with their protocol, mounts,
//! healthchecks; user, capabilities, read-only root, tmpfs and shm in
//! [`super::security`]). Pure: no Engine calls, so every rule is unit-tested here.
//!
//! * Names: the network is the system's name (`<app>-<guid>`); a container is
//!   `<system name>-<service>`, with the service name as its network alias and hostname.
//! * Labels (every container and network): `executor=tycho`, `tycho-guid`,
//!   `username`, `app-name`, plus `name` (the system's name), `original-app-name`,
//!   `tycho-app-id`; containers also carry `tycho-service` and `conn_string`.
//! * `pvc://claim[/sub]:path[:ro]`: a named volume `claim` (or `claim_sub`, one volume
//!   per claim and sub path: Engine API 1.41 has no volume sub paths). A volume is the
//!   Docker form of a claim: it outlives the system and every system naming the claim
//!   mounts it, so it carries no system's labels but `executor=tycho`,
//!   `tycho-shared=true` and `tycho-claim`.
//! * Limits: the compose file's, else the defaults of [`crate::compile::default_limits`]; every
//!   container gets the default process limit.
//! * Ports: `<port>/<protocol>` (`tcp`, `udp`, `sctp`, as the model's protocol),
//!   published on the bind address.
//! * Probes: the readiness probe (else the liveness probe) becomes the healthcheck; an
//!   exec probe runs as given, an HTTP probe runs `wget` (else `curl`) and a TCP probe
//!   `nc -z` through `/bin/sh` inside the container.
//! * What the Engine cannot do as Kubernetes does is a warning naming the service, field
//!   and value ([`Plan::warnings`]; an error in strict mode): a liveness probe beside
//!   the readiness probe, HTTP probe headers, a `services` entry's `clients`.

use super::client::{is_engine_name, DockerConfig, HostPorts};
use super::security;
use super::{GUID_LABEL, SERVICE_LABEL};
use crate::error::{Error, Result};
use crate::limits::echo;
use crate::model::warning::Warnings;
use crate::model::{Container, Probe, System, Warning};
use crate::text::pyfmt::py_str;
use crate::text::quantity::{cpus_to_nano, memory_to_bytes};
use bollard::models::{
    ContainerCreateBody, DeviceRequest, EndpointSettings, HealthConfig, HostConfig, Mount,
    MountType, NetworkingConfig, PortBinding,
};
use serde_json::Value;
use std::collections::HashMap;

/// One container to create.
#[derive(Debug, Clone)]
pub(crate) struct ContainerPlan {
    /// Engine container name.
    pub name: String,
    /// Compose service name.
    pub service: String,
    /// Image reference.
    pub image: String,
    /// The create body.
    pub body: ContainerCreateBody,
    /// Container ports published to the host (`<port>/<protocol>`), in order.
    pub published: Vec<String>,
    /// The CPU limit is the default one (not the compose file's).
    pub default_cpus: bool,
    /// A gid without a uid: the container runs as the image's user with this group
    /// (`Config.User` is set once the image's user is known).
    pub group: Option<String>,
}

/// A named volume the containers mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumePlan {
    /// Engine volume name.
    pub name: String,
    /// The claim it stands for.
    pub claim: String,
    /// The first compose service that mounts it.
    pub service: String,
}

/// Everything a start creates.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Network name.
    pub network: String,
    /// Labels of the network.
    pub labels: HashMap<String, String>,
    /// Named volumes the containers mount.
    pub volumes: Vec<VolumePlan>,
    /// Containers, in compose order.
    pub containers: Vec<ContainerPlan>,
    /// What the Engine cannot do as Kubernetes does, one warning per service and field.
    pub warnings: Vec<Warning>,
}

/// The labels every object of `system` carries.
pub(crate) fn system_labels(system: &System) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    labels.insert("executor".into(), "tycho".into());
    labels.insert(GUID_LABEL.into(), system.identifier.clone());
    labels.insert("username".into(), system.username.clone());
    labels.insert("app-name".into(), system.system_name.clone());
    labels.insert("original-app-name".into(), system.system_name.clone());
    labels.insert("tycho-app-id".into(), system.app_id.clone());
    labels.insert("name".into(), system.name.clone());
    labels
}

/// The label of a volume shared by the systems that name its claim.
pub(crate) const SHARED_LABEL: &str = "tycho-shared";
/// The label naming a volume's claim.
pub(crate) const CLAIM_LABEL: &str = "tycho-claim";

/// The labels of a volume tycho creates for `claim`: no system's, since it outlives
/// the system and every system that names the claim mounts it.
pub(crate) fn volume_labels(claim: &str) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    labels.insert("executor".into(), "tycho".into());
    labels.insert(SHARED_LABEL.into(), "true".into());
    labels.insert(CLAIM_LABEL.into(), claim.to_string());
    labels
}

/// An image reference the Engine API can take in a URL path: the characters of the
/// reference grammar (`[registry[:port]/]name[:tag][@digest]`), no empty or `..` segment.
pub(crate) fn is_image_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// The named volume of a claim and sub path.
pub(crate) fn volume_name(claim: &str, subpath: Option<&str>) -> String {
    match subpath.filter(|s| !s.trim_matches('/').is_empty()) {
        None => claim.to_string(),
        Some(sub) => {
            let sub: String = sub
                .trim_matches('/')
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{claim}_{sub}")
        }
    }
}

/// The GPUs of container `c` as Engine device requests: compose's device form
/// (`deploy.resources.reservations.devices`: `count` or all, `device_ids`, `driver`),
/// with `deploy.resources.limits.gpus` (a number or "all") as the count when it is set.
fn device_requests(c: &Container) -> Result<Option<Vec<DeviceRequest>>> {
    let limit = if set(&c.limits.gpus) {
        let text = py_str(&c.limits.gpus);
        Some(if text == "all" {
            -1
        } else {
            text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::input(format!(
                    "service '{}': limits.gpus {text:?} must be a positive whole number or \"all\"",
                    c.name
                ))
            })?
        })
    } else {
        None
    };
    let devices = c.compose.gpu_devices.as_ref();
    if limit.is_none() && devices.is_none() {
        return Ok(None);
    }
    let ids = devices.map(|d| d.device_ids.clone()).unwrap_or_default();
    // limits.gpus wins over the device form's count (as on Kubernetes); device ids
    // stand for the count when there is no limit.
    let count = match (limit, devices) {
        (Some(n), _) => Some(n),
        (None, _) if !ids.is_empty() => None,
        (None, Some(d)) => Some(d.count.map_or(-1, |n| n.min(i64::MAX as u64) as i64)),
        (None, None) => None,
    };
    Ok(Some(vec![DeviceRequest {
        driver: devices.and_then(|d| d.driver.clone()),
        count,
        device_ids: (count.is_none() && !ids.is_empty()).then_some(ids),
        capabilities: Some(vec![vec!["gpu".to_string()]]),
        ..Default::default()
    }]))
}

fn set(v: &Value) -> bool {
    !matches!(v, Value::Null) && v.as_str() != Some("")
}

/// A probe's numeric field, in seconds.
fn seconds(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| f as i64),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }
    .filter(|s| *s > 0)
}

/// A shell word: `'...'` with `'` written as `'\''`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn probe_port(service: &str, p: &Probe) -> Result<Option<u16>> {
    match &p.port {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let text = py_str(v);
            text.parse::<u16>().ok().filter(|p| *p > 0).map(Some).ok_or_else(|| {
                Error::input(format!(
                    "service '{service}': probe port {text:?} must be a port number on the Docker backplane"
                ))
            })
        }
    }
}

/// The Docker healthcheck of a probe.
pub(crate) fn healthcheck(service: &str, p: &Probe) -> Result<Option<HealthConfig>> {
    let test = match &p.cmd {
        Value::Array(args) if !args.is_empty() => {
            let mut test = vec!["CMD".to_string()];
            test.extend(args.iter().map(py_str));
            test
        }
        Value::String(s) if !s.trim().is_empty() => vec!["CMD-SHELL".into(), s.clone()],
        _ => match (probe_port(service, p)?, &p.path) {
            (Some(port), Some(path)) if set(path) => {
                let path = py_str(path);
                let path = if path.starts_with('/') {
                    path
                } else {
                    format!("/{path}")
                };
                let url = sh_quote(&format!("http://127.0.0.1:{port}{path}"));
                vec![
                    "CMD-SHELL".into(),
                    format!("wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url}"),
                ]
            }
            (Some(port), _) => vec!["CMD-SHELL".into(), format!("nc -z 127.0.0.1 {port}")],
            (None, _) => return Ok(None),
        },
    };
    const SECOND: i64 = 1_000_000_000;
    Ok(Some(HealthConfig {
        test: Some(test),
        interval: Some(seconds(&p.period).unwrap_or(10) * SECOND),
        timeout: Some(p.timeout.as_ref().and_then(seconds).unwrap_or(5) * SECOND),
        retries: Some(seconds(&p.threshold).unwrap_or(3)),
        start_period: seconds(&p.delay).map(|d| d * SECOND),
        start_interval: None,
    }))
}

/// A probe as its command, HTTP path or TCP port, for a warning.
fn probe_text(p: &Probe) -> String {
    match (&p.cmd, &p.path, &p.port) {
        (Value::Array(a), _, _) if !a.is_empty() => {
            a.iter().map(py_str).collect::<Vec<_>>().join(" ")
        }
        (_, Some(path), Some(port)) if set(path) => {
            format!("httpGet {}:{}", py_str(port), py_str(path))
        }
        (_, _, Some(port)) => format!("tcpSocket {}", py_str(port)),
        _ => "the probe".into(),
    }
}

/// `KEY=value` pairs, later keys replacing earlier ones in place (the Engine would
/// otherwise leave the choice to the program).
fn dedup_env(pairs: Vec<(String, String)>) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, String> = HashMap::new();
    for (k, v) in pairs {
        if !values.contains_key(&k) {
            order.push(k.clone());
        }
        values.insert(k, v);
    }
    order
        .into_iter()
        .map(|k| {
            let v = values.remove(&k).unwrap_or_default();
            format!("{k}={v}")
        })
        .collect()
}

/// The environment of a container: the same variables, in the same order, as the
/// Kubernetes pod template gives it.
pub(crate) fn environment(system: &System, container: &Container) -> Vec<String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let pair = |e: &Vec<String>| (e[0].clone(), e.get(1).cloned().unwrap_or_default());
    env.extend(container.env.iter().filter(|e| !e.is_empty()).map(pair));
    let host = ("HOST".to_string(), py_str(&system.host));
    if container.env.is_empty() {
        env.push(host.clone());
    }
    let prefix = if system.amb {
        format!(
            "/private/{}/{}/{}",
            system.system_name, system.username, system.identifier
        )
    } else {
        "/".to_string()
    };
    env.push(("GUID".into(), system.identifier.clone()));
    env.push(("USER_NAME".into(), system.username.clone()));
    env.push(("USER".into(), system.username.clone()));
    env.push(("NB_PREFIX".into(), prefix.clone()));
    env.push(("FB_BASEURL".into(), prefix));
    if !container.env.is_empty() {
        env.push(host);
    }
    for (k, v) in &system.system_env {
        env.push((k.clone(), py_str(v)));
    }
    env.extend(system.extra_env.iter().filter(|e| !e.is_empty()).map(pair));
    dedup_env(env)
}

fn port_number(v: &Value) -> Option<u16> {
    py_str(v).parse::<u16>().ok().filter(|p| *p > 0)
}

/// The Engine's name of a port's protocol (`tcp` when none is written).
fn protocol(p: &crate::model::Port) -> &'static str {
    match p
        .protocol
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("UDP") => "udp",
        Some("SCTP") => "sctp",
        _ => "tcp",
    }
}

impl Plan {
    /// Lowers default CPU limits above the Engine's CPU count to it (the Engine refuses
    /// a limit above the machine's CPUs; a compose file's own limit is left as written).
    pub(crate) fn fit_default_cpus(&mut self, engine_cpus: i64) {
        let most = engine_cpus.saturating_mul(1_000_000_000);
        if most <= 0 {
            return;
        }
        for c in self.containers.iter_mut().filter(|c| c.default_cpus) {
            if let Some(host) = c.body.host_config.as_mut() {
                host.nano_cpus = host.nano_cpus.map(|n| n.min(most));
            }
        }
    }
}

/// The plan of a start.
pub(crate) fn plan(system: &System, settings: &DockerConfig) -> Result<Plan> {
    let labels = system_labels(system);
    let network = system.name.clone();
    if !is_engine_name(&network) {
        return Err(Error::input(format!(
            "the system's name {network:?} is not a valid Docker network name"
        )));
    }
    let mut volumes: Vec<VolumePlan> = Vec::new();
    let mut containers = Vec::new();
    let mut warnings = Warnings::default();
    let mounts_of = mounts_by_container(system);
    for c in &system.containers {
        let name = format!("{}-{}", system.name, c.name);
        check_image(c)?;
        let ports = container_ports(system, c, settings, &mut warnings);
        let mounts = container_mounts(c, &mounts_of, &mut volumes)?;
        let resources = resources(c, settings)?;
        let device_requests = device_requests(c)?;
        let security = security::security(system, c, !mounts.is_empty(), &mut warnings)?;
        let healthcheck = container_healthcheck(c, &mut warnings)?;
        let entrypoint = match &c.command {
            Value::Array(a) if !a.is_empty() => Some(a.iter().map(py_str).collect()),
            _ => None,
        };
        let Ports {
            exposed,
            bindings,
            published,
        } = ports;
        let mut body = ContainerCreateBody {
            image: Some(c.image.clone()),
            hostname: Some(c.name.clone()),
            entrypoint,
            cmd: c.compose.command.clone(),
            env: Some(environment(system, c)),
            working_dir: c.compose.working_dir.clone(),
            labels: Some(container_labels(&labels, system, c)),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            healthcheck,
            host_config: Some(host_config(
                &network,
                bindings,
                mounts,
                &resources,
                settings,
                device_requests,
            )),
            networking_config: Some(networking_config(&network, c)),
            ..Default::default()
        };
        security.apply(&mut body);
        let group = match security.user {
            security::User::Group(g) => Some(g),
            _ => None,
        };
        containers.push(ContainerPlan {
            name,
            service: c.name.clone(),
            image: c.image.clone(),
            body,
            published,
            default_cpus: !set(&c.limits.cpus) && resources.nano_cpus.is_some(),
            group,
        });
    }
    Ok(Plan {
        network,
        labels,
        volumes,
        containers,
        warnings: warnings.into_vec(),
    })
}

/// Each container's mounts, grouped once (not searched among all volumes per container).
fn mounts_by_container(system: &System) -> HashMap<&str, Vec<&crate::model::Volume>> {
    let mut mounts_of: HashMap<&str, Vec<&crate::model::Volume>> = HashMap::new();
    for v in &system.volumes {
        mounts_of
            .entry(v.container_name.as_str())
            .or_default()
            .push(v);
    }
    mounts_of
}

/// An error unless container `c`'s image is a reference the Engine API can take.
fn check_image(c: &Container) -> Result<()> {
    if !is_image_reference(&c.image) {
        let shown: String = c.image.chars().take(200).collect();
        return Err(Error::input(format!(
            "service '{}': image {shown:?} is not a valid image reference",
            c.name
        )));
    }
    Ok(())
}

/// A container's ports: exposed, bound on the host, and published (in order).
struct Ports {
    exposed: Vec<String>,
    bindings: HashMap<String, Option<Vec<PortBinding>>>,
    published: Vec<String>,
}

/// The ports of container `c`, with the warning for its `services` entry's `clients`.
fn container_ports(
    system: &System,
    c: &Container,
    settings: &DockerConfig,
    warnings: &mut Warnings,
) -> Ports {
    // Published: the compose ports, else the port of the container's `services` entry.
    let mut ports: Vec<(u16, &str, Option<u16>)> = c
        .ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            port_number(&p.containerPort).map(|cp| {
                (
                    cp,
                    protocol(p),
                    c.compose.host_ports.get(i).copied().flatten(),
                )
            })
        })
        .collect();
    let entry = system.services.get(&c.name);
    if ports.is_empty() {
        if let Some(p) = entry.and_then(|s| port_number(&s.port)) {
            ports.push((p, "tcp", None));
        }
    }
    if let Some(s) = entry.filter(|s| !s.clients.is_empty()) {
        warnings.push(
            &c.name,
            "clients",
            format!(
                "{} is not enforced on Docker (no NetworkPolicy): the published ports accept every client that reaches {}",
                echo(&s.clients.join(", ")),
                settings.bind_address
            ),
        );
    }
    let mut result = bind_ports(&ports, settings);
    for p in &c.expose {
        if let Some(n) = port_number(&p.containerPort) {
            let key = format!("{n}/{}", protocol(p));
            if !result.exposed.contains(&key) {
                result.exposed.push(key);
            }
        }
    }
    result
}

/// The published `ports` (container port, protocol, compose host port) bound on the
/// bind address.
fn bind_ports(ports: &[(u16, &str, Option<u16>)], settings: &DockerConfig) -> Ports {
    let mut exposed: Vec<String> = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut published = Vec::new();
    for (container_port, proto, host_port) in ports {
        let key = format!("{container_port}/{proto}");
        let host_port = match settings.host_ports {
            HostPorts::Compose => host_port.map(|p| p.to_string()).unwrap_or_default(),
            HostPorts::Random => String::new(),
        };
        if !exposed.contains(&key) {
            exposed.push(key.clone());
            published.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(settings.bind_address.clone()),
                host_port: Some(host_port),
            });
    }
    Ports {
        exposed,
        bindings,
        published,
    }
}

/// The volume mounts of container `c`, adding each named volume it is the first to
/// mount to `volumes`.
fn container_mounts(
    c: &Container,
    mounts_of: &HashMap<&str, Vec<&crate::model::Volume>>,
    volumes: &mut Vec<VolumePlan>,
) -> Result<Vec<Mount>> {
    let mut mounts = Vec::new();
    if c.volumes.is_empty() {
        return Ok(mounts);
    }
    for v in mounts_of.get(c.name.as_str()).into_iter().flatten() {
        let Some(path) = v.path.clone().filter(|p| !p.is_empty()) else {
            continue;
        };
        // Kubernetes takes a relative mountPath from the root; the Engine wants it absolute.
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        let volume = volume_name(&v.volume_name, v.subpath.as_deref());
        if !is_engine_name(&volume) {
            return Err(Error::input(format!(
                "service '{}': volume {volume:?} is not a valid Docker volume name",
                c.name
            )));
        }
        if !volumes.iter().any(|p| p.name == volume) {
            volumes.push(VolumePlan {
                name: volume.clone(),
                claim: v.volume_name.clone(),
                service: c.name.clone(),
            });
        }
        mounts.push(Mount {
            target: Some(path),
            source: Some(volume),
            typ: Some(MountType::VOLUME),
            read_only: Some(v.read_only),
            ..Default::default()
        });
    }
    Ok(mounts)
}

/// A container's CPU and memory limits and memory reservation, in Engine units.
struct Resources {
    nano_cpus: Option<i64>,
    memory: Option<i64>,
    memory_reservation: Option<i64>,
}

/// The limits of container `c`: the compose file's, else the defaults.
fn resources(c: &Container, settings: &DockerConfig) -> Result<Resources> {
    let limits = &c.limits;
    let defaults = &settings.default_limits;
    let nano_cpus = if set(&limits.cpus) {
        Some(
            cpus_to_nano(&limits.cpus)
                .map_err(|e| Error::input(format!("service '{}': limits.cpus {e}", c.name)))?,
        )
    } else {
        defaults.nano_cpus()
    };
    let memory_reservation =
        if set(&c.requests.memory) {
            Some(memory_to_bytes(&c.requests.memory).map_err(|e| {
                Error::input(format!("service '{}': reservations.memory {e}", c.name))
            })?)
        } else {
            None
        };
    let memory = if set(&limits.memory) {
        Some(
            memory_to_bytes(&limits.memory)
                .map_err(|e| Error::input(format!("service '{}': limits.memory {e}", c.name)))?,
        )
    } else {
        defaults.memory_bytes(memory_reservation)
    };
    Ok(Resources {
        nano_cpus,
        memory,
        memory_reservation,
    })
}

/// The healthcheck of container `c` (its readiness probe, else its liveness probe),
/// with the warnings for what of its probes the Engine does not do.
fn container_healthcheck(c: &Container, warnings: &mut Warnings) -> Result<Option<HealthConfig>> {
    if let (Some(_), Some(live)) = (&c.readiness_probe, &c.liveness_probe) {
        warnings.push(
            &c.name,
            "livenessProbe",
            format!(
                "{} is not used on Docker: a container has one healthcheck, the readiness probe",
                echo(&probe_text(live))
            ),
        );
    }
    let probe = c.readiness_probe.as_ref().or(c.liveness_probe.as_ref());
    if let Some(headers) = probe
        .and_then(|p| p.httpHeaders.as_ref())
        .filter(|h| set(h))
    {
        let which = if c.readiness_probe.is_some() {
            "readinessProbe"
        } else {
            "livenessProbe"
        };
        warnings.push(
            &c.name,
            &format!("{which}.httpGet.httpHeaders"),
            format!(
                "{} is not sent on Docker: the healthcheck's wget/curl asks without headers",
                echo(&headers.to_string())
            ),
        );
    }
    match probe {
        Some(p) => healthcheck(&c.name, p),
        None => Ok(None),
    }
}

/// The labels of container `c`: the system's, its service and the connection string.
fn container_labels(
    labels: &HashMap<String, String>,
    system: &System,
    c: &Container,
) -> HashMap<String, String> {
    let mut container_labels = labels.clone();
    container_labels.insert(SERVICE_LABEL.into(), c.name.clone());
    if let Value::String(s) = &system.conn_string {
        container_labels.insert("conn_string".into(), s.clone());
    }
    container_labels
}

/// The host config of a container on `network`.
fn host_config(
    network: &str,
    bindings: HashMap<String, Option<Vec<PortBinding>>>,
    mounts: Vec<Mount>,
    resources: &Resources,
    settings: &DockerConfig,
    device_requests: Option<Vec<DeviceRequest>>,
) -> HostConfig {
    HostConfig {
        network_mode: Some(network.to_string()),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        mounts: (!mounts.is_empty()).then_some(mounts),
        nano_cpus: resources.nano_cpus,
        memory: resources.memory,
        // No swap beyond the memory limit, as on Kubernetes.
        memory_swap: resources.memory,
        memory_reservation: resources.memory_reservation,
        pids_limit: settings.default_limits.pids,
        device_requests,
        ..Default::default()
    }
}

/// Container `c` on `network`, with its service name as its alias.
fn networking_config(network: &str, c: &Container) -> NetworkingConfig {
    let mut endpoints = HashMap::new();
    endpoints.insert(
        network.to_string(),
        EndpointSettings {
            aliases: Some(vec![c.name.clone()]),
            ..Default::default()
        },
    );
    NetworkingConfig {
        endpoints_config: Some(endpoints),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::docker::client::Pull;
    use serde_json::json;

    fn settings(host_ports: HostPorts) -> DockerConfig {
        DockerConfig {
            bind_address: "127.0.0.1".into(),
            host_ports,
            env_dir: None,
            pull: Pull::Never,
            timeout: std::time::Duration::from_secs(5),
            volume_allow: Vec::new(),
            default_limits: crate::compile::default_limits::DefaultLimits {
                cpus: Some("2".into()),
                memory: Some("4Gi".into()),
                pids: Some(4096),
            },
        }
    }

    fn system() -> System {
        let request = json!({
            "name": "app",
            "principal": "{\"username\": \"jdoe\"}",
            "serviceaccount": "default",
            "env": {"MODE": "fast"},
            "system": {"version": "3", "services": {
                "web": {
                    "image": "img:1", "entrypoint": ["/bin/web"], "command": "serve 80",
                    "ports": ["8080:80"], "user": "1:2", "working_dir": "/w",
                    "environment": ["A=1", "A=2"],
                    "volumes": ["pvc://data/sub dir:/data:ro"],
                    "deploy": {"resources": {"limits": {"cpus": "500m", "memory": "1Gi", "gpus": 2}}},
                    "ext": {"kube": {"readinessProbe": {"httpGet": {"path": "/it's", "port": 80}, "period": 2}}},
                },
            }},
            "services": {"web": {"port": "80", "clients": []}},
        });
        crate::compile::parse_system(
            crate::config::default_config(),
            &request,
            Some("g".repeat(32)),
        )
        .expect("parses")
    }

    #[test]
    fn image_references_cannot_reach_other_endpoints() {
        for good in [
            "busybox",
            "nginx:1.25",
            "localhost:5000/a/b:2",
            "x@sha256:0a",
            "tycho-test-httpd:fc18",
        ] {
            assert!(is_image_reference(good), "{good}");
        }
        for bad in [
            "",
            "../containers/create",
            "a/../b",
            "a?b",
            "a b",
            "/x",
            "x//y",
            "-x",
            "a#b",
        ] {
            assert!(!is_image_reference(bad), "{bad}");
        }
    }

    #[test]
    fn volume_names_per_claim_and_sub_path() {
        assert_eq!(volume_name("data", None), "data");
        assert_eq!(volume_name("data", Some("")), "data");
        assert_eq!(volume_name("stdnfs", Some("/jdoe/")), "stdnfs_jdoe");
        assert_eq!(volume_name("data", Some("a b/c")), "data_a_b_c");
        assert!(is_engine_name("data_a_b_c") && !is_engine_name("-x") && !is_engine_name(""));
    }

    #[test]
    fn a_compose_service_becomes_a_create_body() {
        let s = system();
        let plan = plan(&s, &settings(HostPorts::Compose)).expect("plan");
        assert_eq!(plan.network, s.name);
        assert_eq!(plan.labels["executor"], "tycho");
        assert_eq!(plan.labels["tycho-guid"], s.identifier);
        assert_eq!(plan.labels["username"], "jdoe");
        assert_eq!(plan.labels["app-name"], "app");
        let c = &plan.containers[0];
        assert_eq!(c.name, format!("{}-web", s.name));
        let b = &c.body;
        assert_eq!(b.entrypoint.as_deref(), Some(&["/bin/web".to_string()][..]));
        assert_eq!(b.cmd, Some(vec!["serve".into(), "80".into()]));
        assert_eq!(b.user.as_deref(), Some("1:2"));
        assert_eq!(b.working_dir.as_deref(), Some("/w"));
        let env = b.env.clone().unwrap_or_default();
        assert!(env.contains(&"A=2".to_string()) && !env.contains(&"A=1".to_string()));
        assert!(env.contains(&"MODE=fast".to_string()));
        assert!(env.contains(&format!("GUID={}", s.identifier)));
        assert_eq!(
            b.labels.as_ref().map(|l| l["tycho-service"].clone()),
            Some("web".into())
        );
        let host = b.host_config.clone().unwrap_or_default();
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.memory, Some(1 << 30));
        assert_eq!(host.memory_swap, Some(1 << 30));
        let gpus = host.device_requests.unwrap_or_default();
        assert_eq!(gpus[0].count, Some(2));
        let binding = &host.port_bindings.unwrap_or_default()["80/tcp"];
        assert_eq!(
            binding.as_ref().map(|b| b[0].host_port.clone()),
            Some(Some("8080".into()))
        );
        assert_eq!(c.published, vec!["80/tcp".to_string()]);
        let mounts = host.mounts.unwrap_or_default();
        let data = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some("/data"))
            .expect("the data mount");
        assert_eq!(data.source.as_deref(), Some("data_sub_dir"));
        assert_eq!(data.read_only, Some(true));
        assert_eq!(
            plan.volumes[0],
            VolumePlan {
                name: "data_sub_dir".into(),
                claim: "data".into(),
                service: "web".into()
            }
        );
        assert_eq!(host.pids_limit, Some(4096));
        // Quoted for the shell: the path cannot end the word.
        let check = b.healthcheck.clone().expect("healthcheck");
        assert_eq!(check.interval, Some(2_000_000_000));
        let test = check.test.unwrap_or_default();
        assert_eq!(test[0], "CMD-SHELL");
        assert!(
            test[1].contains("'http://127.0.0.1:80/it'\\''s'"),
            "{}",
            test[1]
        );

        let random = plan_random(&s);
        assert_eq!(
            random,
            Some(Some(String::new())),
            "random: the Engine picks"
        );
    }

    #[test]
    fn gpu_devices_become_device_requests() {
        let mut s = system();
        let gpus = |s: &System| {
            let plan = plan(s, &settings(HostPorts::Compose)).expect("plan");
            let host = plan.containers[0]
                .body
                .host_config
                .clone()
                .unwrap_or_default();
            host.device_requests.unwrap_or_default()
        };
        s.containers[0].limits.gpus = Value::Null;
        s.containers[0].compose.gpu_devices = Some(crate::model::GpuDevices {
            count: None,
            device_ids: vec!["0".into(), "3".into()],
            driver: Some("nvidia".into()),
        });
        let r = &gpus(&s)[0];
        assert_eq!(r.count, None);
        assert_eq!(r.device_ids, Some(vec!["0".to_string(), "3".into()]));
        assert_eq!(r.driver.as_deref(), Some("nvidia"));
        assert_eq!(r.capabilities, Some(vec![vec!["gpu".to_string()]]));
        s.containers[0].compose.gpu_devices = Some(crate::model::GpuDevices::default());
        assert_eq!(gpus(&s)[0].count, Some(-1), "all");
        s.containers[0].compose.gpu_devices = Some(crate::model::GpuDevices {
            count: Some(2),
            ..Default::default()
        });
        assert_eq!(gpus(&s)[0].count, Some(2));
        // limits.gpus wins over the device form's count.
        s.containers[0].limits.gpus = json!(1);
        assert_eq!(gpus(&s)[0].count, Some(1));
        s.containers[0].limits.gpus = Value::Null;
        s.containers[0].compose.gpu_devices = None;
        assert!(gpus(&s).is_empty());
    }

    #[test]
    fn containers_without_limits_get_the_defaults() {
        let request = json!({
            "name": "app",
            "principal": "{\"username\": \"jdoe\"}",
            "serviceaccount": "default",
            "system": {"version": "3", "services": {
                "bare": {"image": "img:1", "volumes": ["pvc://data:/data"]},
                "big": {"image": "img:1", "deploy": {"resources": {"reservations": {"memory": "8Gi"}}}},
            }},
            "services": {},
        });
        let s = crate::compile::parse_system(
            crate::config::default_config(),
            &request,
            Some("b".repeat(32)),
        )
        .expect("parses");
        let plan = plan(&s, &settings(HostPorts::Random)).expect("plan");
        let host = |i: usize| {
            plan.containers[i]
                .body
                .host_config
                .clone()
                .unwrap_or_default()
        };
        assert_eq!(host(0).nano_cpus, Some(2_000_000_000));
        assert_eq!(host(0).memory, Some(4 << 30));
        assert_eq!(host(0).memory_swap, Some(4 << 30));
        assert_eq!(host(0).pids_limit, Some(4096));
        // A reservation above the default limit is the limit (the Engine refuses less).
        assert_eq!(host(1).memory, Some(8 << 30));
        assert_eq!(host(1).memory_reservation, Some(8 << 30));

        let mut off = settings(HostPorts::Random);
        off.default_limits = Default::default();
        let mut fitted = plan.clone();
        fitted.fit_default_cpus(1);
        let cpus = |p: &Plan, i: usize| {
            p.containers[i]
                .body
                .host_config
                .as_ref()
                .and_then(|h| h.nano_cpus)
        };
        assert_eq!(
            cpus(&fitted, 0),
            Some(1_000_000_000),
            "the default fits a 1-CPU Engine"
        );
        let mut sized = super::plan(&system(), &settings(HostPorts::Random)).expect("plan");
        sized.fit_default_cpus(0);
        sized.fit_default_cpus(1);
        assert_eq!(
            cpus(&sized, 0),
            Some(500_000_000),
            "the compose file's own limit stays"
        );
        let plan_off = super::plan(&s, &off).expect("plan");
        let h = plan_off.containers[0]
            .body
            .host_config
            .clone()
            .unwrap_or_default();
        assert_eq!((h.nano_cpus, h.memory, h.pids_limit), (None, None, None));

        // Volumes carry no system's labels: they outlive it and other systems mount them.
        let labels = volume_labels("data");
        assert_eq!(labels["executor"], "tycho");
        assert_eq!(labels[SHARED_LABEL], "true");
        assert_eq!(labels[CLAIM_LABEL], "data");
        assert!(!labels.contains_key(GUID_LABEL) && !labels.contains_key("username"));
    }

    fn parse(request: serde_json::Value) -> System {
        crate::compile::parse_system(
            crate::config::default_config(),
            &request,
            Some("c".repeat(32)),
        )
        .expect("parses")
    }

    fn request(services: serde_json::Value, top: serde_json::Value) -> serde_json::Value {
        let mut system = json!({"version": "3", "services": services});
        for (k, v) in top.as_object().into_iter().flatten() {
            system[k] = v.clone();
        }
        json!({
            "name": "app",
            "principal": "{\"username\": \"jdoe\"}",
            "serviceaccount": "default",
            "system": system,
            "services": {"dns": {"port": "53", "clients": ["10.0.0.0/8"]}},
        })
    }

    #[test]
    fn the_spec_s_privileges_and_filesystems_are_mapped() {
        let s = parse(request(
            json!({
                "dns": {
                    "image": "img:1", "ports": ["5353:53/udp", "53/tcp"], "expose": ["9153/sctp"],
                    "user": "4321:4321", "read_only": true,
                    "cap_add": ["net_bind_service", "CAP_NET_ADMIN"], "cap_drop": ["ALL"],
                    "tmpfs": ["/run", "/tmp:size=64m"], "shm_size": "1gb",
                },
                "plain": {"image": "img:1"},
            }),
            json!({}),
        ));
        let plan = plan(&s, &settings(HostPorts::Compose)).expect("plan");
        let dns = &plan.containers[0];
        let b = &dns.body;
        assert_eq!(b.user.as_deref(), Some("4321:4321"));
        let host = b.host_config.clone().unwrap_or_default();
        assert_eq!(
            host.cap_add,
            Some(vec!["NET_BIND_SERVICE".into(), "NET_ADMIN".into()])
        );
        assert_eq!(host.cap_drop, Some(vec!["ALL".into()]));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.privileged, Some(false));
        let tmpfs = host.tmpfs.clone().unwrap_or_default();
        assert_eq!(tmpfs.len(), 2);
        assert_eq!(tmpfs["/run"], "");
        assert_eq!(tmpfs["/tmp"], format!("size={}", 64 << 20));
        assert_eq!(host.shm_size, Some(1 << 30));
        // The protocol of each port: 53/udp published at the compose host port.
        assert_eq!(
            dns.published,
            vec!["53/udp".to_string(), "53/tcp".to_string()]
        );
        let bindings = host.port_bindings.clone().unwrap_or_default();
        let udp = bindings["53/udp"].clone().unwrap_or_default();
        assert_eq!(udp[0].host_port.as_deref(), Some("5353"));
        let exposed = b.exposed_ports.clone().unwrap_or_default();
        for key in ["53/udp", "53/tcp", "9153/sctp"] {
            assert!(exposed.contains(&key.to_string()), "{key}: {exposed:?}");
        }
        // Nothing asked: nothing added, never privileged; the security context's user.
        let plain = plan.containers[1].body.clone();
        let host = plain.host_config.unwrap_or_default();
        assert_eq!(plain.user.as_deref(), Some("0:0"));
        assert_eq!((host.cap_add, host.cap_drop), (None, None));
        assert_eq!(host.readonly_rootfs, Some(false));
        assert_eq!(host.privileged, Some(false));
        assert_eq!((host.tmpfs, host.shm_size), (None, None));
        // The dns service's clients cannot be enforced: a warning names them.
        let shown: Vec<String> = plan.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            shown,
            vec!["service 'dns': 'clients' 10.0.0.0/8 is not enforced on Docker (no NetworkPolicy): the published ports accept every client that reaches 127.0.0.1".to_string()]
        );
    }

    #[test]
    fn the_registry_s_ids_win_over_compose_user_as_on_kubernetes() {
        let services = json!({"web": {"image": "img:1", "user": "0:0"}});
        let s = parse(request(
            services.clone(),
            json!({"security_context": {"runAsUser": 1000, "runAsGroup": 100}}),
        ));
        let plan = super::plan(&s, &settings(HostPorts::Random)).expect("plan");
        assert_eq!(plan.containers[0].body.user.as_deref(), Some("1000:100"));
        assert_eq!(plan.containers[0].group, None);
        // A gid alone: the image's user with that group, resolved at start.
        let s = parse(request(
            services,
            json!({"security_context": {"runAsUser": "", "runAsGroup": 5}}),
        ));
        let plan = super::plan(&s, &settings(HostPorts::Random)).expect("plan");
        assert_eq!(plan.containers[0].body.user, None);
        assert_eq!(plan.containers[0].group.as_deref(), Some("5"));
        // A user name is no uid on either backplane (the model warns): the defaults.
        let s = parse(request(
            json!({"web": {"image": "img:1", "user": "jovyan"}}),
            json!({}),
        ));
        let plan = super::plan(&s, &settings(HostPorts::Random)).expect("plan");
        assert_eq!(plan.containers[0].body.user.as_deref(), Some("0:0"));
    }

    #[test]
    fn what_docker_cannot_do_is_a_warning_naming_service_field_and_value() {
        let s = parse(request(
            json!({"web": {
                "image": "img:1", "volumes": ["pvc://data:/data"],
                "healthcheck": {"test": ["CMD", "/bin/true"], "timeout": "7s"},
                "ext": {"kube": {"readinessProbe": {"httpGet": {"path": "/", "port": 80, "httpHeaders": {"X-A": "1"}}}}},
            }}),
            json!({"security_context": {"fsGroup": 100}}),
        ));
        let plan = super::plan(&s, &settings(HostPorts::Random)).expect("plan");
        let shown: Vec<String> = plan.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "service 'web': 'security_context.fsGroup' 100 is a supplementary group only on Docker: the Engine does not give the volumes to that group as Kubernetes' fsGroup does",
                "service 'web': 'livenessProbe' /bin/true is not used on Docker: a container has one healthcheck, the readiness probe",
                "service 'web': 'readinessProbe.httpGet.httpHeaders' {\"X-A\":\"1\"} is not sent on Docker: the healthcheck's wget/curl asks without headers",
            ]
        );
        let host = plan.containers[0]
            .body
            .host_config
            .clone()
            .unwrap_or_default();
        assert_eq!(host.group_add, Some(vec!["100".to_string()]));
        // The compose healthcheck's timeout reaches the Engine when it is the healthcheck.
        let s = parse(request(
            json!({"web": {"image": "img:1", "healthcheck": {"test": ["CMD", "/bin/true"], "timeout": "7s"}}}),
            json!({}),
        ));
        let plan = super::plan(&s, &settings(HostPorts::Random)).expect("plan");
        let check = plan.containers[0]
            .body
            .healthcheck
            .clone()
            .expect("healthcheck");
        assert_eq!(check.timeout, Some(7_000_000_000));
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    }

    fn plan_random(s: &System) -> Option<Option<String>> {
        let plan = plan(s, &settings(HostPorts::Random)).ok()?;
        let host = plan.containers[0].body.host_config.clone()?;
        let binding = host.port_bindings?.remove("80/tcp")??;
        Some(binding[0].host_port.clone())
    }
}
