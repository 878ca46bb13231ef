//! Starting a system: at most four sequential stages of API calls; two (stages 2 and
//! 3) when the watch cache (`cache`) is warm.
//!
//! 1. Concurrent reads by name: the Ambassador Service (`AMBASSADOR_SVC_NAME`, default
//!    `ambassador`), the `<app>-env` Secret and each claim the system mounts (stdnfs
//!    exempt). Not found is an answer; any other failure stops the start (nothing has
//!    been created yet). From the watch cache for the names it watches (the Secret
//!    unless `TYCHO_KUBE_CACHE_SECRETS=off`).
//! 2. Create the Deployment.
//! 3. Create the Services and the token Secret and the NetworkPolicy, concurrently, all
//!    owned by the Deployment (ownerReferences with its uid). The Secret exists when the
//!    principal has an access token and `access_token_env` is `secret` (see
//!    [`crate::compile::token_secret`]); its values are redacted from every message and log line of
//!    the start.
//! 4. Read the Deployment back: a delete of the system that ran meanwhile (from any
//!    process) removed it, or (in this process) cancelled the start. With a fresh
//!    cache, no request: whether its Deployments watch saw that uid deleted. (A delete
//!    elsewhere that the watch has not delivered yet goes unseen here; the objects of
//!    stage 3 are owned by the Deployment, so the garbage collector removes them.)
//!
//! What the start creates is applied to the process's cache (read your own writes).
//!
//! When stage 2 or 3 fails, the Deployment vanished, a delete of the GUID ran, or the
//! operation times out, every object labelled with the system's GUID (and any created
//! object that lacks the label, by name) is deleted before the error is returned.
//! Rendering runs on the CPU worker pool (`crate::offload`), off the async threads.

use super::cache;
use super::client;
use super::error::{summarise, Cause, KubeError};
use super::inflight;
use super::retry;
use super::{err, Kind, GUID_LABEL, LOG_TARGET};
use crate::compile;
use crate::error::{Error, ErrorKind, Result};
use crate::model::System;
use crate::text::names;
use futures::future::join_all;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject};
use serde_json::{json, Map, Value};
use std::sync::Mutex;

const KIND: ErrorKind = ErrorKind::Start;

/// Rebuilds a [`System`] from its plain form (`tycho.model.System.to_dict()`, or the
/// output of `parse_system`). A hand-built `tycho.model.System` may lack probe,
/// identity, command and limits attributes; they default to none.
pub fn system_from_value(value: &Value) -> Result<System> {
    let mut value = value.clone();
    let fill = |map: &mut Map<String, Value>, keys: &[&str], empty: Value| {
        for key in keys {
            if map.get(*key).is_none_or(Value::is_null) {
                map.insert(key.to_string(), empty.clone());
            }
        }
    };
    if let Some(map) = value.as_object_mut() {
        fill(map, &["volumes", "extra_env"], json!([]));
        fill(
            map,
            &[
                "system_env",
                "annotations",
                "security_context",
                "init_security_context",
                "services",
            ],
            json!({}),
        );
    }
    if let Some(Value::Array(containers)) = value.get_mut("containers") {
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            fill(c, &["volumes", "ports", "expose", "env"], json!([]));
            for key in [
                "liveness_probe",
                "readiness_probe",
                "identity",
                "depends_on",
                "command",
            ] {
                c.entry(key).or_insert(Value::Null);
            }
            for key in ["limits", "requests"] {
                if c.get(key).is_none_or(Value::is_null) {
                    c.insert(
                        key.into(),
                        json!({"cpus": null, "gpus": null, "memory": null, "ephemeralStorage": null}),
                    );
                }
            }
        }
    }
    serde_json::from_value(value).map_err(|e| {
        Error::input(format!(
            "the system to start is not a valid tycho system model: {e}"
        ))
    })
}

/// What became of a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Created (or found ours after an unknown outcome).
    Created,
    /// Refused by the API server: nothing was created (e.g. 409 on the first attempt, 422).
    Refused,
    /// Unknown: failed in a way that may have been applied, or cancelled by the timeout.
    Unknown,
}

/// A create that was attempted.
struct Attempt {
    kind: Kind,
    name: String,
    /// Carries our `tycho-guid` label (else clean-up deletes it by name).
    labelled: bool,
    outcome: Outcome,
}

/// The creates attempted so far (shared with the clean-up after a failure or timeout).
type Attempted = Mutex<Vec<Attempt>>;

fn name_of(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn has_guid_label(object: &Value, guid: &str) -> bool {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(GUID_LABEL))
        .and_then(Value::as_str)
        == Some(guid)
}

fn checks(system: &System) -> Result<()> {
    let bad = |what: &str, value: &str| {
        err(
            KIND,
            format!(
                "Unable to start system: the system's {what} {value:?} is not valid for Kubernetes"
            ),
        )
    };
    if !names::is_dns_subdomain(&system.name) {
        return Err(bad("name", &system.name));
    }
    if !names::is_dns_label(&system.system_name, 63) {
        return Err(bad("app name", &system.system_name));
    }
    if system.identifier.is_empty() || !names::is_dns_label(&system.identifier, 63) {
        return Err(bad("GUID", &system.identifier));
    }
    // Any username but one that cannot name a home directory: its label is a slug when
    // it is no label value (names::username_label).
    if names::check_username(&system.username).is_err() {
        return Err(bad("username", &system.username));
    }
    for v in &system.volumes {
        if v.volume_name != "stdnfs" && !names::is_dns_label(&v.volume_name, 63) {
            return Err(bad("claim name", &v.volume_name));
        }
    }
    Ok(())
}

/// Starts `system` (blocking; on the executor's runtime). See [`start_async`].
pub fn start(config: &Value, system: System, namespace: Option<&str>) -> Result<Value> {
    client::block_on(KIND, start_async(config, system, namespace))
}

/// Starts `system` in `namespace` (None: the configured namespace) and returns
/// `{"name", "sid", "containers": {container: {"ip_address", <port name>: nodePort}},
/// "conn_string"}`. Errors are `ErrorKind::Start`; on
/// any failure after the first create nothing of the system is left.
pub async fn start_async(config: &Value, system: System, namespace: Option<&str>) -> Result<Value> {
    let secrets = crate::compile::token_secret::sensitive_texts(&system);
    REDACT
        .scope(secrets.clone(), start_inner(config, system, namespace))
        .await
        .map_err(|mut e| {
            e.message = crate::compile::token_secret::redact(&e.message, &secrets);
            e
        })
}

tokio::task_local! {
    /// The token texts of the system being started: [`redact_current`] hides them.
    static REDACT: Vec<String>;
}

/// `text` with the tokens of the system this task is starting replaced by a
/// placeholder (unchanged outside a start). Every API failure description goes
/// through it, so an API server that echoes an object cannot put a token in a log
/// line or an error.
pub(crate) fn redact_current(text: String) -> String {
    REDACT
        .try_with(|secrets| crate::compile::token_secret::redact(&text, secrets))
        .unwrap_or(text)
}

/// A refused Secret create: name the RBAC rule and the setting.
fn secret_hint(mut problem: KubeError, namespace: &str) -> KubeError {
    if problem.code() != Some(403) {
        return problem;
    }
    problem.message = format!(
        "{}; tycho's service account needs the RBAC rule `create secrets` in namespace {namespace} (apiGroups [\"\"], resources [\"secrets\"], verbs [\"create\"]; see deploy/role.yaml) to deliver ACCESS_TOKEN, or set {} (TYCHO_ACCESS_TOKEN_ENV) to `literal` or `off`",
        problem.message,
        crate::config::ACCESS_TOKEN_ENV_SETTING
    );
    problem
}

async fn start_inner(config: &Value, system: System, namespace: Option<&str>) -> Result<Value> {
    checks(&system)?;
    let settings = client::settings();
    let connection = client::connection(KIND, &settings).await?;
    let namespace = client::resolve_namespace(KIND, namespace, &connection, &settings)?;
    let client = &connection.client;
    let name = system.name.clone();
    let guid = system.identifier.clone();
    let attempted: Attempted = Mutex::new(Vec::new());
    let in_flight = inflight::Start::register(&guid);
    let cache = cache::namespace(&settings, &connection, &namespace);
    let ctx = Ctx {
        client,
        namespace: &namespace,
        guid: &guid,
        attempted: &attempted,
        settings: &settings,
        cache: cache.as_deref(),
    };
    let outcome = tokio::time::timeout(
        settings.operation_timeout,
        run(config, system, &ctx, &in_flight),
    )
    .await
    .unwrap_or_else(|_| {
        Err(KubeError::new(
            Cause::Timeout,
            format!(
                "timed out after {:?} (TYCHO_KUBE_TIMEOUT)",
                settings.operation_timeout
            ),
        ))
    });
    let failure = match outcome {
        Ok(result) => {
            log::info!(target: LOG_TARGET, "started system {name} in namespace {namespace}");
            return Ok(result);
        }
        Err(failure) => failure,
    };
    let attempted = std::mem::take(&mut *attempted.lock().unwrap_or_else(|p| p.into_inner()));
    // A policy refusal keeps its kind (HTTP 400 from tycho api; StartException).
    let kind = if failure.cause == Cause::Policy {
        ErrorKind::Policy
    } else {
        KIND
    };
    // Nothing to remove when every create was refused: in particular a second start of
    // a running system (409 AlreadyExists) must not delete the running one.
    if attempted.iter().all(|a| a.outcome == Outcome::Refused) {
        log::warn!(target: LOG_TARGET, "starting system {name} failed: {failure}");
        return Err(err(
            kind,
            format!("Unable to start system {name}: {failure}"),
        ));
    }
    log::warn!(target: LOG_TARGET, "starting system {name} failed: {failure}; removing what was created");
    let unlabelled: Vec<(Kind, String)> = attempted
        .into_iter()
        .filter(|a| !a.labelled && a.outcome != Outcome::Refused)
        .map(|a| (a.kind, a.name))
        .collect();
    let cleanup = tokio::time::timeout(
        settings.operation_timeout,
        super::delete::cleanup(client, &namespace, &guid, &unlabelled),
    )
    .await
    .unwrap_or_else(|_| {
        Err(vec![(
            "clean-up".to_string(),
            KubeError::new(Cause::Timeout, "timed out"),
        )])
    });
    if let Some(cache) = &cache {
        // What was removed is gone from this process's cache too.
        cache.deleted_guid(&guid);
    }
    match cleanup {
        Ok(()) => Err(err(
            kind,
            format!(
                "Unable to start system {name}: {failure} (everything created for it was removed)"
            ),
        )),
        Err(problems) => {
            let problems = summarise(&problems);
            log::error!(target: LOG_TARGET, "clean-up of system {name} failed: {problems}");
            Err(err(
                KIND,
                format!(
                    "Unable to start system {name}: {failure}; removing what was created failed too: {problems} (delete the system {guid} again)"
                ),
            ))
        }
    }
}

async fn get_opt<K>(
    api: &Api<K>,
    what: String,
    name: &str,
) -> std::result::Result<Option<K>, KubeError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    retry::idempotent(&what, || api.get_opt(name))
        .await
        .map_err(|e| e.context(format!("cannot read {what}")))
}

/// What the cluster tells about the system before it is rendered.
struct Facts {
    ambassador: bool,
    missing_claims: Vec<String>,
    secret_env: Vec<(String, String)>,
}

/// The object `name` of `kind`: from the watch cache when it knows the name, else read
/// from the API server.
async fn lookup<K>(
    cache: Option<&cache::Namespace>,
    kind: Kind,
    api: &Api<K>,
    name: &str,
) -> std::result::Result<Option<K>, KubeError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let what = format!("{} {name:?}", kind.name());
    if let Some(known) = cache.and_then(|c| c.named(kind, name)) {
        return known
            .map(|object| {
                serde_json::from_value(object.as_ref().clone())
                    .map_err(|e| KubeError::invalid(format!("cannot read {what}: {e}")))
            })
            .transpose();
    }
    get_opt(api, what, name).await
}

async fn read_facts(
    system: &System,
    client: &kube::Client,
    namespace: &str,
    settings: &client::Settings,
    cache: Option<&cache::Namespace>,
) -> std::result::Result<Facts, KubeError> {
    let ambassador_name = settings.ambassador_service.clone();
    if !names::is_dns_label(&ambassador_name, 63) {
        return Err(KubeError::invalid(format!(
            "AMBASSADOR_SVC_NAME {ambassador_name:?} is not a valid Service name"
        )));
    }
    let secret_name = format!("{}-env", system.system_name);
    let mut claims: Vec<&str> = Vec::new();
    let mut seen: std::collections::HashSet<&str> = Default::default();
    for v in &system.volumes {
        if v.volume_name != "stdnfs" && seen.insert(v.volume_name.as_str()) {
            claims.push(&v.volume_name);
        }
    }
    let services = Kind::Service.api(client, namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let pvcs = Kind::PersistentVolumeClaim.api(client, namespace);
    let ambassador = lookup(cache, Kind::Service, &services, &ambassador_name);
    let secret_cache = cache.filter(|_| settings.cache_secrets);
    let secret = lookup(secret_cache, Kind::Secret, &secrets, &secret_name);
    let claim_reads = join_all(
        claims
            .iter()
            .map(|claim| lookup(cache, Kind::PersistentVolumeClaim, &pvcs, claim)),
    );
    let (ambassador, secret, claim_reads) = tokio::join!(ambassador, secret, claim_reads);
    let ambassador = ambassador?.is_some();
    let mut missing_claims = Vec::new();
    for (claim, found) in claims.iter().zip(claim_reads) {
        if found?.is_none() {
            log::info!(target: LOG_TARGET, "claim {claim} does not exist: its mounts are dropped");
            missing_claims.push(claim.to_string());
        }
    }
    let mut secret_env = Vec::new();
    if let Some(secret) = secret? {
        for (key, bytes) in secret.data.unwrap_or_default() {
            let value = String::from_utf8(bytes.0).map_err(|_| {
                KubeError::invalid(format!(
                    "Secret {secret_name:?} key {key:?} is not UTF-8 text"
                ))
            })?;
            secret_env.push((key, value));
        }
        for (key, value) in secret.string_data.unwrap_or_default() {
            secret_env.push((key, value));
        }
    }
    Ok(Facts {
        ambassador,
        missing_claims,
        secret_env,
    })
}

/// The object as kube-rs sends it, taken over (not copied: a pod may hold megabytes of
/// environment).
fn to_dynamic(object: Value) -> std::result::Result<DynamicObject, KubeError> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_string();
    let name = name_of(&object);
    serde_json::from_value(object).map_err(|e| {
        KubeError::invalid(format!(
            "rendered {kind} {name:?} is not a Kubernetes object: {e}"
        ))
    })
}

fn record(attempted: &Attempted, kind: Kind, object: &Value, guid: &str) -> usize {
    let mut list = attempted.lock().unwrap_or_else(|p| p.into_inner());
    list.push(Attempt {
        kind,
        name: name_of(object),
        labelled: has_guid_label(object, guid),
        outcome: Outcome::Unknown,
    });
    list.len() - 1
}

fn settle(attempted: &Attempted, index: usize, outcome: Outcome) {
    if let Some(a) = attempted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(index)
    {
        a.outcome = outcome;
    }
}

async fn create_object(
    ctx: &Ctx<'_>,
    object: Value,
) -> std::result::Result<DynamicObject, KubeError> {
    let Ctx {
        client,
        namespace,
        guid,
        attempted,
        ..
    } = *ctx;
    let kind = Kind::of(&object).ok_or_else(|| {
        KubeError::invalid(format!(
            "rendered object {:?} has a kind tycho does not create: {}",
            name_of(&object),
            object.get("kind").unwrap_or(&Value::Null)
        ))
    })?;
    let name = name_of(&object);
    let what = format!("{} {name:?}", kind.name());
    let index = record(attempted, kind, &object, guid);
    let dynamic = to_dynamic(object)?;
    let api = kind.api(client, namespace);
    let created = match retry::create(&api, &what, &name, guid, &dynamic).await {
        Ok(created) => {
            settle(attempted, index, Outcome::Created);
            created
        }
        Err(e) => {
            if !e.transient() {
                settle(attempted, index, Outcome::Refused);
            }
            return Err(e.context(format!("cannot create {what}")));
        }
    };
    log::debug!(target: LOG_TARGET, "created {what}");
    // Read your own writes: the process's cache shows it from now on.
    if let Some(reflector) = ctx.cache.and_then(|c| c.of_kind(kind)) {
        reflector.wrote(serde_json::to_value(&created).unwrap_or_default());
    }
    Ok(created)
}

/// The address a Service is reachable at from outside: its load-balancer ingress.
pub(crate) fn ingress_address(service: &Value) -> Value {
    service
        .pointer("/status/loadBalancer/ingress/0")
        .and_then(|i| {
            i.get("ip")
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                .or_else(|| {
                    i.get("hostname")
                        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                })
        })
        .cloned()
        .unwrap_or(Value::Null)
}

/// The message of a start that a delete of its system overtook.
const DELETED: &str = "the system was deleted while it was starting";

fn check_cancelled(in_flight: &inflight::Start) -> std::result::Result<(), KubeError> {
    if in_flight.cancelled() {
        Err(KubeError::new(Cause::Overtaken, DELETED))
    } else {
        Ok(())
    }
}

/// Adds an ownerReference to the Deployment `name`/`uid` unless the object has one.
fn owned_by(mut object: Value, name: &str, uid: &str) -> Value {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return object;
    };
    let refs = meta
        .entry("ownerReferences")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !refs.is_array() {
        *refs = Value::Array(Vec::new());
    }
    let list = refs.as_array_mut().expect("an array");
    if !list
        .iter()
        .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
    {
        list.push(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "controller": true,
            "name": name,
            "uid": uid,
        }));
    }
    object
}

/// Renders the system on the CPU worker pool.
async fn render(
    config: &Value,
    system: System,
    uid: Option<String>,
) -> std::result::Result<compile::Compiled, KubeError> {
    let config = config.clone();
    crate::offload::run(KIND, "rendering the system", move || {
        compile::compile_system(&config, system, uid.as_deref())
    })
    .await
    .and_then(|r| r)
    .map_err(|e| {
        if e.kind == ErrorKind::Policy {
            KubeError::new(Cause::Policy, e.message)
        } else {
            KubeError::invalid(e.message)
        }
    })
}

/// Stage 4: the Deployment `name` with `uid` still exists. With a fresh watch cache,
/// what it saw: the Deployment was not deleted (nor replaced) since it was created.
async fn check_deployment(
    ctx: &Ctx<'_>,
    name: &str,
    uid: &str,
) -> std::result::Result<(), KubeError> {
    let what = format!("Deployment {name:?}");
    if let Some(deployments) = ctx.cache.map(|c| &c.deployments) {
        if deployments.fresh() {
            return if deployments.saw_deleted(uid) {
                Err(KubeError::new(
                    Cause::Overtaken,
                    format!("{DELETED} ({what} vanished)"),
                ))
            } else {
                Ok(())
            };
        }
    }
    let api = Kind::Deployment.api(ctx.client, ctx.namespace);
    let found = get_opt(&api, what.clone(), name).await?;
    match found {
        Some(d) if d.metadata.uid.as_deref() == Some(uid) => Ok(()),
        _ => Err(KubeError::new(
            Cause::Overtaken,
            format!("{DELETED} ({what} vanished)"),
        )),
    }
}

/// What the stages of a start share.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    client: &'a kube::Client,
    namespace: &'a str,
    guid: &'a str,
    attempted: &'a Attempted,
    settings: &'a client::Settings,
    cache: Option<&'a cache::Namespace>,
}

async fn run(
    config: &Value,
    mut system: System,
    ctx: &Ctx<'_>,
    in_flight: &inflight::Start,
) -> std::result::Result<Value, KubeError> {
    let Ctx {
        client, namespace, ..
    } = *ctx;
    // Stage 1: what the cluster knows (from the watch cache when warm).
    let facts = read_facts(&system, client, namespace, ctx.settings, ctx.cache).await?;
    compile::apply_cluster_facts(
        &mut system,
        facts.ambassador,
        &facts.missing_claims,
        &facts.secret_env,
    )
    .map_err(|e| KubeError::invalid(e.message))?;
    let compile::Compiled {
        system,
        deployment,
        network_policy,
        ..
    } = render(config, system, None).await?;
    // The registry's count (tycho.policy.enforce_count): before anything is created.
    let limit = super::count::Limit::of(
        crate::compile::policy::enforce_count(config),
        system.count,
        &deployment,
    );
    if let Some(limit) = &limit {
        limit.check(client, namespace).await?;
    }
    check_cancelled(in_flight)?;

    // Stage 2: the Deployment (handed over: its copy in the request is the only one).
    let deployment = create_object(ctx, deployment).await?;
    if let Some(limit) = &limit {
        // Again, now that ours exists: of two starts racing past the first check, each
        // sees the other (this start is then rolled back like any failed one).
        limit.check(client, namespace).await?;
    }
    let uid = deployment.metadata.uid.clone().ok_or_else(|| {
        KubeError::invalid(format!(
            "the API server returned Deployment {:?} without a uid",
            system.name
        ))
    })?;
    drop(deployment);
    check_cancelled(in_flight)?;

    // Stage 3: Services, the token Secret and the NetworkPolicy, together, all owned by
    // the Deployment.
    let deployment_name = system.name.clone();
    // The pod is rendered once (stage 1); the Services again, now with the uid their
    // templates put in ownerReferences.
    let services_rendered = {
        let config = config.clone();
        let system = system.clone();
        let uid = uid.clone();
        crate::offload::run(KIND, "rendering the Services", move || {
            compile::render_services(&config, &system, &uid)
        })
        .await
        .and_then(|r| r)
        .map_err(|e| KubeError::invalid(e.message))?
    };
    let token_mode =
        crate::config::access_token_env(config).map_err(|e| KubeError::invalid(e.message))?;
    let owned_secret = crate::compile::token_secret::secret_object(&system, token_mode, Some(&uid));
    check_cancelled(in_flight)?;
    let policy = network_policy.map(|p| owned_by(p, &deployment_name, &uid));
    let secret_object = owned_secret.map(|s| owned_by(s, &deployment_name, &uid));
    let secret = async {
        match secret_object {
            Some(s) => create_object(ctx, s)
                .await
                .map(|_| ())
                .map_err(|e| secret_hint(e, namespace)),
            None => Ok(()),
        }
    };
    let policy = async {
        match policy {
            Some(p) => create_object(ctx, p).await.map(Some),
            None => Ok(None),
        }
    };
    let mut container_names = Vec::with_capacity(services_rendered.len());
    let mut service_objects = Vec::with_capacity(services_rendered.len());
    for (container, s) in services_rendered {
        container_names.push(container);
        service_objects.push(owned_by(s, &deployment_name, &uid));
    }
    let services = join_all(service_objects.into_iter().map(|s| create_object(ctx, s)));
    let (policy, services, secret) = tokio::join!(policy, services, secret);
    let mut problems: Vec<KubeError> = Vec::new();
    if let Err(e) = policy {
        problems.push(e);
    }
    if let Err(e) = secret {
        problems.push(e);
    }
    let mut containers = Map::new();
    for (container, created) in container_names.into_iter().zip(services) {
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let created = serde_json::to_value(&created).unwrap_or_default();
        let Some(port) = created.pointer("/spec/ports/0") else {
            continue;
        };
        let port_name = port
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("port")
            .to_string();
        let mut entry = Map::new();
        entry.insert("ip_address".into(), ingress_address(&created));
        entry.insert(
            port_name,
            port.get("nodePort").cloned().unwrap_or(Value::Null),
        );
        containers.insert(container, Value::Object(entry));
    }
    if let Some(first) = problems.first() {
        let message = problems
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(KubeError::new(first.cause.clone(), message));
    }
    // Stage 4: a delete that ran meanwhile wins.
    check_cancelled(in_flight)?;
    check_deployment(ctx, &deployment_name, &uid).await?;
    check_cancelled(in_flight)?;
    Ok(json!({
        "name": system.name,
        "sid": system.identifier,
        "containers": containers,
        "conn_string": system.conn_string,
    }))
}
