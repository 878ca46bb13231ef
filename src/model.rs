//! The system model: a start request (name, principal, compose document, settings and
//! services) parsed into a [`System`] of [`Container`]s, with tycho-api 1.17.3's semantics
//! for every compose field and environment switch. Field names follow the original's
//! attributes, so templates written for it find what they read.

use crate::error::{Error, Result};
use crate::names;
use crate::pyfmt::py_str;
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Log target (Python logger) of the model's warnings about odd but accepted input.
pub const LOG_TARGET: &str = "tycho.model";

use crate::limits::{echo, echo_value};

/// Python's truth value of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

fn env_or(key: &str, default: &str) -> String {
    env(key).unwrap_or_else(|| default.to_string())
}

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
}

/// A port entry: `{"containerPort": ...}`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[allow(non_snake_case)]
pub struct Port {
    /// The container port as written (a string like "8888" or a number).
    pub containerPort: Value,
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
    /// Compose fields only the Docker backplane uses (`command`, `working_dir`, `user`,
    /// host ports); left out of the plain model when none is set.
    #[serde(default, skip_serializing_if = "ComposeExtras::is_empty")]
    pub compose: ComposeExtras,
}

/// Compose fields the Kubernetes templates ignore (as the original does) and the Docker
/// backplane maps (`crate::docker`).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ComposeExtras {
    /// `command`: the arguments after the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// `working_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `user` (`uid[:gid]` or a name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Host side of each `ports` entry (`"8080:80"` → 8080), null where none is written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_ports: Vec<Option<u16>>,
}

impl ComposeExtras {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.command.is_none()
            && self.working_dir.is_none()
            && self.user.is_none()
            && self.host_ports.iter().all(Option::is_none)
    }

    /// Reads the fields from a compose service.
    fn parse(service: &str, spec: &Map<String, Value>) -> Result<Self> {
        let text = |field: &str| -> Result<Option<String>> {
            match spec.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(other) => Err(Error::input(format!(
                    "service '{service}': field '{field}' must be a string, got {}",
                    echo(&other.to_string())
                ))
                .at(format!("system.services.{service}.{field}"))),
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
                ))
                .at(format!("system.services.{service}.command")))
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
        Ok(ComposeExtras {
            command,
            working_dir: text("working_dir")?,
            user: text("user")?,
            host_ports,
        })
    }
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
    /// TYCHO_APP_GPU_RESOURCE_NAME.
    pub gpu_resource_name: String,
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
}

/// A start request (`POST /system/start` body).
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// App name.
    pub name: String,
    /// Principal (parsed from its JSON string).
    pub principal: Map<String, Value>,
    /// Service account (null when not given explicitly as a string).
    pub serviceaccount: Value,
    /// Settings (`.env`), or None when the request sets it to null.
    pub env: Option<Map<String, Value>>,
    /// The compose document.
    pub system: Value,
    /// Services: container name → {port, clients}.
    pub services: Map<String, Value>,
}

impl StartRequest {
    /// Reads a request object, naming the field at fault on error.
    pub fn from_json(request: &Value) -> Result<Self> {
        let obj = request
            .as_object()
            .ok_or_else(|| Error::input("start request must be a JSON object"))?;
        let name = match obj.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'name' must be a string, got {other}"
                ))
                .at("name"))
            }
            None => return Err(Error::input("request field 'name' is required").at("name")),
        };
        let principal = match obj.get("principal") {
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(Error::input(
                        "request field 'principal' must be a JSON object encoded as a string",
                    )
                    .at("principal"))
                }
                Err(e) => {
                    return Err(Error::input(format!(
                        "request field 'principal' is not valid JSON: {e}"
                    ))
                    .at("principal"))
                }
            },
            Some(Value::Object(m)) => m.clone(),
            Some(Value::Null) | None => return Err(Error::input(
                "request field 'principal' is required (a JSON string with at least a username)",
            )
            .at("principal")),
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'principal' must be a JSON string, got {other}"
                ))
                .at("principal"))
            }
        };
        let serviceaccount = match obj.get("serviceaccount") {
            None => Value::String("default".into()),
            Some(v @ (Value::String(_) | Value::Null)) => v.clone(),
            // The original's template tests the value's truth: a false one means none.
            Some(v) if !truthy(v) => {
                log::warn!(target: LOG_TARGET, "request field 'serviceaccount' is {v}, not a string: no service account is used");
                Value::Null
            }
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'serviceaccount' must be a string, got {other}"
                ))
                .at("serviceaccount"))
            }
        };
        let env = match obj.get("env") {
            None => Some(Map::new()),
            Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'env' must be an object of settings, got {other}"
                ))
                .at("env"))
            }
        };
        let system = match obj.get("system") {
            Some(v @ Value::Object(_)) => v.clone(),
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'system' must be a compose document (object), got {other}"
                ))
                .at("system"))
            }
            None => {
                return Err(Error::input(
                    "request field 'system' (the compose document) is required",
                )
                .at("system"))
            }
        };
        let services = match obj.get("services") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'services' must be an object, got {other}"
                ))
                .at("services"))
            }
        };
        Ok(StartRequest {
            name,
            principal,
            serviceaccount,
            env,
            system,
            services,
        })
    }
}

/// Renders a single string as a template with `context` (the compose templating pass).
pub type StringRenderer<'a> = dyn Fn(&str, &Value) -> Result<String> + 'a;

fn has_template_syntax(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Renders every string (keys too) of `v` with `context` and sorts mappings by key,
/// which is what the original's dump → render → load round trip amounts to, without
/// letting a rendered value turn into YAML structure.
fn template_pass(v: &Value, context: &Value, render: &StringRenderer<'_>) -> Result<Value> {
    template_pass_at(v, context, render, &mut Vec::new())
}

/// The compose field path (`services.web.image`) of the value being rendered.
fn field_path(path: &[String]) -> String {
    crate::limits::echo(&path.join("."))
}

fn template_pass_at(
    v: &Value,
    context: &Value,
    render: &StringRenderer<'_>,
    path: &mut Vec<String>,
) -> Result<Value> {
    let named = |e: Error, path: &[String]| {
        e.prefixed(format!("compose field '{}'", field_path(path)))
            .at_if_unset(format!("system.{}", field_path(path)))
    };
    Ok(match v {
        Value::String(s) if has_template_syntax(s) => {
            Value::String(render(s, context).map_err(|e| named(e, path))?)
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                let r = template_pass_at(item, context, render, path);
                path.pop();
                out.push(r?);
            }
            Value::Array(out)
        }
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = Vec::with_capacity(map.len());
            for (k, item) in map {
                path.push(k.clone());
                let key = if has_template_syntax(k) {
                    render(k, context).map_err(|e| named(e, path))
                } else {
                    Ok(k.clone())
                };
                let r =
                    key.and_then(|key| Ok((key, template_pass_at(item, context, render, path)?)));
                path.pop();
                entries.push(r?);
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        other => other.clone(),
    })
}

/// The container side of a compose port ("8888", "8080:8888", "127.0.0.1:80:8888/tcp").
fn container_port(service: &str, field: &str, raw: &Value) -> Result<Value> {
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

fn limits(service: &str, field: &str, v: Option<&Value>) -> Result<Limits> {
    let mut out = Limits::default();
    let map = match v {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(m)) => m,
        // The original takes the first element of a limits list ("not sure why this is
        // a list"); reservations have no such rule.
        Some(Value::Array(items))
            if field == "limits" && matches!(items.first(), Some(Value::Object(_))) =>
        {
            log::warn!(target: LOG_TARGET, "service '{service}': deploy.resources.limits is a list; its first element {} is used", echo_value(&items[0]));
            match items.first() {
                Some(Value::Object(m)) => m,
                _ => return Ok(out), // not reached: the guard checked it
            }
        }
        Some(other) => {
            return Err(Error::input(format!(
                "service '{service}': deploy.resources.{field} must be a mapping, got {other}"
            ))
            .at(format!(
                "system.services.{service}.deploy.resources.{field}"
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
            other => {
                return Err(Error::input(format!(
                    "service '{service}': deploy.resources.{field}.{other} is not supported (use cpus, gpus, memory, ephemeralStorage)"
                )).at(format!("system.services.{service}.deploy.resources.{field}.{other}")))
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
        ))
        .at(format!(
            "system.services.{service}.deploy.resources.{field}.gpus"
        )));
    }
    Ok(out)
}

fn probe(service: &str, field: &str, v: Option<&Value>) -> Result<Option<Probe>> {
    let map = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s == "none" => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(Error::input(format!(
                "service '{service}': ext.kube.{field} must be a mapping or \"none\", got {other}"
            ))
            .at(format!("system.services.{service}.ext.kube.{field}")))
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
                )).at(format!("system.services.{service}.ext.kube.{field}.{other}")))
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
            .at(format!(
                "system.services.{service}.ext.kube.{field}.httpGet"
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
            .at(format!(
                "system.services.{service}.ext.kube.{field}.tcpSocket"
            ))
        })?;
        p.port = Some(t.get("port").cloned().unwrap_or(Value::Null));
    }
    Ok(Some(p))
}

fn env_pairs(service: &str, v: Option<&Value>) -> Result<Vec<Vec<String>>> {
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
        ))
        .at(format!("system.services.{service}.environment"))),
    }
}

/// Parses `pvc://claim[/sub/path]:/mount[:ro|rw]`.
fn parse_volume(service: &str, spec: &str) -> Result<(String, String, String, bool)> {
    let bad = |why: &str| {
        Error::input(format!(
            "service '{service}': volume {spec:?} {why} (expected pvc://<claim>[/<subpath>]:<mount path>[:ro])"
        )).at(format!("system.services.{service}.volumes"))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    if parts[0] != "pvc" || parts.len() < 2 || !parts[1].starts_with("//") {
        return Err(bad("is not a pvc:// volume"));
    }
    let source: Vec<&str> = parts[1][2..].split('/').collect();
    let claim = source[0];
    if !names::is_dns_label(claim, 63) {
        return Err(bad("does not name a valid claim"));
    }
    let subpath = source[1..].join("/");
    let (path, read_only) = match parts.len() {
        3 => (parts[2], false),
        4 if parts[3] == "ro" => (parts[2], true),
        4 if parts[3] == "rw" => (parts[2], false),
        _ => return Err(bad("has no mount path or an unknown mode")),
    };
    if path.is_empty() {
        return Err(bad("has an empty mount path"));
    }
    Ok((claim.to_string(), subpath, path.to_string(), read_only))
}

fn sc_str(sc: &Map<String, Value>, key: &str, env_key: &str) -> Value {
    match sc.get(key) {
        Some(v) => Value::String(py_str(v)),
        None => Value::String(env_or(env_key, "0")),
    }
}

/// Parses a start request into a [`System`], applying the compose templating pass with
/// `render` (one string at a time).
pub fn parse(
    config: &Value,
    req: &StartRequest,
    identifier: String,
    render: &StringRenderer<'_>,
) -> Result<System> {
    let compose = &req.system;
    let registry_sc = match compose.get("security_context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(Error::input(format!(
                "compose field 'security_context' must be a mapping, got {other}"
            ))
            .at("system.security_context"))
        }
    };
    let mut security_context = Map::new();
    security_context.insert(
        "run_as_user".into(),
        sc_str(&registry_sc, "runAsUser", "TYCHO_APP_RUN_AS_USER"),
    );
    security_context.insert(
        "run_as_group".into(),
        sc_str(&registry_sc, "runAsGroup", "TYCHO_APP_RUN_AS_GROUP"),
    );
    security_context.insert(
        "fs_group".into(),
        sc_str(&registry_sc, "fsGroup", "TYCHO_APP_FS_GROUP"),
    );
    let mut init_security_context = Map::new();
    init_security_context.insert(
        "run_as_user".into(),
        sc_str(&registry_sc, "initRunAsUser", "INIT_SC_RUN_AS_USER"),
    );
    init_security_context.insert(
        "run_as_group".into(),
        sc_str(&registry_sc, "initRunAsGroup", "INIT_SC_RUN_AS_GROUP"),
    );

    let username = match req.principal.get("username") {
        Some(Value::String(u)) if !u.is_empty() => u.clone(),
        _ => {
            return Err(Error::input(
                "principal field 'username' is required and must be a non-empty string",
            )
            .at("principal.username"))
        }
    };
    names::check_label_value("principal username", &username)?;
    if !names::is_dns_label(&req.name, 30) {
        return Err(Error::input(format!(
            "system name {:?} is not valid: use at most 30 lowercase letters, digits and '-', starting and ending with a letter or digit (it becomes part of DNS names and labels)",
            req.name
        )).at("name"));
    }

    let services_in = compose
        .get("services")
        .ok_or_else(|| Error::input("compose document has no 'services'").at("system.services"))?;
    if !services_in.is_object() {
        return Err(Error::input(
            "compose field 'services' must be a mapping of service name to definition",
        )
        .at("system.services"));
    }
    if let Some(env) = &req.env {
        let mut ctx = env.clone();
        ctx.insert("identifier".into(), Value::String(identifier.clone()));
        ctx.insert("username".into(), Value::String(username.clone()));
        let mut system_port = None;
        for (cname, spec) in services_in.as_object().into_iter().flatten() {
            ctx.insert("system_name".into(), Value::String(cname.clone()));
            if let Some(first) = spec
                .get("ports")
                .and_then(Value::as_array)
                .and_then(|p| p.first())
            {
                system_port = Some(match first {
                    Value::String(s) => Value::String(
                        s.split(':')
                            .nth(if s.contains(':') { 1 } else { 0 })
                            .unwrap_or(s)
                            .to_string(),
                    ),
                    other => other.clone(),
                });
            }
        }
        ctx.insert("system_port".into(), system_port.unwrap_or(json!(8000)));
        let ctx = Value::Object(ctx);
        let compose = {
            let _pinned = crate::render::PinnedContext::new(&ctx);
            template_pass(compose, &ctx, render)?
        };
        // Settings (with the added keys) are what the registry env is rendered with.
        return build(
            config,
            req,
            compose,
            Some(ctx),
            identifier,
            username,
            security_context,
            init_security_context,
            render,
        );
    }
    build(
        config,
        req,
        compose.clone(),
        None,
        identifier,
        username,
        security_context,
        init_security_context,
        render,
    )
}

#[allow(clippy::too_many_arguments)]
fn build(
    config: &Value,
    req: &StartRequest,
    compose: Value,
    env_ctx: Option<Value>,
    identifier: String,
    username: String,
    security_context: Map<String, Value>,
    init_security_context: Map<String, Value>,
    render: &StringRenderer<'_>,
) -> Result<System> {
    let services = compose
        .get("services")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if services.is_empty() {
        return Err(Error::input("compose document defines no services").at("system.services"));
    }
    let dev_phase_raw = env_or("DEV_PHASE", "prod");
    let default_volumes: Vec<String> =
        crate::config::lookup(config, &["tycho", "compute", "system", "volumes"])
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
    let replacements = [
        ("stdnfs_pvc", env_or("STDNFS_PVC", "stdnfs")),
        ("username", username.clone()),
        ("parent_dir", env_or("PARENT_DIR", "home")),
        ("subpath_dir", env_or("SUBPATH_DIR", &username)),
        ("shared_dir", env_or("SHARED_DIR", "shared")),
    ];
    let create_home_dirs_volumes = env_or("CREATE_HOME_DIRS", "true");

    // Registry env: every setting, rendered with the settings.
    let mut registry_env: Vec<Vec<String>> = Vec::new();
    let _pinned = env_ctx.as_ref().map(crate::render::PinnedContext::new);
    if let Some(Value::Object(ctx)) = &env_ctx {
        for (k, v) in ctx {
            let v = py_str(v);
            let entry = if v.contains("STDNFS_PVC") {
                format!("{k}={}", env("STDNFS_PVC").unwrap_or_else(|| "None".into()))
            } else {
                let text = format!("{k}={v}");
                if has_template_syntax(&text) {
                    render(&text, env_ctx.as_ref().unwrap_or(&Value::Null))?
                } else {
                    text
                }
            };
            registry_env.push(match entry.split_once('=') {
                Some((a, b)) => vec![a.to_string(), b.to_string()],
                None => vec![entry, String::new()],
            });
        }
    }

    let mut containers = Vec::new();
    let mut last_spec = &Value::Null;
    for (cname, spec) in &services {
        last_spec = spec;
        let spec_map = spec.as_object().ok_or_else(|| {
            Error::input(format!("service '{cname}': definition must be a mapping"))
                .at(format!("system.services.{cname}"))
        })?;
        if !names::is_dns_label(cname, 63) {
            return Err(Error::input(format!(
                "service '{cname}': the name must be lowercase letters, digits and '-' (it names a Kubernetes container)"
            )).at(format!("system.services.{cname}")));
        }
        let image = match spec_map.get("image") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(other) => {
                return Err(Error::input(format!(
                    "service '{cname}': field 'image' must be a non-empty string, got {other}"
                ))
                .at(format!("system.services.{cname}.image")))
            }
            None => {
                return Err(
                    Error::input(format!("service '{cname}': field 'image' is required"))
                        .at(format!("system.services.{cname}.image")),
                )
            }
        };
        let command = match spec_map.get("entrypoint") {
            None => Value::Array(vec![]),
            Some(Value::String(s)) => Value::Array(
                s.split_whitespace()
                    .map(|a| Value::String(a.into()))
                    .collect(),
            ),
            Some(Value::Array(items)) => {
                Value::Array(items.iter().map(|i| Value::String(py_str(i))).collect())
            }
            Some(Value::Null) => Value::Null,
            Some(other) => {
                return Err(Error::input(format!(
                    "service '{cname}': field 'entrypoint' must be a string or a list, got {other}"
                ))
                .at(format!("system.services.{cname}.entrypoint")))
            }
        };
        let mut volumes: Vec<String> = match spec_map.get("volumes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(String::from).ok_or_else(|| {
                        Error::input(format!(
                            "service '{cname}': volume {} must be a string",
                            echo_value(v)
                        ))
                        .at(format!("system.services.{cname}.volumes"))
                    })
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(Error::input(format!(
                    "service '{cname}': field 'volumes' must be a list, got {other}"
                ))
                .at(format!("system.services.{cname}.volumes")))
            }
        };
        if dev_phase_raw != "test" {
            for volume in &default_volumes {
                let split: Vec<&str> = volume.split(':').collect();
                if split.len() < 3 {
                    break;
                }
                if create_home_dirs_volumes == "false"
                    && (volume.contains("username") || split[1].contains("shared_dir"))
                {
                    continue;
                }
                if create_home_dirs_volumes == "true"
                    && !split[1].contains("shared_dir")
                    && !split[2].contains("subpath_dir")
                {
                    continue;
                }
                let mut v = volume.clone();
                for (k, val) in &replacements {
                    v = v.replace(k, val);
                }
                volumes.push(v);
            }
        }
        let list = |field: &str| -> Result<Vec<Port>> {
            match spec_map.get(field) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|p| {
                        Ok(Port {
                            containerPort: container_port(cname, field, p)?,
                        })
                    })
                    .collect(),
                Some(other) => Err(Error::input(format!(
                    "service '{cname}': field '{field}' must be a list, got {other}"
                ))
                .at(format!("system.services.{cname}.{field}"))),
            }
        };
        let ports = list("ports")?;
        let expose = list("expose")?;
        let mut env_all = env_pairs(
            cname,
            spec_map
                .get("env")
                .filter(|v| !is_empty(v))
                .or_else(|| spec_map.get("environment")),
        )?;
        env_all.extend(registry_env.iter().cloned());
        for pair in &env_all {
            if pair[0].is_empty() {
                return Err(Error::input(format!(
                    "service '{cname}': environment entry with an empty name"
                ))
                .at(format!("system.services.{cname}.environment")));
            }
        }
        let kube = spec_map.get("ext").and_then(|e| e.get("kube"));
        let resources = spec_map.get("deploy").and_then(|d| d.get("resources"));
        containers.push(Container {
            name: cname.clone(),
            image,
            identity: Value::Null,
            limits: limits(cname, "limits", resources.and_then(|r| r.get("limits")))?,
            requests: limits(
                cname,
                "reservations",
                resources.and_then(|r| r.get("reservations")),
            )?,
            ports,
            expose,
            depends_on: spec_map.get("depends_on").cloned().unwrap_or(json!([])),
            command,
            env: env_all,
            volumes,
            liveness_probe: probe(
                cname,
                "livenessProbe",
                kube.and_then(|k| k.get("livenessProbe")),
            )?,
            readiness_probe: probe(
                cname,
                "readinessProbe",
                kube.and_then(|k| k.get("readinessProbe")),
            )?,
            compose: ComposeExtras::parse(cname, spec_map)?,
        });
    }

    let container_names: std::collections::HashSet<&str> =
        containers.iter().map(|c| c.name.as_str()).collect();
    let mut services_out = IndexMap::new();
    for (sname, def) in &req.services {
        let def = match def {
            Value::Object(m) => m.clone(),
            Value::Null => Map::new(),
            other => {
                return Err(Error::input(format!(
                    "services.{sname} must be an object with port and clients, got {other}"
                ))
                .at(format!("services.{sname}")))
            }
        };
        let clients = match def.get("clients") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|c| {
                    let text = py_str(c);
                    let net = if text.contains('/') { text.parse::<ipnet::IpNet>().ok() } else { text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from) };
                    match net {
                        Some(n) if n.trunc() == n => Ok(n.to_string()),
                        Some(_) => Err(Error::input(format!("services.{sname}.clients: {} has host bits set (did you mean its network address?)", echo_value(&Value::String(text.clone())))).at(format!("services.{sname}.clients"))),
                        None => Err(Error::input(format!("services.{sname}.clients: {} is not a valid IP network (CIDR)", echo_value(&Value::String(text.clone())))).at(format!("services.{sname}.clients"))),
                    }
                })
                .collect::<Result<_>>()?,
            Some(other) => return Err(Error::input(format!("services.{sname}.clients must be a list of CIDRs, got {}", echo_value(other))).at(format!("services.{sname}.clients"))),
        };
        if !container_names.contains(sname.as_str()) {
            // The original keeps such an entry but creates nothing for it.
            let shown: String = sname.chars().take(200).collect();
            log::warn!(target: LOG_TARGET, "services.{shown} names no service of the compose document: ignored");
            continue;
        }
        if sname.len() > 30 || !sname.as_bytes()[0].is_ascii_lowercase() {
            return Err(Error::input(format!(
                "services.{sname}: a service name must start with a letter and have at most 30 characters (it becomes a Kubernetes Service name with the GUID)"
            )).at(format!("services.{sname}")));
        }
        services_out.insert(
            sname.clone(),
            Service {
                port: def.get("port").cloned().unwrap_or(Value::Null),
                clients,
                name: format!("{sname}-{identifier}"),
                name_noid: sname.clone(),
            },
        );
    }

    let mut volumes_out: Vec<Volume> = Vec::new();
    let mut claims: std::collections::HashSet<String> = Default::default();
    for c in &containers {
        for spec in &c.volumes {
            let (claim, subpath, path, read_only) = parse_volume(&c.name, spec)?;
            let pvc_name = if claims.insert(claim.clone()) {
                Some(claim.clone())
            } else {
                None
            };
            volumes_out.push(Volume {
                container_name: c.name.clone(),
                pvc_name,
                volume_name: claim,
                path: Some(path),
                subpath: Some(subpath),
                read_only,
            });
        }
    }

    let last = last_spec.as_object().cloned().unwrap_or_default();
    let mut proxy_rewrite = last
        .get("proxy_rewrite")
        .cloned()
        .unwrap_or(json!({"target": null, "enabled": false}));
    if let Some(rule) = last.get("proxy_rewrite_rule").filter(|v| !v.is_null()) {
        match proxy_rewrite.as_object_mut() {
            Some(m) => {
                m.insert("enabled".into(), rule.clone());
            }
            None => {
                return Err(Error::input(
                    "compose field 'proxy_rewrite' must be a mapping with enabled and target",
                )
                .at("system.proxy_rewrite"))
            }
        }
    }

    let mut system_env = req.principal.clone();
    let mut extra_env = Vec::new();
    if let Some(Value::String(text)) = system_env.get("extra_container_env") {
        // The original passes it on as one env var named extra_container_env (kept in
        // its place among the principal's fields).
        log::warn!(target: LOG_TARGET, "principal field 'extra_container_env' is the string {}, not an object: it becomes one env var named extra_container_env", echo_value(&Value::String(text.clone())));
    } else if let Some(extra) = system_env.shift_remove("extra_container_env") {
        match extra {
            Value::Object(m) => {
                for (k, v) in m {
                    extra_env.push(vec![
                        k,
                        if v.is_null() {
                            String::new()
                        } else {
                            py_str(&v)
                        },
                    ]);
                }
            }
            Value::Null => {}
            other => {
                return Err(Error::input(format!(
                    "principal field 'extra_container_env' must be an object, got {other}"
                ))
                .at("principal.extra_container_env"))
            }
        }
    }
    let security_context = match env("NFSRODS_UID").filter(|s| !s.is_empty()) {
        Some(uid) => {
            let mut m = Map::new();
            m.insert("run_as_user".into(), Value::String(uid));
            m
        }
        None => security_context,
    };
    let defaults_sc = crate::config::lookup(
        config,
        &["tycho", "compute", "system", "defaults", "securityContext"],
    );
    let irods_enabled = env("IROD_HOST").is_some();
    let name = format!("{}-{identifier}", req.name);
    Ok(System {
        system_name: req.name.clone(),
        app_id: req.name.clone(),
        amb: false,
        irods_enabled,
        nfrods_uid: String::new(),
        dev_phase: dev_phase_raw,
        name,
        containers,
        services: services_out,
        volumes: volumes_out,
        system_port: Value::Null,
        ambassador_id: env_or("AMBASSADOR_ID", ""),
        username_all_hyphens: username.replace(['_', '.'], "-"),
        host: system_env.get("host").cloned().unwrap_or(Value::Null),
        system_env,
        annotations: Map::new(),
        namespace: "default".into(),
        serviceaccount: req.serviceaccount.clone(),
        enable_init_container: env_or("TYCHO_APP_ENABLE_INIT_CONTAINER", "true"),
        conn_string: last.get("conn_string").cloned().unwrap_or(json!("")),
        create_home_dirs: env_or("CREATE_HOME_DIRS", "false").to_lowercase(),
        stdnfs_pvc: env_or("STDNFS_PVC", "stdnfs"),
        parent_dir: env_or("PARENT_DIR", "home"),
        subpath_dir: env_or("SUBPATH_DIR", &username),
        shared_dir: env_or("SHARED_DIR", "shared"),
        default_run_as_user: defaults_sc
            .and_then(|d| d.get("uid"))
            .cloned()
            .unwrap_or(json!("1000")),
        default_run_as_group: defaults_sc
            .and_then(|d| d.get("gid"))
            .cloned()
            .unwrap_or(json!("1000")),
        security_context,
        init_security_context,
        init_image_repository: env_or("TYCHO_APP_INIT_IMAGE_REPOSITORY", "busybox"),
        init_image_tag: env_or("TYCHO_APP_INIT_IMAGE_TAG", "latest"),
        init_cpus: env_or("TYCHO_APP_INIT_CPUS", "250m"),
        init_memory: env_or("TYCHO_APP_INIT_MEMORY", "250Mi"),
        gpu_resource_name: env_or("TYCHO_APP_GPU_RESOURCE_NAME", "nvidia.com/gpu"),
        proxy_rewrite,
        gitea_integration: last
            .get("gitea_integration")
            .cloned()
            .unwrap_or(json!(false)),
        gitea_host: env_or("GITEA_HOST", " "),
        gitea_user: env_or("GITEA_USER", " "),
        gitea_service_name: env_or("GITEA_SERVICE_NAME", " "),
        nfsrods_host: irods_enabled.then(|| env_or("NFSRODS_HOST", "")),
        extra_env,
        username,
        identifier,
    })
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
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
