//! Assembling the [`System`]: the request's name and principal checked, the compose
//! document rendered with the settings ([`super::template`]), each service converted
//! ([`super::compose`]), services, volumes and the switches put together. A pure
//! function of its arguments: the environment comes in as [`ModelSwitches`].

use super::compose::{self, RegistryIds};
use super::template::{has_template_syntax, template_pass, StringRenderer};
use super::volumes;
use super::warning::Warnings;
use super::{Container, ModelSwitches, Service, StartRequest, System};
use crate::error::{Error, Result};
use crate::limits::echo_value;
use crate::text::names;
use crate::text::pyfmt::py_str;
use indexmap::IndexMap;
use serde_json::{json, Map, Value};

/// What every step of the build reads.
struct Inputs<'a> {
    config: &'a Value,
    req: &'a StartRequest,
    switches: &'a ModelSwitches,
    render: &'a StringRenderer<'a>,
    identifier: String,
    username: String,
    security_context: Map<String, Value>,
    init_security_context: Map<String, Value>,
    registry_ids: RegistryIds,
}

fn sc_str(sc: &Map<String, Value>, key: &str, default: &str) -> Value {
    match sc.get(key) {
        Some(v) => Value::String(py_str(v)),
        None => Value::String(default.to_string()),
    }
}

/// Parses a start request into a [`System`], applying the compose templating pass with
/// `render` (one string at a time). The warnings about what is not converted are in
/// [`System::warnings`] (the caller logs them, or refuses them in strict mode).
// Long because: the start request read field by field in the original's order (settings, ports, env) before the build.
pub fn parse<'a>(
    config: &'a Value,
    req: &'a StartRequest,
    identifier: String,
    switches: &'a ModelSwitches,
    render: &'a StringRenderer<'a>,
) -> Result<System> {
    let compose = &req.system;
    super::caps::check(compose, &switches.caps)?;
    let registry_sc = match compose.get("security_context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(Error::input(format!(
                "compose field 'security_context' must be a mapping, got {other}"
            )))
        }
    };
    let mut security_context = Map::new();
    for (key, registry_key, default) in [
        ("run_as_user", "runAsUser", &switches.run_as_user),
        ("run_as_group", "runAsGroup", &switches.run_as_group),
        ("fs_group", "fsGroup", &switches.fs_group),
    ] {
        security_context.insert(key.into(), sc_str(&registry_sc, registry_key, default));
    }
    let mut init_security_context = Map::new();
    for (key, registry_key, default) in [
        ("run_as_user", "initRunAsUser", &switches.init_run_as_user),
        (
            "run_as_group",
            "initRunAsGroup",
            &switches.init_run_as_group,
        ),
    ] {
        init_security_context.insert(key.into(), sc_str(&registry_sc, registry_key, default));
    }
    let security_context = switches
        .nfsrods_security_context()
        .unwrap_or(security_context);
    let registry_ids = RegistryIds {
        user: switches.nfsrods_uid.is_some() || registry_sc.contains_key("runAsUser"),
        group: switches.nfsrods_uid.is_some() || registry_sc.contains_key("runAsGroup"),
    };

    let username = match req.principal.get("username") {
        Some(Value::String(u)) if !u.is_empty() => u.clone(),
        _ => {
            return Err(Error::input(
                "principal field 'username' is required and must be a non-empty string",
            )
            .at("principal.username"))
        }
    };
    names::check_username(&username)?;
    if !names::is_dns_label(&req.name, 30) {
        return Err(Error::input(format!(
            "system name {:?} is not valid: use at most 30 lowercase letters, digits and '-', starting and ending with a letter or digit (it becomes part of DNS names and labels)",
            req.name
        )));
    }

    let services_in = compose
        .get("services")
        .ok_or_else(|| Error::input("compose document has no 'services'").at("system.services"))?;
    if !services_in.is_object() {
        return Err(Error::input(
            "compose field 'services' must be a mapping of service name to definition",
        ));
    }
    let inputs = Inputs {
        config,
        req,
        switches,
        render,
        identifier,
        username,
        security_context,
        init_security_context,
        registry_ids,
    };
    let mut warnings = Warnings::default();
    if let Some(doc) = compose.as_object() {
        compose::warn_top_level(doc, &mut warnings);
    }
    let Some(env) = &req.env else {
        return build(&inputs, compose.clone(), None, warnings);
    };
    let mut ctx = env.clone();
    ctx.insert(
        "identifier".into(),
        Value::String(inputs.identifier.clone()),
    );
    ctx.insert("username".into(), Value::String(inputs.username.clone()));
    let mut system_port = None;
    for (cname, spec) in services_in.as_object().into_iter().flatten() {
        ctx.insert("system_name".into(), Value::String(cname.clone()));
        if let Some(first) = spec
            .get("ports")
            .and_then(Value::as_array)
            .and_then(|p| p.first())
        {
            system_port = Some(match first {
                // The container side, without a /tcp or /udp protocol suffix.
                Value::String(s) => {
                    let port = s
                        .split(':')
                        .nth(if s.contains(':') { 1 } else { 0 })
                        .unwrap_or(s);
                    Value::String(port.split('/').next().unwrap_or(port).to_string())
                }
                other => other.clone(),
            });
        }
    }
    ctx.insert("system_port".into(), system_port.unwrap_or(json!(8000)));
    let ctx = Value::Object(ctx);
    let compose = {
        let _pinned = crate::render::PinnedContext::new(&ctx);
        template_pass(compose, &ctx, render, &mut warnings)?
    };
    // Settings (with the added keys) are what the registry env is rendered with.
    build(&inputs, compose, Some(ctx), warnings)
}

/// The registry env: every setting as `NAME=value`, rendered with the settings.
fn registry_env(
    inputs: &Inputs<'_>,
    env_ctx: Option<&Value>,
    warnings: &mut Warnings,
) -> Result<Vec<Vec<String>>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let Some(Value::Object(ctx)) = env_ctx else {
        return Ok(out);
    };
    let context = env_ctx.unwrap_or(&Value::Null);
    let _pinned = crate::render::PinnedContext::new(context);
    for (k, v) in ctx {
        let v = py_str(v);
        let entry = if v.contains("STDNFS_PVC") {
            format!(
                "{k}={}",
                inputs
                    .switches
                    .stdnfs_pvc
                    .clone()
                    .unwrap_or_else(|| "None".into())
            )
        } else {
            let text = format!("{k}={v}");
            if has_template_syntax(&text) {
                super::template::warn_undefined(
                    "",
                    &format!("settings.{k}"),
                    &text,
                    context,
                    warnings,
                );
                (inputs.render)(&text, context)?
            } else {
                text
            }
        };
        out.push(match entry.split_once('=') {
            Some((a, b)) => vec![a.to_string(), b.to_string()],
            None => vec![entry, String::new()],
        });
    }
    Ok(out)
}

/// What every container gets: the default volumes and the registry env.
struct Shared<'a> {
    defaults: &'a [String],
    registry_env: &'a [Vec<String>],
}

/// Compose service `cname` (the `index`-th) as a container; its pod labels and memory
/// volumes go to `system`.
fn container(
    inputs: &Inputs<'_>,
    shared: &Shared<'_>,
    (index, cname, spec): (usize, &str, &Value),
    system: &mut System,
    warnings: &mut Warnings,
) -> Result<Container> {
    let spec_map = service_map(cname, spec, warnings)?;
    let image = service_image(cname, spec_map)?;
    let command = service_entrypoint(cname, spec_map)?;
    let volumes = service_volumes(cname, spec_map, shared)?;
    let ports = port_list(cname, spec_map, "ports", warnings)?;
    let expose = port_list(cname, spec_map, "expose", warnings)?;
    let env_all = service_env(cname, spec_map, shared)?;
    let kube = spec_map.get("ext").and_then(|e| e.get("kube"));
    let resources = spec_map.get("deploy").and_then(|d| d.get("resources"));
    let mut extras = super::ComposeExtras::parse(cname, spec_map, inputs.registry_ids, warnings)?;
    let liveness_probe = liveness_probe(cname, spec_map, kube, warnings)?;
    merge_pod_labels(cname, spec_map, system, warnings)?;
    system
        .memory_volumes
        .extend(compose::memory_volumes(cname, index, spec_map)?);
    let limits = compose::limits(
        cname,
        "limits",
        resources.and_then(|r| r.get("limits")),
        warnings,
    )?;
    if let Some(gpus) = &extras.gpu_devices {
        extras.gpu_count = gpu_count(cname, gpus, &limits, warnings);
    }
    Ok(Container {
        name: cname.to_string(),
        image,
        identity: Value::Null,
        limits,
        requests: compose::limits(
            cname,
            "reservations",
            resources.and_then(|r| r.get("reservations")),
            warnings,
        )?,
        ports,
        expose,
        depends_on: spec_map.get("depends_on").cloned().unwrap_or(json!([])),
        command,
        env: env_all,
        volumes,
        liveness_probe,
        readiness_probe: compose::probe(
            cname,
            "readinessProbe",
            kube.and_then(|k| k.get("readinessProbe")),
        )?,
        compose: extras,
    })
}

/// Compose service `cname`'s definition as a mapping, its name checked, with the
/// warnings for the keys that are not converted.
fn service_map<'s>(
    cname: &str,
    spec: &'s Value,
    warnings: &mut Warnings,
) -> Result<&'s Map<String, Value>> {
    let spec_map = spec
        .as_object()
        .ok_or_else(|| Error::input(format!("service '{cname}': definition must be a mapping")))?;
    if !names::is_dns_label(cname, 63) {
        return Err(Error::input(format!(
            "service '{cname}': the name must be lowercase letters, digits and '-' (it names a Kubernetes container)"
        )));
    }
    compose::warn_keys(cname, spec_map, warnings);
    if spec_map.contains_key("env_file") {
        warnings.push(
            cname,
            "env_file",
            "is ignored: there is no compose file to read it relative to here (the CLI reads it; use environment)",
        );
    }
    Ok(spec_map)
}

/// The service's `image`: a non-empty string, required.
fn service_image(cname: &str, spec_map: &Map<String, Value>) -> Result<String> {
    match spec_map.get("image") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(other) => Err(Error::input(format!(
            "service '{cname}': field 'image' must be a non-empty string, got {other}"
        ))),
        None => Err(
            Error::input(format!("service '{cname}': field 'image' is required"))
                .at(format!("system.services.{cname}.image")),
        ),
    }
}

/// The service's `entrypoint` as the container's command: a string split on
/// whitespace, or a list.
fn service_entrypoint(cname: &str, spec_map: &Map<String, Value>) -> Result<Value> {
    match spec_map.get("entrypoint") {
        None => Ok(Value::Array(vec![])),
        Some(Value::String(s)) => Ok(Value::Array(
            s.split_whitespace()
                .map(|a| Value::String(a.into()))
                .collect(),
        )),
        Some(Value::Array(items)) => Ok(Value::Array(
            items.iter().map(|i| Value::String(py_str(i))).collect(),
        )),
        Some(Value::Null) => Ok(Value::Null),
        Some(other) => Err(Error::input(format!(
            "service '{cname}': field 'entrypoint' must be a string or a list, got {other}"
        ))),
    }
}

/// The service's `volumes` (a list of strings), then the default volumes.
fn service_volumes(
    cname: &str,
    spec_map: &Map<String, Value>,
    shared: &Shared<'_>,
) -> Result<Vec<String>> {
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
                })
            })
            .collect::<Result<_>>()?,
        Some(other) => {
            return Err(Error::input(format!(
                "service '{cname}': field 'volumes' must be a list, got {other}"
            )))
        }
    };
    volumes.extend(shared.defaults.iter().cloned());
    Ok(volumes)
}

/// The service's port list `field` (`ports` or `expose`).
fn port_list(
    cname: &str,
    spec_map: &Map<String, Value>,
    field: &str,
    warnings: &mut Warnings,
) -> Result<Vec<super::Port>> {
    match spec_map.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| compose::port_entry(cname, field, p, warnings))
            .collect(),
        Some(other) => Err(Error::input(format!(
            "service '{cname}': field '{field}' must be a list, got {other}"
        ))),
    }
}

/// The service's environment (`env`, else `environment`), then the registry env;
/// every name non-empty.
fn service_env(
    cname: &str,
    spec_map: &Map<String, Value>,
    shared: &Shared<'_>,
) -> Result<Vec<Vec<String>>> {
    let mut env_all = compose::env_pairs(
        cname,
        spec_map
            .get("env")
            .filter(|v| !is_empty(v))
            .or_else(|| spec_map.get("environment")),
    )?;
    env_all.extend(shared.registry_env.iter().cloned());
    for pair in &env_all {
        if pair[0].is_empty() {
            return Err(Error::input(format!(
                "service '{cname}': environment entry with an empty name"
            )));
        }
    }
    Ok(env_all)
}

/// The liveness probe: `ext.kube.livenessProbe`, else the compose `healthcheck`
/// (ignored with a warning when both are given).
fn liveness_probe(
    cname: &str,
    spec_map: &Map<String, Value>,
    kube: Option<&Value>,
    warnings: &mut Warnings,
) -> Result<Option<super::Probe>> {
    let mut liveness_probe = compose::probe(
        cname,
        "livenessProbe",
        kube.and_then(|k| k.get("livenessProbe")),
    )?;
    let healthcheck = compose::healthcheck(cname, spec_map.get("healthcheck"))?;
    if kube.and_then(|k| k.get("livenessProbe")).is_some() {
        if spec_map.contains_key("healthcheck") {
            warnings.push(
                cname,
                "healthcheck",
                "is ignored: ext.kube.livenessProbe is given",
            );
        }
    } else if healthcheck.is_some() {
        liveness_probe = healthcheck;
    }
    Ok(liveness_probe)
}

/// The service's `labels` added to the system's pod labels; one an earlier service set
/// to another value is dropped with a warning.
fn merge_pod_labels(
    cname: &str,
    spec_map: &Map<String, Value>,
    system: &mut System,
    warnings: &mut Warnings,
) -> Result<()> {
    for (key, value) in compose::labels(cname, spec_map, warnings)? {
        match system.pod_labels.get(&key) {
            Some(existing) if *existing != value => warnings.push(
                cname,
                &format!("labels.{key}"),
                "is dropped: an earlier service sets this pod label to another value",
            ),
            _ => {
                system.pod_labels.insert(key, value);
            }
        }
    }
    Ok(())
}

/// The Kubernetes GPU limit of a compose device request: its count (or the number of
/// its device ids), none when `deploy.resources.limits.gpus` is set (it wins). Kubernetes
/// has no "every GPU of the node" (1 is asked for) and no device ids (their count is).
fn gpu_count(
    cname: &str,
    gpus: &super::GpuDevices,
    limits: &super::Limits,
    warnings: &mut Warnings,
) -> Option<u64> {
    const KEY: &str = "deploy.resources.reservations.devices";
    let number = gpus.number();
    if !limits.gpus.is_null() {
        if number.is_none_or(|n| py_str(&limits.gpus) != n.to_string()) {
            warnings.push(
                cname,
                KEY,
                format!(
                    "gives way to deploy.resources.limits.gpus ({})",
                    crate::limits::echo_value(&limits.gpus)
                ),
            );
        }
        return None;
    }
    if number.is_none() {
        warnings.push(
            cname,
            KEY,
            "count all: a Kubernetes pod cannot ask for every GPU of its node; it asks for 1",
        );
    }
    if !gpus.device_ids.is_empty() {
        warnings.push(
            cname,
            KEY,
            "device_ids: Kubernetes schedules GPUs by count; the pod asks for that many, not these devices",
        );
    }
    Some(number.unwrap_or(1))
}

/// The request's `services` (network exposure), every entry in request order: an entry
/// that names no container is kept (with a warning), as the original keeps it.
fn services(
    inputs: &Inputs<'_>,
    containers: &[Container],
    warnings: &mut Warnings,
) -> Result<IndexMap<String, Service>> {
    let container_names: std::collections::HashSet<&str> =
        containers.iter().map(|c| c.name.as_str()).collect();
    let mut out = IndexMap::new();
    for (sname, def) in &inputs.req.services {
        let def = match def {
            Value::Object(m) => m.clone(),
            Value::Null => Map::new(),
            other => {
                return Err(Error::input(format!(
                    "services.{sname} must be an object with port and clients, got {other}"
                )))
            }
        };
        let clients = match def.get("clients") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|c| client_network(sname, c))
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(Error::input(format!(
                    "services.{sname}.clients must be a list of CIDRs, got {}",
                    echo_value(other)
                ))
                .at(format!("services.{sname}.clients")))
            }
        };
        let has_container = container_names.contains(sname.as_str());
        if !has_container {
            // The original keeps such an entry in `system.services` (templates iterate
            // it) but creates no Service for it; so do we (compile.rs makes a Service
            // per container only), and its name never becomes an object name.
            warnings.push(
                "",
                &format!("services.{sname}"),
                "of the request names no service of the compose document: no Service is created for it",
            );
        } else if sname.len() > 30 || !sname.as_bytes()[0].is_ascii_lowercase() {
            return Err(Error::input(format!(
                "services.{sname}: a service name must start with a letter and have at most 30 characters (it becomes a Kubernetes Service name with the GUID)"
            )));
        }
        out.insert(
            sname.clone(),
            Service {
                port: def.get("port").cloned().unwrap_or(Value::Null),
                clients,
                name: format!("{sname}-{}", inputs.identifier),
                name_noid: sname.clone(),
            },
        );
    }
    Ok(out)
}

/// The principal's fields (the system env) and its `extra_container_env` pairs.
type PrincipalEnv = (Map<String, Value>, Vec<Vec<String>>);

/// The principal's fields as the system env, and its `extra_container_env` pairs.
fn principal_env(req: &StartRequest, warnings: &mut Warnings) -> Result<PrincipalEnv> {
    let mut system_env = req.principal.clone();
    let mut extra_env = Vec::new();
    if let Some(Value::String(text)) = system_env.get("extra_container_env") {
        // The original passes it on as one env var named extra_container_env (kept in
        // its place among the principal's fields).
        warnings.push(
            "",
            "principal.extra_container_env",
            format!(
                "is the string {}, not an object: it becomes one env var named extra_container_env",
                echo_value(&Value::String(text.clone()))
            ),
        );
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
                )))
            }
        }
    }
    Ok((system_env, extra_env))
}

// Long because: services, volumes and switches put together in the original's order.
fn build(
    inputs: &Inputs<'_>,
    compose: Value,
    env_ctx: Option<Value>,
    mut warnings: Warnings,
) -> Result<System> {
    let services_in = compose
        .get("services")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if services_in.is_empty() {
        return Err(Error::input("compose document defines no services").at("system.services"));
    }
    let switches = inputs.switches;
    let username = inputs.username.clone();
    let defaults = volumes::default_volumes(inputs.config, switches, &username);
    let registry_env = registry_env(inputs, env_ctx.as_ref(), &mut warnings)?;
    check_settings_copies(&registry_env, services_in.len())?;
    let defaults_sc = crate::config::lookup(
        inputs.config,
        &["tycho", "compute", "system", "defaults", "securityContext"],
    );
    let last = services_in
        .values()
        .next_back()
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut proxy_rewrite = last
        .get("proxy_rewrite")
        .cloned()
        .unwrap_or(json!({"target": null, "enabled": false}));
    let req = inputs.req;
    let mut system = System {
        system_name: req.name.clone(),
        app_id: req.name.clone(),
        amb: false,
        irods_enabled: switches.irods_enabled,
        nfrods_uid: String::new(),
        dev_phase: switches.dev_phase.clone(),
        name: format!("{}-{}", req.name, inputs.identifier),
        containers: Vec::new(),
        services: IndexMap::new(),
        volumes: Vec::new(),
        system_port: Value::Null,
        ambassador_id: switches.ambassador_id.clone(),
        username_all_hyphens: username.replace(['_', '.'], "-"),
        host: Value::Null,
        system_env: Map::new(),
        annotations: Map::new(),
        namespace: "default".into(),
        serviceaccount: req.serviceaccount.clone(),
        enable_init_container: switches.enable_init_container.clone(),
        conn_string: last.get("conn_string").cloned().unwrap_or(json!("")),
        create_home_dirs: switches.create_home_dirs_text(),
        stdnfs_pvc: switches.stdnfs_pvc_or_default(),
        parent_dir: switches.parent_dir.clone(),
        subpath_dir: switches.subpath_dir_or(&username),
        shared_dir: switches.shared_dir.clone(),
        default_run_as_user: defaults_sc
            .and_then(|d| d.get("uid"))
            .cloned()
            .unwrap_or(json!("1000")),
        default_run_as_group: defaults_sc
            .and_then(|d| d.get("gid"))
            .cloned()
            .unwrap_or(json!("1000")),
        security_context: inputs.security_context.clone(),
        init_security_context: inputs.init_security_context.clone(),
        init_image_repository: switches.init_image_repository.clone(),
        init_image_tag: switches.init_image_tag.clone(),
        init_cpus: switches.init_cpus.clone(),
        init_memory: switches.init_memory.clone(),
        gpu_resource_name: super::placement::gpu_resource(
            compose.as_object().unwrap_or(&Map::new()),
            &switches.gpu_resource_name,
        )?,
        placement: super::placement::resolve(
            inputs.config,
            compose.as_object().unwrap_or(&Map::new()),
            &services_in,
            &mut warnings,
        )?,
        proxy_rewrite: Value::Null,
        gitea_integration: last
            .get("gitea_integration")
            .cloned()
            .unwrap_or(json!(false)),
        gitea_host: switches.gitea_host.clone(),
        gitea_user: switches.gitea_user.clone(),
        gitea_service_name: switches.gitea_service_name.clone(),
        nfsrods_host: switches.nfsrods_host_if_enabled(),
        extra_env: Vec::new(),
        username,
        identifier: inputs.identifier.clone(),
        pod_labels: IndexMap::new(),
        memory_volumes: Vec::new(),
        count: req.count,
        warnings: Vec::new(),
    };
    let shared = Shared {
        defaults: &defaults,
        registry_env: &registry_env,
    };
    let mut containers = Vec::new();
    for (index, (cname, spec)) in services_in.iter().enumerate() {
        containers.push(container(
            inputs,
            &shared,
            (index, cname.as_str(), spec),
            &mut system,
            &mut warnings,
        )?);
    }
    system.services = services(inputs, &containers, &mut warnings)?;
    system.volumes = volumes::mounts(&containers)?;
    system.containers = containers;
    let (system_env, extra_env) = principal_env(inputs.req, &mut warnings)?;
    system.host = system_env.get("host").cloned().unwrap_or(Value::Null);
    system.system_env = system_env;
    system.extra_env = extra_env;
    if let Some(rule) = last.get("proxy_rewrite_rule").filter(|v| !v.is_null()) {
        match proxy_rewrite.as_object_mut() {
            Some(m) => {
                m.insert("enabled".into(), rule.clone());
            }
            None => {
                return Err(Error::input(
                    "compose field 'proxy_rewrite' must be a mapping with enabled and target",
                ))
            }
        }
    }
    system.proxy_rewrite = proxy_rewrite;
    // The app's service carries it (TychoContext.start puts it there), whichever it is.
    let activity = services_in
        .values()
        .find_map(|s| s.get("activity").filter(|v| !v.is_null()));
    if let Some(probe) = activity_probe(activity)? {
        system
            .annotations
            .insert(names::ACTIVITY_ANNOTATION.into(), Value::String(probe));
    }
    system.warnings = warnings.into_vec();
    Ok(system)
}

/// Longest `path` and `field` of an activity probe (bytes).
const ACTIVITY_TEXT_MAX: usize = 256;

/// The registry app's `activity` probe (`{port, path, field}`, from the compose service
/// that carries it: the app's), checked, as compact JSON for the Deployment's
/// annotation ([`names::ACTIVITY_ANNOTATION`]); None when absent or null.
pub fn activity_probe(value: Option<&Value>) -> Result<Option<String>> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let bad = |what: &str| {
        Error::input(format!(
            "activity must be a mapping {{port, path, field}}: {what}, got {}",
            echo_value(value)
        ))
        .at("activity")
    };
    let map = value.as_object().ok_or_else(|| bad("not a mapping"))?;
    let port = match map.get("port") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .filter(|p| (1..=65535).contains(p))
    .ok_or_else(|| bad("port must be a number from 1 to 65535"))?;
    let text = |key: &str, default: &str| -> Result<String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(Value::String(s))
                if s.len() <= ACTIVITY_TEXT_MAX && !s.chars().any(char::is_control) =>
            {
                Ok(s.clone())
            }
            Some(_) => Err(bad(&format!(
                "{key} must be a string of at most {ACTIVITY_TEXT_MAX} bytes without control characters"
            ))),
        }
    };
    let path = text("path", "/")?;
    let field = text("field", "last_activity")?;
    if let Some(extra) = map
        .keys()
        .find(|k| !["port", "path", "field"].contains(&k.as_str()))
    {
        return Err(bad(&format!("unknown key {extra:?}")));
    }
    Ok(Some(
        json!({"port": port, "path": path, "field": field}).to_string(),
    ))
}

/// Refuses settings that, copied into the environment of every container, make more
/// text than pod.yaml may write (`TYCHO_TEMPLATE_OUTPUT_LIMIT`): the pod would fail to
/// render anyway, after the copies had taken many times that in memory.
fn check_settings_copies(registry_env: &[Vec<String>], containers: usize) -> Result<()> {
    let each: usize = registry_env
        .iter()
        .map(|pair| pair.iter().map(String::len).sum::<usize>())
        .sum();
    let all = each.saturating_mul(containers);
    let limit = crate::limits::template_budgets().output;
    if all > limit {
        return Err(Error::input(format!(
            "the settings ({}) go into the environment of each of the {containers} services: {} in all, more than the {} a pod template may write (TYCHO_TEMPLATE_OUTPUT_LIMIT)",
            crate::limits::size_text(each as u64),
            crate::limits::size_text(all as u64),
            crate::limits::size_text(limit as u64),
        ))
        .at("env"));
    }
    Ok(())
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

/// One entry of a service's `clients`: a CIDR (or a single address) in its normal form.
/// The CIDR rule of the model (the Python `Service` constructor calls it too).
pub fn client_network(sname: &str, c: &Value) -> Result<String> {
    let text = py_str(c);
    let net = if text.contains('/') {
        text.parse::<ipnet::IpNet>().ok()
    } else {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    };
    match net {
        Some(n) if n.trunc() == n => Ok(n.to_string()),
        Some(_) => Err(Error::input(format!(
            "services.{sname}.clients: {} has host bits set (did you mean its network address?)",
            echo_value(&Value::String(text.clone()))
        ))
        .at(format!("services.{sname}.clients"))),
        None => Err(Error::input(format!(
            "services.{sname}.clients: {} is not a valid IP network (CIDR)",
            echo_value(&Value::String(text.clone()))
        ))
        .at(format!("services.{sname}.clients"))),
    }
}
