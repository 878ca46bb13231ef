//! Default resource limits of containers whose compose service sets none
//! (`deploy.resources.limits.cpus` / `.memory`), on both backplanes.
//!
//! | limit | variable | `tycho.compute.system.default_limits.` | Docker | Kubernetes |
//! | --- | --- | --- | --- | --- |
//! | CPUs | `TYCHO_APP_DEFAULT_CPUS` | `cpus` | `2` | none |
//! | memory | `TYCHO_APP_DEFAULT_MEMORY` | `memory` | `4Gi` | none |
//! | processes | `TYCHO_APP_DEFAULT_PIDS` | `pids` | `4096` | (the kubelet's `podPidsLimit`) |
//!
//! The variable wins over the configuration; `none` turns a default off. Values are
//! Kubernetes quantities (`0.5`, `500m`, `512Mi`, `4G`), so one setting means the same
//! on both backplanes.
//!
//! * Docker: the built-in defaults above apply unless set otherwise (a container on a
//!   developer's machine is otherwise unbounded).
//! * Kubernetes: only a value that is set applies (with none set, the pod spec is the
//!   original's: it wrote no limit for such a container). A pod has no per-container
//!   process limit, so `pids` does not apply there. When a container has a reservation
//!   above the default, the reservation is its limit (a limit below the request is
//!   invalid on both backplanes).

use crate::environment::resources::DefaultLimitsEnv;
use crate::error::{Error, Result};
use crate::exec::docker::{cpus_to_nano, memory_to_bytes};
use crate::model::System;
use serde_json::{Map, Value};

/// Built-in CPU limit of a Docker container without one.
pub const DOCKER_CPUS: &str = "2";
/// Built-in memory limit of a Docker container without one.
pub const DOCKER_MEMORY: &str = "4Gi";
/// Built-in process limit of a Docker container.
pub const DOCKER_PIDS: i64 = 4096;

/// The default limits of one backplane (None: no default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultLimits {
    /// CPUs, a Kubernetes quantity.
    pub cpus: Option<String>,
    /// Memory, a Kubernetes quantity.
    pub memory: Option<String>,
    /// Most processes (threads) in a container (Docker only).
    pub pids: Option<i64>,
}

/// A setting's value from the environment, else the configuration, with its source.
fn raw(config: &Value, env: &Option<String>, var: &str, key: &str) -> Option<(String, String)> {
    if let Some(v) = env {
        return Some((v.clone(), var.to_string()));
    }
    let source = format!("tycho.compute.system.default_limits.{key}");
    match crate::config::lookup(config, &["tycho", "compute", "system", "default_limits"])
        .and_then(|d| d.get(key))
    {
        Some(Value::String(s)) if !s.trim().is_empty() => Some((s.trim().to_string(), source)),
        Some(Value::Number(n)) => Some((n.to_string(), source)),
        // YAML 1.1 reads a bare `off` / `no` as false.
        Some(Value::Bool(false)) => Some(("none".into(), source)),
        Some(Value::Null) | None => None,
        Some(other) => Some((other.to_string(), source)),
    }
}

fn shown(s: &str) -> String {
    s.chars().take(crate::limits::ECHO_LIMIT).collect()
}

fn is_none(s: &str) -> bool {
    s.eq_ignore_ascii_case("none")
}

impl DefaultLimits {
    /// The Docker backplane's defaults: the settings, else the built-in ones.
    pub fn for_docker(config: &Value, env: &DefaultLimitsEnv) -> Result<DefaultLimits> {
        Self::read(config, env, true)
    }

    /// The Kubernetes backplane's defaults: only what is set (see the module documentation).
    pub fn for_kubernetes(config: &Value, env: &DefaultLimitsEnv) -> Result<DefaultLimits> {
        let mut limits = Self::read(config, env, false)?;
        limits.pids = None;
        Ok(limits)
    }

    /// True when no default applies.
    pub fn is_empty(&self) -> bool {
        self.cpus.is_none() && self.memory.is_none() && self.pids.is_none()
    }

    fn read(config: &Value, env: &DefaultLimitsEnv, builtin: bool) -> Result<DefaultLimits> {
        let quantity = |value: Option<(String, String)>,
                        fallback: &str,
                        check: fn(&Value) -> std::result::Result<i64, String>|
         -> Result<Option<String>> {
            match value {
                None => Ok(builtin.then(|| fallback.to_string())),
                Some((v, _)) if is_none(&v) => Ok(None),
                Some((v, source)) => {
                    let parsed = check(&Value::String(v.clone()));
                    if !crate::text::names::is_quantity(&v) || parsed.is_err() {
                        let why = parsed.err().unwrap_or_else(|| {
                            format!("{:?} is not a Kubernetes quantity", shown(&v))
                        });
                        return Err(Error::config(format!("{source}: {why} (or none)")));
                    }
                    Ok(Some(v))
                }
            }
        };
        let cpus = quantity(
            raw(config, &env.cpus, "TYCHO_APP_DEFAULT_CPUS", "cpus"),
            DOCKER_CPUS,
            cpus_to_nano,
        )?;
        let memory = quantity(
            raw(config, &env.memory, "TYCHO_APP_DEFAULT_MEMORY", "memory"),
            DOCKER_MEMORY,
            memory_to_bytes,
        )?;
        let pids = match raw(config, &env.pids, "TYCHO_APP_DEFAULT_PIDS", "pids") {
            None => builtin.then_some(DOCKER_PIDS),
            Some((v, _)) if is_none(&v) => None,
            Some((v, source)) => match v.parse::<i64>() {
                Ok(n) if (1..=4_194_304).contains(&n) => Some(n),
                _ => {
                    return Err(Error::config(format!(
                        "{source}: {:?} is not a process count from 1 to 4194304 (or none)",
                        shown(&v)
                    )))
                }
            },
        };
        Ok(DefaultLimits { cpus, memory, pids })
    }

    /// The CPU limit of a container that sets none, in billionths of a CPU.
    pub fn nano_cpus(&self) -> Option<i64> {
        self.cpus
            .as_ref()
            .and_then(|c| cpus_to_nano(&Value::String(c.clone())).ok())
    }

    /// The memory limit of a container that sets none, in bytes, raised to its memory
    /// reservation (`reserved`, bytes) when that is larger.
    pub fn memory_bytes(&self, reserved: Option<i64>) -> Option<i64> {
        let default = self
            .memory
            .as_ref()
            .and_then(|m| memory_to_bytes(&Value::String(m.clone())).ok())?;
        Some(default.max(reserved.unwrap_or(0)))
    }

    /// Writes the default CPU and memory limits into the pod of `deployment` for every
    /// container whose limits leave them out. A limit the compose file gives but the
    /// template did not write (the original's pod.yaml writes memory only with cpu) is
    /// written as given; a reservation above the default becomes the limit.
    pub fn apply_to_deployment(&self, system: &System, deployment: &mut Value) {
        if self.cpus.is_none() && self.memory.is_none() {
            return;
        }
        let Some(containers) = deployment
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        for pod_container in containers {
            let Some(spec) = pod_container.as_object_mut() else {
                continue;
            };
            let name = spec.get("name").and_then(Value::as_str).unwrap_or_default();
            let model = system.containers.iter().find(|c| c.name == name);
            let resources = spec
                .entry("resources")
                .or_insert_with(|| Value::Object(Map::new()));
            let Some(resources) = resources.as_object_mut() else {
                continue;
            };
            let requested = |key: &str| {
                resources
                    .get("requests")
                    .and_then(|r| r.get(key))
                    .filter(|v| !v.is_null())
                    .cloned()
            };
            let request_cpu = requested("cpu");
            let request_memory = requested("memory");
            let limits = resources
                .entry("limits")
                .or_insert_with(|| Value::Object(Map::new()));
            let Some(limits) = limits.as_object_mut() else {
                continue;
            };
            let given = |f: fn(&crate::model::Limits) -> &Value| {
                model
                    .map(|c| f(&c.limits))
                    .filter(|v| !v.is_null())
                    .cloned()
            };
            for (key, default, compose, request, amount) in [
                (
                    "cpu",
                    &self.cpus,
                    given(|l| &l.cpus),
                    request_cpu,
                    cpus_to_nano as fn(&Value) -> std::result::Result<i64, String>,
                ),
                (
                    "memory",
                    &self.memory,
                    given(|l| &l.memory),
                    request_memory,
                    memory_to_bytes,
                ),
            ] {
                let Some(default) = default else { continue };
                if limits.get(key).is_some_and(|v| !v.is_null()) {
                    continue;
                }
                let value = match (compose, request) {
                    (Some(given), _) => Value::String(crate::text::pyfmt::py_str(&given)),
                    (None, Some(request))
                        if amount(&request).ok() > amount(&Value::String(default.clone())).ok() =>
                    {
                        Value::String(crate::text::pyfmt::py_str(&request))
                    }
                    _ => Value::String(default.clone()),
                };
                limits.insert(key.to_string(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(cpus: Option<&str>, memory: Option<&str>, pids: Option<&str>) -> DefaultLimitsEnv {
        DefaultLimitsEnv {
            cpus: cpus.map(String::from),
            memory: memory.map(String::from),
            pids: pids.map(String::from),
        }
    }

    #[test]
    fn docker_has_built_in_defaults_and_kubernetes_none() {
        let config = json!({});
        let docker = DefaultLimits::for_docker(&config, &env(None, None, None)).unwrap();
        assert_eq!(docker.cpus.as_deref(), Some("2"));
        assert_eq!(docker.memory.as_deref(), Some("4Gi"));
        assert_eq!(docker.pids, Some(4096));
        assert_eq!(docker.nano_cpus(), Some(2_000_000_000));
        assert_eq!(docker.memory_bytes(None), Some(4 << 30));
        assert_eq!(docker.memory_bytes(Some(8 << 30)), Some(8 << 30));
        let kube = DefaultLimits::for_kubernetes(&config, &env(None, None, None)).unwrap();
        assert!(kube.is_empty());
    }

    #[test]
    fn environment_wins_over_configuration_and_none_turns_off() {
        let config = json!({"tycho": {"compute": {"system": {"default_limits": {
            "cpus": 0.5, "memory": "1Gi", "pids": 100}}}}});
        let d =
            DefaultLimits::for_docker(&config, &env(None, Some("512Mi"), Some("none"))).unwrap();
        assert_eq!(d.cpus.as_deref(), Some("0.5"));
        assert_eq!(d.memory.as_deref(), Some("512Mi"));
        assert_eq!(d.pids, None);
        let k = DefaultLimits::for_kubernetes(&config, &env(Some("NONE"), None, None)).unwrap();
        assert_eq!(
            k,
            DefaultLimits {
                cpus: None,
                memory: Some("1Gi".into()),
                pids: None
            }
        );
        let off = json!({"tycho": {"compute": {"system": {"default_limits": {"memory": false}}}}});
        let d = DefaultLimits::for_docker(&off, &env(None, None, None)).unwrap();
        assert_eq!(d.memory, None);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let config = json!({});
        let e = DefaultLimits::for_docker(&config, &env(Some("lots"), None, None)).unwrap_err();
        assert!(
            e.message.starts_with("TYCHO_APP_DEFAULT_CPUS: "),
            "{}",
            e.message
        );
        assert!(e.message.contains("\"lots\""), "{}", e.message);
        // A Docker unit is not a Kubernetes quantity: one setting serves both backplanes.
        let e = DefaultLimits::for_docker(&config, &env(None, Some("1g"), None)).unwrap_err();
        assert!(
            e.message.contains("TYCHO_APP_DEFAULT_MEMORY"),
            "{}",
            e.message
        );
        let e = DefaultLimits::for_docker(&config, &env(None, None, Some("0"))).unwrap_err();
        assert!(e.message.contains("process count"), "{}", e.message);
        let bad = json!({"tycho": {"compute": {"system": {"default_limits": {"pids": "many"}}}}});
        let e = DefaultLimits::for_docker(&bad, &env(None, None, None)).unwrap_err();
        assert!(
            e.message
                .starts_with("tycho.compute.system.default_limits.pids: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn kubernetes_pods_get_the_defaults_where_limits_are_missing() {
        let request = json!({
            "name": "app",
            "principal": "{\"username\": \"jdoe\"}",
            "serviceaccount": "default",
            "system": {"version": "3", "services": {
                "bare": {"image": "img:1"},
                "sized": {"image": "img:1", "deploy": {"resources": {"limits": {"cpus": "1", "memory": "1Gi"}}}},
                "memonly": {"image": "img:1", "deploy": {"resources": {"limits": {"memory": "3Gi"}}}},
                "big": {"image": "img:1", "deploy": {"resources": {"reservations": {"cpus": "4", "memory": "8Gi"}}}},
            }},
            "services": {},
        });
        let system = crate::compile::parse_system(
            crate::config::default_config(),
            &request,
            Some("a".repeat(32)),
        )
        .unwrap();
        let mut deployment = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "bare"},
            {"name": "sized", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "memonly"},
            {"name": "big", "resources": {"requests": {"cpu": "4", "memory": "8Gi"}}},
        ]}}}});
        let limits = DefaultLimits {
            cpus: Some("2".into()),
            memory: Some("4Gi".into()),
            pids: None,
        };
        limits.apply_to_deployment(&system, &mut deployment);
        let of = |i: usize| {
            deployment["spec"]["template"]["spec"]["containers"][i]["resources"]["limits"].clone()
        };
        assert_eq!(of(0), json!({"cpu": "2", "memory": "4Gi"}));
        assert_eq!(of(1), json!({"cpu": "1", "memory": "1Gi"}));
        assert_eq!(of(2), json!({"cpu": "2", "memory": "3Gi"}));
        assert_eq!(of(3), json!({"cpu": "4", "memory": "8Gi"}));

        // No default: the pod is left as rendered.
        let mut untouched =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "bare"}]}}}});
        DefaultLimits::default().apply_to_deployment(&system, &mut untouched);
        assert_eq!(
            untouched,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "bare"}]}}}})
        );
    }
}
