//! Compilation: a start request → the Kubernetes objects of the system (Deployment,
//! NetworkPolicy, Services, and the token Secret of [`crate::compile::token_secret`]), the same
//! objects the executor creates, with no cluster.

pub mod default_limits;
pub mod policy;
pub mod prepull;
pub mod token_secret;

use crate::error::{Error, ErrorKind, Result};
use crate::model::{self, StartRequest, System};
use minijinja::value::Value as MjValue;
use serde_json::{json, Map, Value};

/// Options of a compilation that a cluster would otherwise decide.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Render the Ambassador variant (ClusterIP Services with a Mapping annotation).
    pub ambassador: bool,
    /// Use this GUID instead of a fresh uuid4 hex.
    pub identifier: Option<String>,
    /// The Deployment's uid, for the Services' ownerReferences (omitted when None).
    pub deployment_uid: Option<String>,
    /// Claims that do not exist on the cluster: their mounts are dropped (stdnfs exempt).
    pub missing_claims: Vec<String>,
    /// Decoded data of the app's `<app>-env` Secret, appended to every container's env.
    pub secret_env: Vec<(String, String)>,
    /// Refuse the first warning (besides the config's `tycho.compute.system.strict`).
    pub strict: bool,
    /// Leave the warnings to the caller (the CLI prints them) instead of logging them.
    pub quiet: bool,
}

/// Applies what the cluster tells about a system before it is rendered: Ambassador,
/// missing claims and the `<app>-env` Secret (values rendered with the container's env).
pub fn apply_cluster_facts(
    system: &mut System,
    ambassador: bool,
    missing_claims: &[String],
    secret_env: &[(String, String)],
) -> Result<()> {
    system.amb = ambassador;
    system
        .volumes
        .retain(|v| v.volume_name == "stdnfs" || !missing_claims.contains(&v.volume_name));
    for container in &mut system.containers {
        for (key, value) in secret_env {
            let ctx: Map<String, Value> = container
                .env
                .iter()
                .map(|pair| {
                    (
                        pair[0].clone(),
                        Value::String(pair.get(1).cloned().unwrap_or_default()),
                    )
                })
                .collect();
            let rendered =
                crate::render::render_string(value, &Value::Object(ctx)).map_err(|e| {
                    e.prefixed(format!("secret {}-env key {key}", system.system_name))
                        .with_kind(ErrorKind::Input)
                })?;
            container.env.push(vec![key.clone(), rendered]);
        }
    }
    Ok(())
}

/// The compiled objects of a system.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The system model the objects were rendered from.
    pub system: System,
    /// The Deployment.
    pub deployment: Value,
    /// The NetworkPolicy, when a service restricts its clients.
    pub network_policy: Option<Value>,
    /// One Service per container that has a `services` entry, in container order.
    pub services: Vec<(String, Value)>,
    /// The Secret holding the principal's tokens (`access_token_env: secret` and a
    /// principal with a token); owned by the Deployment when its uid is known.
    pub secret: Option<Value>,
}

impl Compiled {
    /// All objects in creation order.
    pub fn objects(&self) -> Vec<Value> {
        let mut out = vec![self.deployment.clone()];
        out.extend(self.network_policy.clone());
        out.extend(self.services.iter().map(|s| s.1.clone()));
        out.extend(self.secret.clone());
        out
    }

    /// All objects in creation order, moved out (no copy of the rendered values).
    pub fn into_objects(self) -> Vec<Value> {
        let mut out = Vec::with_capacity(3 + self.services.len());
        out.push(self.deployment);
        out.extend(self.network_policy);
        out.extend(self.services.into_iter().map(|s| s.1));
        out.extend(self.secret);
        out
    }
}

/// A fresh GUID: uuid4 as 32 hex digits.
pub fn new_identifier() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub use crate::model::render_setting;

/// Parses a start request into a system model, logging its warnings on `tycho.model`
/// (an error instead in strict mode, `tycho.compute.system.strict`).
pub fn parse_system(config: &Value, request: &Value, identifier: Option<String>) -> Result<System> {
    parse_system_with(config, request, identifier, false, false)
}

/// [`parse_system`] with `strict` (refuse the first warning even when the config does
/// not say so) and `quiet` (return the warnings in [`System::warnings`] without logging
/// them, for a caller that shows them itself).
pub fn parse_system_with(
    config: &Value,
    request: &Value,
    identifier: Option<String>,
    strict: bool,
    quiet: bool,
) -> Result<System> {
    parse_request(
        config,
        StartRequest::from_json(request)?,
        identifier,
        strict,
        quiet,
    )
}

/// [`parse_system`] of a request already read (a caller that owns the request's JSON
/// hands it over with [`StartRequest::from_value`], without a copy).
pub fn parse_request(
    config: &Value,
    req: StartRequest,
    identifier: Option<String>,
    strict: bool,
    quiet: bool,
) -> Result<System> {
    let switches = crate::model::ModelSwitches::from_env();
    let system = crate::render::with_total_budget(|| {
        model::parse(
            config,
            &req,
            identifier.unwrap_or_else(new_identifier),
            &switches,
            &render_setting,
        )
    })?;
    drop(req);
    model::warning::check_strict(&system.warnings, strict || crate::config::strict(config))?;
    if !quiet {
        model::warning::log_all(&system.warnings);
    }
    Ok(system)
}

/// Renders `template` with `system` (and `extra` context entries) into YAML documents.
pub fn render_system(
    config: &Value,
    system: &System,
    template: &str,
    extra: &Map<String, Value>,
) -> Result<Vec<Value>> {
    render_with(
        config,
        &MjValue::from(minijinja::value::Serde(system)),
        template,
        extra,
        None,
    )
}

/// Renders `template` with an already converted system value.
fn render_with(
    config: &Value,
    system: &MjValue,
    template: &str,
    extra: &Map<String, Value>,
    container: Option<MjValue>,
) -> Result<Vec<Value>> {
    let mut ctx: std::collections::BTreeMap<String, MjValue> = extra
        .iter()
        .map(|(k, v)| (k.clone(), MjValue::from(minijinja::value::Serde(v))))
        .collect();
    ctx.insert("system".into(), system.clone());
    if let Some(container) = container {
        // service.yaml's container, so it need not look it up among all of them.
        ctx.insert("tycho_container".into(), container);
    }
    let paths = crate::config::template_paths(config);
    crate::render::render(&paths, template, MjValue::from(ctx))
}

/// Wraps the rendered pod into the Deployment the executor creates.
pub fn pod_to_deployment(system: &System, pod: Value) -> Result<Value> {
    let mut pod = match pod {
        Value::Object(m) => m,
        other => {
            return Err(Error::template(format!(
                "pod.yaml must render a mapping, got {other}"
            )))
        }
    };
    pod.shift_remove("apiVersion");
    pod.shift_remove("kind");
    if let Some(Value::Object(meta)) = pod.get_mut("metadata") {
        meta.shift_remove("name");
    }
    // The username label is the username, or its slug with the real name in an
    // annotation (crate::text::names::username_label).
    let username = crate::text::names::username_label(&system.username);
    let mut deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": system.name,
            "labels": {"tycho-guid": system.identifier, "executor": "tycho", "username": username},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"tycho-guid": system.identifier, "username": username}},
        },
    });
    if crate::text::names::username_is_slugged(&system.username) {
        deployment["metadata"]["annotations"] =
            json!({ crate::text::names::USERNAME_ANNOTATION: system.username });
    }
    // The registry's activity probe, for culling (crate::exec::cull).
    if let Some(probe) = system
        .annotations
        .get(crate::text::names::ACTIVITY_ANNOTATION)
    {
        deployment["metadata"]["annotations"][crate::text::names::ACTIVITY_ANNOTATION] =
            probe.clone();
    }
    // Moved in, not copied through json!.
    deployment["spec"]
        .as_object_mut()
        .expect("spec is a mapping")
        .insert("template".into(), Value::Object(pod));
    Ok(deployment)
}

/// Renders the objects of an already-parsed system (amb, volumes, env as the caller set them).
pub fn compile_system(
    config: &Value,
    system: System,
    deployment_uid: Option<&str>,
) -> Result<Compiled> {
    crate::render::with_total_budget(|| compile_system_in(config, system, deployment_uid))
}

fn compile_system_in(
    config: &Value,
    mut system: System,
    deployment_uid: Option<&str>,
) -> Result<Compiled> {
    system.resolve_system_port();
    let empty = Map::new();
    let sys_value = MjValue::from(minijinja::value::Serde(&system));
    let token_mode = crate::config::access_token_env(config)?;
    let mut pod_context = Map::new();
    pod_context.insert(
        "container_env".into(),
        serde_json::to_value(crate::compile::token_secret::container_env(
            &system, token_mode,
        ))
        .unwrap_or_default(),
    );
    let mut pods = render_with(config, &sys_value, "pod.yaml", &pod_context, None)?;
    if pods.len() != 1 {
        return Err(Error::template(format!(
            "pod.yaml must render exactly one document, got {}",
            pods.len()
        )));
    }
    let mut deployment = pod_to_deployment(&system, pods.remove(0))?;
    // Opt-in: with no default limit set, the pod is the original's.
    crate::compile::default_limits::DefaultLimits::for_kubernetes(
        config,
        &crate::environment::resources::DefaultLimitsEnv::from_env(),
    )?
    .apply_to_deployment(&system, &mut deployment);
    // Before anything is created: the pod security level and the resource ceilings
    // (default limits count against the ceilings).
    crate::compile::policy::check(config, &deployment)?;
    let network_policy = if system.requires_network_policy() {
        render_with(
            config,
            &sys_value,
            "policy/tycho-default-netpolicy.yaml",
            &empty,
            None,
        )?
        .into_iter()
        .next()
    } else {
        None
    };
    let services = services_with(config, &system, &sys_value, deployment_uid)?;
    let secret = crate::compile::token_secret::secret_object(&system, token_mode, deployment_uid);
    Ok(Compiled {
        system,
        deployment,
        network_policy,
        services,
        secret,
    })
}

/// The Services of an already-compiled system, rendered again with the Deployment's uid
/// (their ownerReferences): what start needs after the Deployment exists, without
/// rendering the pod a second time.
pub fn render_services(
    config: &Value,
    system: &System,
    deployment_uid: &str,
) -> Result<Vec<(String, Value)>> {
    crate::render::with_total_budget(|| {
        let mut system = system.clone();
        system.resolve_system_port();
        let sys_value = MjValue::from(minijinja::value::Serde(&system));
        services_with(config, &system, &sys_value, Some(deployment_uid))
    })
}

/// One Service per container that has a `services` entry (service.yaml).
fn services_with(
    config: &Value,
    system: &System,
    sys_value: &MjValue,
    deployment_uid: Option<&str>,
) -> Result<Vec<(String, Value)>> {
    let mut services = Vec::new();
    let containers_value = sys_value.get_attr("containers").ok();
    for (index, container) in system.containers.iter().enumerate() {
        let Some(service) = system.services.get(&container.name) else {
            continue;
        };
        let container_value = containers_value
            .as_ref()
            .and_then(|c| c.get_item_by_index(index).ok());
        let mut extra = Map::new();
        extra.insert(
            "service".into(),
            serde_json::to_value(service).unwrap_or_default(),
        );
        if let Some(uid) = deployment_uid {
            extra.insert(
                "create_deployment_api_response".into(),
                json!({"metadata": {"name": system.name, "uid": uid}}),
            );
        }
        for doc in render_with(config, sys_value, "service.yaml", &extra, container_value)? {
            services.push((container.name.clone(), doc));
        }
    }
    Ok(services)
}

/// Adds `container_env` (see [`crate::compile::token_secret`]) to a template context that holds a
/// `system` model but no `container_env`, so pod.yaml rendered through
/// `tycho.model.System.render` gets the env the executor creates. A `system` that is not
/// a tycho system model is left alone.
pub fn add_container_env(config: &Value, context: &mut Value) -> Result<()> {
    let Some(map) = context.as_object_mut() else {
        return Ok(());
    };
    if map.contains_key("container_env") {
        return Ok(());
    }
    let Some(system) = map.get("system") else {
        return Ok(());
    };
    // The three parts the variables come from, read in place; a system of another
    // shape goes through the whole model (which may refuse it: then no variables).
    let parts = (
        system.get("name").and_then(Value::as_str),
        system.get("system_env").and_then(Value::as_object),
        system
            .get("extra_env")
            .map(|e| serde_json::from_value::<Vec<Vec<String>>>(e.clone()).ok()),
    );
    let env = match parts {
        (Some(name), Some(system_env), Some(Some(extra_env))) => {
            let mode = crate::config::access_token_env(config)?;
            crate::compile::token_secret::container_env_of(name, system_env, &extra_env, mode)
        }
        _ => {
            let Ok(system) = System::from_plain(system.clone()) else {
                return Ok(());
            };
            let mode = crate::config::access_token_env(config)?;
            crate::compile::token_secret::container_env(&system, mode)
        }
    };
    map.insert(
        "container_env".into(),
        serde_json::to_value(env).unwrap_or_default(),
    );
    Ok(())
}

/// Compiles a start request into its objects.
pub fn compile(config: &Value, request: &Value, options: &CompileOptions) -> Result<Compiled> {
    compile_owned(config, request.clone(), options)
}

/// [`compile`] of a request the caller hands over (its compose document and settings
/// are taken over, not copied).
pub fn compile_owned(config: &Value, request: Value, options: &CompileOptions) -> Result<Compiled> {
    crate::render::with_total_budget(|| compile_in(config, request, options))
}

fn compile_in(config: &Value, request: Value, options: &CompileOptions) -> Result<Compiled> {
    let mut system = parse_request(
        config,
        StartRequest::from_value(request)?,
        options.identifier.clone(),
        options.strict,
        options.quiet,
    )?;
    apply_cluster_facts(
        &mut system,
        options.ambassador,
        &options.missing_claims,
        &options.secret_env,
    )?;
    compile_system(config, system, options.deployment_uid.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "0123456789abcdef0123456789abcdef";

    fn request(service: Value, services: Value) -> Value {
        json!({
            "name": "web-app",
            "env": {},
            "system": {"version": "3.0", "services": {"web-app": service}},
            "principal": "{\"username\": \"jdoe\", \"access_token\": \"tok\"}",
            "services": services,
            "serviceaccount": "default",
        })
    }

    fn options() -> CompileOptions {
        CompileOptions {
            identifier: Some(GUID.into()),
            deployment_uid: Some("uid-1".into()),
            ..CompileOptions::default()
        }
    }

    fn compile_one(service: Value, services: Value) -> Compiled {
        compile(
            crate::config::default_config(),
            &request(service, services),
            &options(),
        )
        .expect("compiles")
    }

    #[test]
    fn deployment_is_labelled_for_its_owner() {
        let c = compile_one(json!({"image": "nginx:1.27"}), json!({}));
        let d = &c.deployment;
        assert_eq!(d["kind"], "Deployment");
        assert_eq!(d["metadata"]["name"], c.system.name);
        assert_eq!(d["metadata"]["labels"]["executor"], "tycho");
        assert_eq!(d["metadata"]["labels"]["tycho-guid"], GUID);
        assert_eq!(d["metadata"]["labels"]["username"], "jdoe");
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["selector"]["matchLabels"],
            json!({"tycho-guid": GUID, "username": "jdoe"})
        );
        let containers = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers");
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0]["image"], "nginx:1.27");
        // The pod template carries no name of its own: the Deployment names its pods.
        assert!(d["spec"]["template"]["metadata"].get("name").is_none());
    }

    #[test]
    fn a_services_entry_gives_one_service_owned_by_the_deployment() {
        let c = compile_one(
            json!({"image": "nginx:1.27", "ports": ["8080:80"]}),
            json!({"web-app": {"port": "80", "clients": []}}),
        );
        assert_eq!(c.services.len(), 1);
        let (container, service) = &c.services[0];
        assert_eq!(container, "web-app");
        assert_eq!(service["kind"], "Service");
        let owner = &service["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], "uid-1");
        assert_eq!(owner["name"], c.system.name);
        let objects = c.objects();
        assert_eq!(
            objects[0]["kind"], "Deployment",
            "the Deployment is created first"
        );
        assert!(objects.iter().any(|o| o["kind"] == "Service"));
    }

    #[test]
    fn no_services_entry_means_no_service() {
        let c = compile_one(json!({"image": "nginx:1.27", "ports": ["80"]}), json!({}));
        assert!(c.services.is_empty());
    }

    #[test]
    fn clients_restrict_the_system_with_a_network_policy() {
        let open = compile_one(
            json!({"image": "nginx:1.27", "ports": ["80"]}),
            json!({"web-app": {"port": "80", "clients": []}}),
        );
        let closed = compile_one(
            json!({"image": "nginx:1.27", "ports": ["80"]}),
            json!({"web-app": {"port": "80", "clients": ["10.1.0.0/16"]}}),
        );
        assert_eq!(
            open.network_policy.is_some(),
            open.system.requires_network_policy()
        );
        let policy = closed
            .network_policy
            .expect("a policy for restricted clients");
        assert_eq!(policy["kind"], "NetworkPolicy");
        assert!(policy.to_string().contains("10.1.0.0/16"));
    }

    #[test]
    fn an_entry_naming_no_container_stays_in_the_model_and_makes_no_service() {
        let c = compile_one(
            json!({"image": "nginx:1.27", "ports": ["8080:80"]}),
            json!({
                "web-application": {"port": "8888", "clients": ["10.1.0.0/16"]},
                "portless-and-nameless": {"clients": ["10.2.0.0/16"]},
            }),
        );
        // Kept, with the original's shape, for templates that iterate system.services.
        let kept = &c.system.services["web-application"];
        assert_eq!(kept.port, json!("8888"));
        assert_eq!(kept.name_noid, "web-application");
        assert!(c.system.services.contains_key("portless-and-nameless"));
        assert!(c.system.requires_network_policy());
        // No Service for a container that does not exist.
        assert!(c.services.is_empty());
        // The NetworkPolicy admits the entry's clients on its port (a number); the entry
        // without a port adds no rule (it would open every port).
        let policy = c.network_policy.expect("a policy");
        let rules = policy["spec"]["ingress"].as_array().expect("rules");
        assert_eq!(rules.len(), 1, "{policy}");
        assert_eq!(rules[0]["from"][0]["ipBlock"]["cidr"], "10.1.0.0/16");
        assert_eq!(
            rules[0]["ports"],
            json!([{"port": 8888, "protocol": "TCP"}])
        );
        assert!(!policy.to_string().contains("10.2.0.0/16"));
    }

    #[test]
    fn the_guid_given_is_the_guid_used() {
        let c = compile_one(json!({"image": "nginx:1.27"}), json!({}));
        assert_eq!(c.system.identifier, GUID);
        assert!(c.system.name.contains(GUID));
    }

    #[test]
    fn a_fresh_guid_is_32_hex_digits() {
        let id = new_identifier();
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(id, new_identifier());
    }

    #[test]
    fn missing_claims_are_dropped_but_stdnfs_stays() {
        let mut system = parse_system(
            crate::config::default_config(),
            &request(
                json!({"image": "nginx:1.27", "volumes": ["pvc://data:/data", "pvc://stdnfs:/home"]}),
                json!({}),
            ),
            Some(GUID.into()),
        )
        .expect("parses");
        let before: Vec<String> = system
            .volumes
            .iter()
            .map(|v| v.volume_name.clone())
            .collect();
        assert!(before.contains(&"data".to_string()), "{before:?}");
        apply_cluster_facts(&mut system, true, &["data".into(), "stdnfs".into()], &[])
            .expect("applies");
        let after: Vec<String> = system
            .volumes
            .iter()
            .map(|v| v.volume_name.clone())
            .collect();
        assert!(!after.contains(&"data".to_string()), "{after:?}");
        assert!(system.amb);
    }

    #[test]
    fn secret_env_values_are_rendered_with_the_container_env() {
        let mut system = parse_system(
            crate::config::default_config(),
            &request(
                json!({"image": "nginx:1.27", "environment": ["GREETING=hello"]}),
                json!({}),
            ),
            Some(GUID.into()),
        )
        .expect("parses");
        apply_cluster_facts(
            &mut system,
            false,
            &[],
            &[("MESSAGE".into(), "{{ GREETING }} world".into())],
        )
        .expect("applies");
        let env = &system.containers[0].env;
        assert!(
            env.iter()
                .any(|p| p[0] == "MESSAGE" && p[1] == "hello world"),
            "{env:?}"
        );
    }

    #[test]
    fn pod_to_deployment_refuses_a_non_mapping() {
        let system = compile_one(json!({"image": "nginx:1.27"}), json!({})).system;
        let err = pod_to_deployment(&system, json!(["not", "a", "pod"])).unwrap_err();
        assert!(err.to_string().contains("must render a mapping"), "{err}");
    }

    #[test]
    fn a_request_without_services_is_refused() {
        let mut req = request(json!({"image": "nginx:1.27"}), json!({}));
        req["system"]["services"] = json!({});
        let err = compile(crate::config::default_config(), &req, &options()).unwrap_err();
        assert!(err.to_string().contains("no services"), "{err}");
    }

    fn pod_spec(c: &Compiled) -> &Value {
        &c.deployment["spec"]["template"]["spec"]
    }

    #[test]
    fn placement_from_config_request_and_compose() {
        let config = json!({"tycho": {"compute": {
            "placement": {"nodeSelector": {"pool": "apps", "gpu": "any"}, "priorityClassName": "low",
                          "tolerations": [{"key": "pool", "operator": "Equal", "value": "apps", "effect": "NoSchedule"}]},
            "system": {"defaults": {"securityContext": {"uid": 1000, "gid": 1000}}}}}});
        let mut req = request(
            json!({"image": "nginx:1.27",
                   "deploy": {"placement": {"constraints": ["node.labels.gpu == a100", "node.hostname != n1"]}}}),
            json!({}),
        );
        req["system"]["placement"] = json!({"nodeSelector": {"gpu": "t4", "zone": "z1"},
            "runtimeClassName": "nvidia", "imagePullSecrets": [{"name": "regcred"}]});
        let c = compile(&config, &req, &options()).expect("compiles");
        let spec = pod_spec(&c);
        assert_eq!(
            spec["nodeSelector"],
            json!({"pool": "apps", "gpu": "a100", "zone": "z1"})
        );
        assert_eq!(spec["priorityClassName"], "low");
        assert_eq!(spec["runtimeClassName"], "nvidia");
        assert_eq!(spec["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(
            spec["tolerations"],
            json!([{"key": "pool", "operator": "Equal", "value": "apps", "effect": "NoSchedule"}])
        );
        assert_eq!(
            spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"][0]["matchExpressions"],
            json!([{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["n1"]}])
        );
        // No placement anywhere: none of the fields.
        let plain = compile_one(json!({"image": "nginx:1.27"}), json!({}));
        for field in crate::model::placement::FIELDS {
            assert!(pod_spec(&plain).get(*field).is_none(), "{field}");
        }
    }

    #[test]
    fn every_gpu_container_gets_the_toleration() {
        let mut req = request(json!({"image": "nginx:1.27"}), json!({}));
        req["system"]["services"]["b-gpu"] = json!({"image": "cuda", "deploy": {"resources": {
            "reservations": {"devices": [{"capabilities": ["gpu"], "count": 2, "driver": "nvidia"}]}}}});
        req["system"]["services"]["c-amd"] = json!({"image": "rocm", "deploy": {"resources": {
            "reservations": {"devices": [{"capabilities": ["gpu"], "driver": "amd", "count": 1}]}}}});
        req["system"]["services"]["d-lim"] = json!({"image": "cuda", "deploy": {"resources": {
            "limits": {"gpus": 1}}}});
        req["system"]["gpu_resource"] = json!("nvidia.com/mig-1g.5gb");
        let c = compile(crate::config::default_config(), &req, &options()).expect("compiles");
        let spec = pod_spec(&c);
        assert_eq!(
            spec["tolerations"],
            json!([{"key": "nvidia.com/mig-1g.5gb", "operator": "Exists", "effect": "NoSchedule"},
                   {"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
        );
        let container = |name: &str| {
            spec["containers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .cloned()
                .unwrap()
        };
        let limits = |name: &str| container(name)["resources"]["limits"].clone();
        assert_eq!(container("web-app").get("resources"), None);
        assert_eq!(limits("b-gpu"), json!({"nvidia.com/mig-1g.5gb": 2}));
        assert_eq!(limits("c-amd"), json!({"amd.com/gpu": 1}));
        assert_eq!(limits("d-lim"), json!({"nvidia.com/mig-1g.5gb": 1}));
    }

    #[test]
    fn gpu_devices_all_and_ids_warn_on_kubernetes() {
        let svc = |devices: Value| json!({"image": "cuda", "deploy": {"resources": {"reservations": {"devices": devices}}}});
        let parse = |service: Value| {
            parse_system_with(
                crate::config::default_config(),
                &request(service, json!({})),
                Some(GUID.into()),
                false,
                true,
            )
            .expect("parses")
        };
        let all = parse(svc(json!([{"capabilities": ["gpu"]}])));
        assert_eq!(all.containers[0].compose.gpu_count, Some(1));
        assert!(all.warnings.iter().any(|w| w.message.contains("count all")));
        let ids = parse(svc(
            json!([{"capabilities": ["gpu"], "device_ids": ["0", "3"]}]),
        ));
        assert_eq!(ids.containers[0].compose.gpu_count, Some(2));
        assert!(ids
            .warnings
            .iter()
            .any(|w| w.message.contains("device_ids")));
        let limited = parse(json!({"image": "cuda", "deploy": {"resources": {
            "limits": {"gpus": 3}, "reservations": {"devices": [{"capabilities": ["gpu"], "count": 1}]}}}}));
        assert_eq!(limited.containers[0].compose.gpu_count, None);
        assert!(limited
            .warnings
            .iter()
            .any(|w| w.message.contains("gives way")));
        let other = parse(svc(json!([{"capabilities": ["tpu"]}])));
        assert!(other.containers[0].compose.gpu_devices.is_none());
        assert!(other
            .warnings
            .iter()
            .any(|w| w.message.contains("only GPUs")));
        for (bad, words) in [
            (
                json!([{"capabilities": ["gpu"], "count": 1, "device_ids": ["0"]}]),
                "exclude",
            ),
            (json!([{"capabilities": ["gpu"], "count": "many"}]), "many"),
            (json!([{"count": 1}]), "capabilities"),
            (json!({"count": 1}), "must be a list"),
        ] {
            let e = parse_system_with(
                crate::config::default_config(),
                &request(svc(bad), json!({})),
                Some(GUID.into()),
                false,
                true,
            )
            .unwrap_err();
            assert!(
                e.message.contains(words) && e.message.contains("web-app"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn a_username_that_is_no_label_value_is_labelled_with_its_slug() {
        let email = "Jane.Doe@example.org";
        let mut req = request(
            json!({"image": "nginx:1.27"}),
            json!({"web-app": {"port": 80}}),
        );
        req["principal"] = json!(format!("{{\"username\": \"{email}\"}}"));
        let c = compile(crate::config::default_config(), &req, &options()).expect("compiles");
        let slug = crate::text::names::username_label(email).into_owned();
        let d = &c.deployment;
        assert_eq!(d["metadata"]["labels"]["username"], slug.as_str());
        assert_eq!(
            d["spec"]["selector"]["matchLabels"]["username"],
            slug.as_str()
        );
        assert_eq!(
            d["metadata"]["annotations"][crate::text::names::USERNAME_ANNOTATION],
            email
        );
        let template = &d["spec"]["template"]["metadata"];
        assert_eq!(template["labels"]["username"], slug.as_str());
        assert_eq!(
            template["annotations"][crate::text::names::USERNAME_ANNOTATION],
            email
        );
        for (_, service) in &c.services {
            assert_eq!(service["metadata"]["labels"]["username"], slug.as_str());
        }
        // The real name where a name is used: env, home directory.
        let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
        let value = |name: &str| {
            env.as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .map(|e| e["value"].clone())
        };
        assert_eq!(value("USER_NAME"), Some(json!(email)));
        assert_eq!(value("USER"), Some(json!(email)));
        assert!(c.system.containers[0]
            .volumes
            .iter()
            .any(|v| v.contains(email)));
        // A valid label value: labelled as itself, no annotation.
        let plain = compile_one(json!({"image": "nginx:1.27"}), json!({}));
        assert!(plain.deployment["metadata"].get("annotations").is_none());
        assert!(plain.deployment["spec"]["template"]["metadata"]
            .get("annotations")
            .is_none());
        // A name that cannot be a directory is refused, naming the field.
        req["principal"] = json!("{\"username\": \"../etc\"}");
        let e = compile(crate::config::default_config(), &req, &options()).unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("principal.username"),
            "{}",
            e.message
        );
    }
}
