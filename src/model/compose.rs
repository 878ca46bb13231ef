//! Compose service keys: the conversion of each key tycho turns into Kubernetes fields,
//! and a [`Warning`](super::warning::Warning) for every key it does not (naming what
//! happens instead), typos included.
//!
//! The keys follow the compose specification (services top-level element); where a key
//! has a Kubernetes counterpart in tycho's one-pod-per-system model it is converted the
//! way Kompose does: `command` → args, `working_dir` → workingDir, `user` → runAsUser and
//! runAsGroup, `healthcheck` → an exec liveness probe, `read_only`, `cap_add`,
//! `cap_drop` → the container's securityContext, `tmpfs` and `shm_size` → memory-backed
//! emptyDir volumes, `labels` → pod labels, the port protocol → the container and
//! Service port's protocol.

use super::warning::Warnings;
use super::{ComposeExtras, Limits, MemoryVolume, Port, Probe};
use crate::error::{Error, Result};
use crate::limits::{echo, echo_value};
use crate::text::names;
use crate::text::pyfmt::py_str;
use serde_json::{json, Map, Value};

/// Service keys converted to Kubernetes fields (or read by tycho itself).
pub const CONVERTED_KEYS: &[&str] = &[
    "cap_add",
    "cap_drop",
    "command",
    "deploy",
    "entrypoint",
    "env",
    "env_file",
    "environment",
    "expose",
    "ext",
    "healthcheck",
    "image",
    "labels",
    "ports",
    "read_only",
    "shm_size",
    "tmpfs",
    "user",
    "volumes",
    "working_dir",
    // Read by tycho from the last service (the original's attributes).
    "conn_string",
    "gitea_integration",
    "proxy_rewrite",
    "proxy_rewrite_rule",
];

const ONE_POD: &str = "a system runs one pod; scale by starting more systems";
const SHARED_NETWORK: &str = "the containers of a system share the pod's network";
const RESOURCES: &str = "use deploy.resources (limits, reservations) for resources";
const NODE: &str = "a node-level setting that the cluster decides";
const NOT_CONVERTED: &str = "tycho does not convert it to Kubernetes fields";

/// Compose service keys tycho ignores, each with what happens instead.
pub const IGNORED_KEYS: &[(&str, &str)] = &[
    ("annotations", NOT_CONVERTED),
    ("attach", "the CLI does not attach to logs"),
    ("blkio_config", RESOURCES),
    ("build", "tycho runs an image; build and push it first"),
    ("cgroup", NODE),
    ("cgroup_parent", NODE),
    (
        "configs",
        "mount configuration through a pvc:// volume or settings",
    ),
    ("container_name", "the container is named after the service"),
    ("cpu_count", RESOURCES),
    ("cpu_percent", RESOURCES),
    ("cpu_period", RESOURCES),
    ("cpu_quota", RESOURCES),
    ("cpu_rt_period", RESOURCES),
    ("cpu_rt_runtime", RESOURCES),
    ("cpu_shares", RESOURCES),
    ("cpus", RESOURCES),
    ("cpuset", RESOURCES),
    ("credential_spec", NODE),
    (
        "depends_on",
        "the containers of a system share one pod and start together",
    ),
    ("develop", "no file watching on a cluster"),
    ("device_cgroup_rules", NODE),
    ("devices", NODE),
    ("dns", SHARED_NETWORK),
    ("dns_opt", SHARED_NETWORK),
    ("dns_search", SHARED_NETWORK),
    ("domainname", "Kubernetes names the pod"),
    ("driver_opts", NODE),
    ("extends", "write the service out in full"),
    ("external_links", SHARED_NETWORK),
    ("extra_hosts", SHARED_NETWORK),
    (
        "gpus",
        "use deploy.resources.reservations.devices or deploy.resources.limits.gpus",
    ),
    ("group_add", NOT_CONVERTED),
    ("hostname", "Kubernetes names the pod"),
    ("init", "no init process is added"),
    ("ipc", NODE),
    ("isolation", NODE),
    ("label_file", "write the labels under labels"),
    ("links", SHARED_NETWORK),
    ("logging", "the cluster collects container output"),
    ("mac_address", SHARED_NETWORK),
    ("mem_limit", RESOURCES),
    ("mem_reservation", RESOURCES),
    ("mem_swappiness", RESOURCES),
    ("memswap_limit", RESOURCES),
    ("models", NOT_CONVERTED),
    ("network_mode", SHARED_NETWORK),
    ("networks", SHARED_NETWORK),
    ("oom_kill_disable", RESOURCES),
    ("oom_score_adj", RESOURCES),
    ("pid", NODE),
    ("pids_limit", RESOURCES),
    ("platform", "the cluster picks the node"),
    ("post_start", NOT_CONVERTED),
    ("pre_stop", NOT_CONVERTED),
    (
        "privileged",
        "privileged containers are not created; use cap_add for what the app needs",
    ),
    ("profiles", "every service of the document is started"),
    ("provider", NOT_CONVERTED),
    ("pull_policy", "the cluster's image pull policy applies"),
    ("restart", "Deployments always restart"),
    ("runtime", NODE),
    ("scale", ONE_POD),
    (
        "secrets",
        "mount secrets through a pvc:// volume or settings",
    ),
    ("security_opt", NODE),
    ("stdin_open", NOT_CONVERTED),
    ("stop_grace_period", NOT_CONVERTED),
    ("stop_signal", NOT_CONVERTED),
    ("storage_opt", NODE),
    ("sysctls", NODE),
    ("tty", NOT_CONVERTED),
    ("ulimits", NODE),
    ("use_api_socket", "no container engine socket on a cluster"),
    ("userns_mode", NODE),
    ("uts", NODE),
    ("volumes_from", "mount the same pvc:// volumes"),
];

/// Top-level keys of a compose document that tycho ignores (besides `services`,
/// `security_context`, `placement` and `gpu_resource` (the registry's, see
/// [`super::placement`]), the informative `version` and `name`, and `x-` extensions).
const IGNORED_TOP_LEVEL: &[(&str, &str)] = &[
    ("networks", SHARED_NETWORK),
    (
        "volumes",
        "volumes are pvc:// claims that exist on the cluster",
    ),
    (
        "secrets",
        "mount secrets through a pvc:// volume or settings",
    ),
    (
        "configs",
        "mount configuration through a pvc:// volume or settings",
    ),
    ("models", NOT_CONVERTED),
    ("include", "write the services out in full"),
];

/// Warns about every key of service `name` that is not converted, and about the keys
/// of `deploy` other than `resources`.
pub fn warn_keys(name: &str, spec: &Map<String, Value>, warnings: &mut Warnings) {
    for key in spec.keys() {
        if key.starts_with("x-") || CONVERTED_KEYS.contains(&key.as_str()) {
            continue;
        }
        match IGNORED_KEYS.iter().find(|(k, _)| k == key) {
            Some((_, why)) => warnings.push(name, key, format!("is ignored: {why}")),
            None => warnings.push(
                name,
                key,
                "is ignored: it is not a compose service key (a typo?)",
            ),
        }
    }
    if let Some(Value::Object(deploy)) = spec.get("deploy") {
        for key in deploy.keys() {
            let dotted = format!("deploy.{key}");
            match key.as_str() {
                // placement: converted (and its keys warned about) by super::placement.
                "resources" | "placement" => {}
                "replicas" => warnings.push(name, &dotted, format!("is ignored: {ONE_POD}")),
                "restart_policy" => {
                    warnings.push(name, &dotted, "is ignored: Deployments always restart")
                }
                _ => warnings.push(name, &dotted, format!("is ignored: {NOT_CONVERTED}")),
            }
        }
    }
}

/// Warns about the top-level keys of the document that are not used.
pub fn warn_top_level(doc: &Map<String, Value>, warnings: &mut Warnings) {
    for key in doc.keys() {
        if key.starts_with("x-")
            || [
                "services",
                "security_context",
                "placement",
                "gpu_resource",
                "version",
                "name",
            ]
            .contains(&key.as_str())
        {
            continue;
        }
        match IGNORED_TOP_LEVEL.iter().find(|(k, _)| k == key) {
            Some((_, why)) => warnings.push("", key, format!("is ignored: {why}")),
            None => warnings.push(
                "",
                key,
                "is ignored: it is not a compose top-level key (a typo?)",
            ),
        }
    }
}

/// Tycho's own pod labels (and the prefix of any future one): compose `labels` cannot
/// set them.
const RESERVED_LABELS: &[&str] = &[
    "name",
    "username",
    "app-name",
    "original-app-name",
    "reaper-label",
    "executor",
    "tycho-guid",
    "tycho-app-id",
    "tycho-app",
    "conn_string",
];

fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    name_ok && prefix.is_none_or(names::is_dns_subdomain)
}

/// The `labels` of service `name` that may become pod labels; the others are dropped
/// with a warning (tycho's own labels, invalid keys or values).
pub fn labels(
    name: &str,
    spec: &Map<String, Value>,
    warnings: &mut Warnings,
) -> Result<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = match spec.get("labels") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if v.is_null() {
                        String::new()
                    } else {
                        py_str(v)
                    },
                )
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                let s = py_str(i);
                match s.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (s, String::new()),
                }
            })
            .collect(),
        Some(other) => {
            return Err(Error::input(format!(
            "service '{name}': field 'labels' must be a mapping or a list of NAME=value, got {}",
            echo_value(other)
        )))
        }
    };
    let mut out = Vec::new();
    for (key, value) in pairs {
        let dotted = format!("labels.{key}");
        if RESERVED_LABELS.contains(&key.as_str()) || key.contains("tycho") {
            warnings.push(name, &dotted, "is dropped: tycho sets this label itself");
        } else if !is_label_key(&key) || !names::is_label_value(&value) {
            warnings.push(
                name,
                &dotted,
                format!(
                    "is dropped: {} is not a valid Kubernetes label",
                    echo(&format!("{key}={value}"))
                ),
            );
        } else {
            out.push((key, value));
        }
    }
    Ok(out)
}

/// A compose duration (`1m30s`, `10s`, `500ms`, `1h`) in whole seconds, rounded up.
pub fn duration_seconds(service: &str, key: &str, v: &Value) -> Result<u64> {
    let bad = || {
        Error::input(format!(
            "service '{service}': {key} {} is not a duration (like 30s, 1m30s, 500ms)",
            echo_value(v)
        ))
    };
    let text = match v {
        Value::Number(n) => return n.as_u64().ok_or_else(bad),
        Value::String(s) => s.trim(),
        _ => return Err(bad()),
    };
    if text.is_empty() || text.len() > 40 {
        return Err(bad());
    }
    let mut total_ms: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let factor: u128 = match &rest[..unit_len] {
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1000,
            "ms" => 1,
            "us" | "µs" | "ns" => 0,
            _ => return Err(bad()),
        };
        total_ms += n * factor;
        rest = &rest[unit_len..];
    }
    let secs = total_ms.div_ceil(1000);
    u64::try_from(secs)
        .ok()
        .filter(|s| *s <= i32::MAX as u64)
        .ok_or_else(bad)
}

/// `healthcheck` as an exec liveness probe; None for `disable: true` or `test: ["NONE"]`.
pub fn healthcheck(service: &str, v: Option<&Value>) -> Result<Option<Probe>> {
    let map = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(Error::input(format!(
                "service '{service}': field 'healthcheck' must be a mapping, got {}",
                echo_value(other)
            )))
        }
    };
    if map.get("disable") == Some(&Value::Bool(true)) {
        return Ok(None);
    }
    let cmd: Vec<String> = match map.get("test") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        Some(Value::Array(items)) => {
            let items: Vec<String> = items.iter().map(py_str).collect();
            match items.first().map(String::as_str) {
                Some("NONE") => return Ok(None),
                Some("CMD") => items[1..].to_vec(),
                Some("CMD-SHELL") => {
                    vec!["/bin/sh".into(), "-c".into(), items[1..].join(" ")]
                }
                _ => {
                    return Err(Error::input(format!(
                        "service '{service}': healthcheck.test {} must start with CMD, CMD-SHELL or NONE",
                        echo(&format!("{items:?}"))
                    )))
                }
            }
        }
        Some(other) => {
            return Err(Error::input(format!(
                "service '{service}': healthcheck.test must be a string or a list, got {}",
                echo_value(other)
            )))
        }
    };
    if cmd.is_empty() {
        return Err(Error::input(format!(
            "service '{service}': healthcheck.test has no command"
        )));
    }
    let seconds = |key: &str| -> Result<Value> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(Value::Null),
            Some(v) => Ok(json!(duration_seconds(
                service,
                &format!("healthcheck.{key}"),
                v
            )?
            .max(1))),
        }
    };
    let threshold = match map.get("retries") {
        None | Some(Value::Null) => Value::Null,
        Some(v) => match v.as_u64().filter(|n| (1..=i32::MAX as u64).contains(n)) {
            Some(n) => json!(n),
            None => {
                return Err(Error::input(format!(
                    "service '{service}': healthcheck.retries {} must be a positive whole number",
                    echo_value(v)
                )))
            }
        },
    };
    Ok(Some(Probe {
        cmd: json!(cmd),
        delay: seconds("start_period")?,
        period: seconds("interval")?,
        threshold,
        timeout: match seconds("timeout")? {
            Value::Null => None,
            t => Some(t),
        },
        ..Probe::default()
    }))
}

/// Docker's byte size (`64m`, `1gb`, `65536k`, a number of bytes) as a Kubernetes quantity.
pub fn byte_size(service: &str, key: &str, v: &Value) -> Result<String> {
    let bad = || {
        Error::input(format!(
            "service '{service}': {key} {} is not a size (like 64m, 1g or a number of bytes)",
            echo_value(v)
        ))
    };
    let text = match v {
        Value::Number(n) => return n.as_u64().map(|n| n.to_string()).ok_or_else(bad),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        _ => return Err(bad()),
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 18 {
        return Err(bad());
    }
    let n = &text[..digits];
    let unit = match text[digits..].trim_end_matches('b') {
        "" => "",
        "k" => "Ki",
        "m" => "Mi",
        "g" => "Gi",
        _ => return Err(bad()),
    };
    if text[digits..].len() > 2 {
        return Err(bad());
    }
    Ok(format!("{n}{unit}"))
}

/// `tmpfs` and `shm_size` of container `index` as memory-backed volumes.
pub fn memory_volumes(
    service: &str,
    index: usize,
    spec: &Map<String, Value>,
) -> Result<Vec<MemoryVolume>> {
    let mut out = Vec::new();
    let entries: Vec<&Value> = match spec.get("tmpfs") {
        None | Some(Value::Null) => Vec::new(),
        Some(v @ Value::String(_)) => vec![v],
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => {
            return Err(Error::input(format!(
                "service '{service}': field 'tmpfs' must be a path or a list of paths, got {}",
                echo_value(other)
            )))
        }
    };
    for (i, entry) in entries.into_iter().enumerate() {
        let text = entry.as_str().ok_or_else(|| {
            Error::input(format!(
                "service '{service}': tmpfs entry {} must be a string",
                echo_value(entry)
            ))
        })?;
        let (path, options) = text.split_once(':').unwrap_or((text, ""));
        if !path.starts_with('/') {
            return Err(Error::input(format!(
                "service '{service}': tmpfs entry {} must be an absolute path",
                echo(text)
            )));
        }
        let mut size_limit = None;
        for option in options.split(',') {
            if let Some(size) = option.strip_prefix("size=") {
                size_limit = Some(byte_size(service, "tmpfs size", &json!(size))?);
            }
        }
        out.push(MemoryVolume {
            container_name: service.to_string(),
            name: format!("tycho-tmpfs-{index}-{i}"),
            path: path.to_string(),
            size_limit,
        });
    }
    if let Some(size) = spec.get("shm_size").filter(|v| !v.is_null()) {
        out.push(MemoryVolume {
            container_name: service.to_string(),
            name: format!("tycho-shm-{index}"),
            path: "/dev/shm".into(),
            size_limit: Some(byte_size(service, "shm_size", size)?),
        });
    }
    Ok(out)
}

/// A capability list (`cap_add`, `cap_drop`) without the `CAP_` prefix.
fn capabilities(service: &str, field: &str, v: Option<&Value>) -> Result<Vec<String>> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(Error::input(format!(
                "service '{service}': field '{field}' must be a list of capabilities, got {}",
                echo_value(other)
            )))
        }
    };
    items
        .iter()
        .map(|item| {
            let text = py_str(item).to_ascii_uppercase();
            let name = text.strip_prefix("CAP_").unwrap_or(&text).to_string();
            if name.is_empty()
                || name.len() > 64
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(Error::input(format!(
                    "service '{service}': {field} entry {} is not a capability name",
                    echo_value(item)
                )));
            }
            Ok(name)
        })
        .collect()
}

/// `user` (`uid[:gid]`, numeric) as runAsUser / runAsGroup; a name cannot be one
/// (Kubernetes needs numbers), so it is ignored with a warning (on Docker too, which
/// runs the same ids).
fn user_ids(
    service: &str,
    user: Option<&str>,
    warnings: &mut Warnings,
) -> (Option<String>, Option<String>) {
    let Some(user) = user else {
        return (None, None);
    };
    let (uid, gid) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let numeric = |s: &str| !s.is_empty() && s.len() <= 10 && s.parse::<u32>().is_ok();
    if !numeric(uid) || !gid.is_none_or(numeric) {
        warnings.push(
            service,
            "user",
            format!(
                "is ignored: {} is not a numeric uid[:gid] (containers run as numeric ids, on Kubernetes and on Docker alike)",
                echo(user)
            ),
        );
        return (None, None);
    }
    (Some(uid.to_string()), gid.map(String::from))
}

/// Whether the registry (or NFSRODS_UID) sets the user and group itself: then compose
/// `user` gives way to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryIds {
    /// runAsUser is set by the registry's security_context or NFSRODS_UID.
    pub user: bool,
    /// runAsGroup is set by the registry's security_context or NFSRODS_UID.
    pub group: bool,
}

impl ComposeExtras {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.command.is_none()
            && self.working_dir.is_none()
            && self.user.is_none()
            && self.host_ports.iter().all(Option::is_none)
            && self.run_as_user.is_none()
            && self.run_as_group.is_none()
            && !self.read_only
            && self.cap_add.is_empty()
            && self.cap_drop.is_empty()
            && self.gpu_devices.is_none()
            && self.gpu_resource.is_none()
            && self.gpu_count.is_none()
    }

    /// Reads the fields from a compose service; `registry` tells which ids the
    /// registry's security settings fix (they take precedence over `user`).
    pub(super) fn parse(
        service: &str,
        spec: &Map<String, Value>,
        registry: RegistryIds,
        warnings: &mut Warnings,
    ) -> Result<Self> {
        let text = |field: &str| -> Result<Option<String>> {
            match spec.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(other) => Err(Error::input(format!(
                    "service '{service}': field '{field}' must be a string, got {}",
                    echo(&other.to_string())
                ))),
            }
        };
        let command = match spec.get("command") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.split_whitespace().map(String::from).collect()),
            Some(Value::Array(items)) => Some(items.iter().map(py_str).collect()),
            Some(other) => {
                return Err(Error::input(format!(
                    "service '{service}': field 'command' must be a string or a list, got {}",
                    echo(&other.to_string())
                )))
            }
        };
        let host_ports = match spec.get("ports") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|p| {
                    let s = p.as_str()?;
                    let mut parts: Vec<&str> = s.rsplitn(3, ':').collect();
                    parts.reverse();
                    if parts.len() < 2 {
                        return None;
                    }
                    parts[parts.len() - 2]
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                })
                .collect(),
            _ => Vec::new(),
        };
        let user = text("user")?;
        let (mut run_as_user, mut run_as_group) = user_ids(service, user.as_deref(), warnings);
        if run_as_user.is_some() && registry.user {
            warnings.push(
                service,
                "user",
                "gives way to the registry's security_context runAsUser",
            );
            run_as_user = None;
        }
        if run_as_group.is_some() && registry.group {
            warnings.push(
                service,
                "user",
                "gives way to the registry's security_context runAsGroup",
            );
            run_as_group = None;
        }
        let read_only = match spec.get("read_only") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(other) => {
                return Err(Error::input(format!(
                    "service '{service}': field 'read_only' must be true or false, got {}",
                    echo_value(other)
                )))
            }
        };
        let reservations = spec
            .get("deploy")
            .and_then(|d| d.get("resources"))
            .and_then(|r| r.get("reservations"));
        let gpu_devices = gpu_devices(service, reservations, warnings)?;
        let gpu_resource = match gpu_devices.as_ref().and_then(|g| g.driver.as_deref()) {
            None => None,
            Some(driver) => match driver_resource(driver) {
                Some(resource) => resource,
                None => {
                    warnings.push(
                        service,
                        "deploy.resources.reservations.devices",
                        format!(
                            "driver {} has no known Kubernetes resource (nvidia, amd, intel): the system's GPU resource is used",
                            echo(driver)
                        ),
                    );
                    None
                }
            },
        };
        Ok(ComposeExtras {
            gpu_devices,
            gpu_resource,
            gpu_count: None,
            command,
            working_dir: text("working_dir")?,
            user,
            host_ports,
            run_as_user,
            run_as_group,
            read_only,
            cap_add: capabilities(service, "cap_add", spec.get("cap_add"))?,
            cap_drop: capabilities(service, "cap_drop", spec.get("cap_drop"))?,
        })
    }
}

/// The Kubernetes resource of a compose GPU device `driver`: `Some(None)` for nvidia
/// (the system's `gpu_resource_name`), `Some(Some(name))` for another vendor's device
/// plugin, None for a driver without a known resource.
fn driver_resource(driver: &str) -> Option<Option<String>> {
    match driver.to_ascii_lowercase().as_str() {
        "nvidia" => Some(None),
        "amd" => Some(Some("amd.com/gpu".into())),
        "intel" => Some(Some("gpu.intel.com/i915".into())),
        _ => None,
    }
}

/// The GPUs of `deploy.resources.reservations.devices`: the first entry whose
/// `capabilities` hold `gpu` (`count` a number or `all`, `device_ids`, `driver`); the
/// other entries are warnings. None without such an entry.
pub fn gpu_devices(
    service: &str,
    reservations: Option<&Value>,
    warnings: &mut Warnings,
) -> Result<Option<super::GpuDevices>> {
    const KEY: &str = "deploy.resources.reservations.devices";
    let devices = match reservations.and_then(|r| r.get("devices")) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if items.len() <= 64 => items,
        Some(other) => {
            return Err(Error::input(format!(
                "service '{service}': {KEY} must be a list of at most 64 device requests, got {}",
                echo_value(other)
            ))
            .at(format!("system.services.{service}.{KEY}")))
        }
    };
    let bad = |i: usize, field: &str, why: String| {
        Error::input(format!("service '{service}': {KEY}[{i}].{field} {why}"))
            .at(format!("system.services.{service}.{KEY}"))
    };
    let mut found: Option<super::GpuDevices> = None;
    for (i, entry) in devices.iter().enumerate() {
        let m = entry.as_object().ok_or_else(|| {
            Error::input(format!(
                "service '{service}': {KEY}[{i}] must be a mapping (capabilities, count, device_ids, driver), got {}",
                echo_value(entry)
            ))
            .at(format!("system.services.{service}.{KEY}"))
        })?;
        let capabilities: Vec<String> = match m.get("capabilities") {
            Some(Value::Array(caps)) => caps.iter().map(py_str).collect(),
            other => {
                return Err(bad(
                    i,
                    "capabilities",
                    format!(
                        "must be a list such as [gpu], got {}",
                        echo_value(other.unwrap_or(&Value::Null))
                    ),
                ))
            }
        };
        if !capabilities.iter().any(|c| c == "gpu") {
            warnings.push(
                service,
                KEY,
                format!(
                    "entry {} is not converted: only GPUs (capabilities: [gpu]) are",
                    echo_value(entry)
                ),
            );
            continue;
        }
        if found.is_some() {
            warnings.push(
                service,
                KEY,
                format!(
                    "entry {} is not converted: only the first GPU request is",
                    echo_value(entry)
                ),
            );
            continue;
        }
        for key in m.keys() {
            if !["capabilities", "count", "device_ids", "driver", "options"].contains(&key.as_str())
            {
                warnings.push(
                    service,
                    &format!("{KEY}.{key}"),
                    "is ignored: it is not a compose device request key (a typo?)",
                );
            }
        }
        if m.get("options").is_some_and(|o| !o.is_null()) {
            warnings.push(
                service,
                &format!("{KEY}.options"),
                "is ignored: driver options are not converted",
            );
        }
        let count = match m.get("count") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s == "all" => None,
            Some(v) => match v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            {
                Some(n) if (1..=1024).contains(&n) => Some(n),
                _ => {
                    return Err(bad(
                        i,
                        "count",
                        format!(
                            "{} must be a whole number from 1 to 1024 or \"all\"",
                            echo_value(v)
                        ),
                    ))
                }
            },
        };
        let device_ids: Vec<String> = match m.get("device_ids") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) if ids.len() <= 1024 => ids
                .iter()
                .map(|id| match id {
                    Value::String(s) if !s.is_empty() && s.len() <= 200 => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(bad(
                        i,
                        "device_ids",
                        format!("entry {} must be a device id", echo_value(other)),
                    )),
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(bad(
                    i,
                    "device_ids",
                    format!("must be a list of device ids, got {}", echo_value(other)),
                ))
            }
        };
        if count.is_some() && !device_ids.is_empty() {
            return Err(bad(
                i,
                "count",
                "and device_ids exclude each other (compose specification)".into(),
            ));
        }
        let driver = match m.get("driver") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 200 => Some(s.clone()),
            Some(other) => {
                return Err(bad(
                    i,
                    "driver",
                    format!("must be a driver name, got {}", echo_value(other)),
                ))
            }
        };
        found = Some(super::GpuDevices {
            count,
            device_ids,
            driver,
        });
    }
    Ok(found)
}

/// The container side of a compose port ("8888", "8080:8888", "127.0.0.1:80:8888/tcp").
/// A port entry's container side (as [`container_port`]) and its protocol.
pub(super) fn port_entry(
    service: &str,
    field: &str,
    raw: &Value,
    warnings: &mut Warnings,
) -> Result<Port> {
    let port = container_port(service, field, raw)?;
    let protocol = match raw.as_str().and_then(|s| s.split_once('/')) {
        None => None,
        Some((_, proto)) => match proto.to_ascii_lowercase().as_str() {
            "tcp" => Some("TCP".to_string()),
            "udp" => Some("UDP".to_string()),
            "sctp" => Some("SCTP".to_string()),
            _ => {
                warnings.push(
                    service,
                    field,
                    format!(
                        "protocol of {} is ignored: Kubernetes knows tcp, udp and sctp (TCP is used)",
                        echo_value(raw)
                    ),
                );
                None
            }
        },
    };
    Ok(Port {
        containerPort: port,
        protocol,
    })
}

/// The container side of a port entry.
pub(super) fn container_port(service: &str, field: &str, raw: &Value) -> Result<Value> {
    let bad = || {
        Error::input(format!("service '{service}': {field} entry {} is not a valid port (expected \"[host:]container\" with a port 1-65535)", echo_value(raw))).at(format!("system.services.{service}.{field}"))
    };
    match raw {
        Value::Number(n) => match n.as_u64() {
            Some(p) if (1..=65535).contains(&p) => Ok(raw.clone()),
            _ => Err(bad()),
        },
        Value::String(s) => {
            let last = s.rsplit(':').next().unwrap_or(s);
            let port = last.split_once('/').map(|(p, _)| p).unwrap_or(last);
            match port.parse::<u32>() {
                Ok(p) if (1..=65535).contains(&p) && port.bytes().all(|c| c.is_ascii_digit()) => {
                    Ok(Value::String(port.to_string()))
                }
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

pub(super) fn limits(
    service: &str,
    field: &str,
    v: Option<&Value>,
    warnings: &mut Warnings,
) -> Result<Limits> {
    let mut out = Limits::default();
    let map = match v {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(m)) => m,
        // The original takes the first element of a limits list ("not sure why this is
        // a list"); reservations have no such rule.
        Some(Value::Array(items))
            if field == "limits" && matches!(items.first(), Some(Value::Object(_))) =>
        {
            warnings.push(
                service,
                "deploy.resources.limits",
                format!(
                    "is a list: its first element {} is used",
                    echo_value(&items[0])
                ),
            );
            match items.first() {
                Some(Value::Object(m)) => m,
                _ => return Ok(out), // not reached: the guard checked it
            }
        }
        Some(other) => {
            return Err(Error::input(format!(
                "service '{service}': deploy.resources.{field} must be a mapping, got {other}"
            )))
        }
    };
    for (k, val) in map {
        // An empty value means "not set" (the original skipped only an empty ephemeralStorage).
        let val = if val.as_str() == Some("") {
            &Value::Null
        } else {
            val
        };
        match k.as_str() {
            "cpus" => out.cpus = val.clone(),
            "gpus" => out.gpus = val.clone(),
            "memory" => out.memory = val.clone(),
            "ephemeralStorage" => out.ephemeralStorage = val.clone(),
            // GPUs in compose's device form: read by `gpu_devices`.
            "devices" if field == "reservations" => {}
            other => {
                return Err(Error::input(format!(
                    "service '{service}': deploy.resources.{field}.{other} is not supported (use cpus, gpus, memory, ephemeralStorage)"
                )))
            }
        }
    }
    for (key, val) in [
        ("cpus", &out.cpus),
        ("memory", &out.memory),
        ("ephemeralStorage", &out.ephemeralStorage),
    ] {
        if !val.is_null() && !names::is_quantity(&py_str(val)) {
            return Err(Error::input(format!("service '{service}': deploy.resources.{field}.{key} {} is not a Kubernetes quantity", echo_value(val))).at(format!("system.services.{service}.deploy.resources.{field}.{key}")));
        }
    }
    if !out.gpus.is_null()
        && out.gpus.as_u64().is_none()
        && py_str(&out.gpus).parse::<u64>().is_err()
    {
        return Err(Error::input(format!(
            "service '{service}': deploy.resources.{field}.gpus {} is not a whole number",
            out.gpus
        )));
    }
    Ok(out)
}

pub(super) fn probe(service: &str, field: &str, v: Option<&Value>) -> Result<Option<Probe>> {
    let map = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s == "none" => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(Error::input(format!(
                "service '{service}': ext.kube.{field} must be a mapping or \"none\", got {other}"
            )))
        }
    };
    let mut p = Probe::default();
    let mut http = None;
    let mut tcp = None;
    for (k, val) in map {
        match k.as_str() {
            "cmd" => p.cmd = val.clone(),
            "delay" => p.delay = val.clone(),
            "period" => p.period = val.clone(),
            "threshold" => p.threshold = val.clone(),
            "httpGet" => http = Some(val),
            "tcpSocket" => tcp = Some(val),
            other => {
                return Err(Error::input(format!(
                    "service '{service}': ext.kube.{field}.{other} is not supported (use cmd, httpGet, tcpSocket, delay, period, threshold)"
                )))
            }
        }
    }
    if let Value::String(s) = &p.cmd {
        p.cmd = Value::Array(
            s.split_whitespace()
                .map(|a| Value::String(a.into()))
                .collect(),
        );
    }
    if let Some(h) = http.filter(|h| !h.is_null()) {
        let h = h.as_object().ok_or_else(|| {
            Error::input(format!(
                "service '{service}': ext.kube.{field}.httpGet must be a mapping"
            ))
        })?;
        p.path = Some(h.get("path").cloned().unwrap_or(json!("/")));
        p.port = Some(h.get("port").cloned().unwrap_or(json!(80)));
        p.httpHeaders = Some(h.get("httpHeaders").cloned().unwrap_or(Value::Null));
    } else if let Some(t) = tcp.filter(|t| !t.is_null()) {
        let t = t.as_object().ok_or_else(|| {
            Error::input(format!(
                "service '{service}': ext.kube.{field}.tcpSocket must be a mapping"
            ))
        })?;
        p.port = Some(t.get("port").cloned().unwrap_or(Value::Null));
    }
    Ok(Some(p))
}

pub(super) fn env_pairs(service: &str, v: Option<&Value>) -> Result<Vec<Vec<String>>> {
    let pair = |entry: &str| -> Vec<String> {
        match entry.split_once('=') {
            Some((k, v)) => vec![k.to_string(), v.to_string()],
            None => vec![entry.to_string(), String::new()],
        }
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.iter().map(|i| pair(&py_str(i))).collect()),
        Some(Value::Object(m)) => Ok(m
            .iter()
            .map(|(k, v)| {
                vec![
                    k.clone(),
                    if v.is_null() {
                        String::new()
                    } else {
                        py_str(v)
                    },
                ]
            })
            .collect()),
        Some(other) => Err(Error::input(format!(
            "service '{service}': environment must be a list of NAME=value or a mapping, got {}",
            echo_value(other)
        ))),
    }
}

/// Largest `env_file` the CLI reads (1 MiB).
const ENV_FILE_LIMIT: u64 = 1 << 20;

/// Reads each service's `env_file` (paths relative to `base`, the compose file's
/// directory) into its `environment` (whose entries win), and removes `env_file`:
/// the CLI's part of the conversion. Through the library there is no file to read
/// relative to, and the model warns about the key instead.
pub fn inline_env_files(compose: &mut Value, base: &std::path::Path) -> Result<()> {
    let Some(services) = compose.get_mut("services").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for (name, spec) in services.iter_mut() {
        let Some(spec) = spec.as_object_mut() else {
            continue;
        };
        let Some(files) = spec.shift_remove("env_file") else {
            continue;
        };
        let paths: Vec<(String, bool)> = match &files {
            Value::Null => Vec::new(),
            Value::String(s) => vec![(s.clone(), true)],
            Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok((s.clone(), true)),
                    Value::Object(m) => Ok((
                        m.get("path").map(py_str).unwrap_or_default(),
                        m.get("required") != Some(&Value::Bool(false)),
                    )),
                    other => Err(Error::input(format!(
                        "service '{name}': env_file entry {} must be a path",
                        echo_value(other)
                    ))),
                })
                .collect::<Result<_>>()?,
            other => {
                return Err(Error::input(format!(
                    "service '{name}': field 'env_file' must be a path or a list of paths, got {}",
                    echo_value(other)
                )))
            }
        };
        let mut merged = Map::new();
        for (path, required) in paths {
            let full = base.join(&path);
            let text = match std::fs::metadata(&full) {
                Ok(m) if m.len() > ENV_FILE_LIMIT => {
                    return Err(Error::input(format!(
                        "service '{name}': env_file {} is larger than 1 MiB",
                        echo(&path)
                    )))
                }
                Ok(_) => std::fs::read_to_string(&full).map_err(|e| {
                    Error::input(format!("service '{name}': env_file {}: {e}", echo(&path)))
                })?,
                Err(_) if !required => continue,
                Err(e) => {
                    return Err(Error::input(format!(
                        "service '{name}': env_file {}: {e}",
                        echo(&path)
                    )))
                }
            };
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let line = line.strip_prefix("export ").unwrap_or(line);
                let (k, v) = line.split_once('=').unwrap_or((line, ""));
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                    .unwrap_or(v);
                merged.insert(k.trim().to_string(), Value::String(v.to_string()));
            }
        }
        let given = spec.get("environment").cloned();
        let pairs = env_pairs(name, given.as_ref())?;
        for pair in pairs {
            merged.insert(pair[0].clone(), Value::String(pair[1].clone()));
        }
        if !merged.is_empty() {
            spec.insert("environment".into(), Value::Object(merged));
        }
    }
    Ok(())
}
