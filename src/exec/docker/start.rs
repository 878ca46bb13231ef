//! Starting a system on the Engine, all or nothing.
//!
//! 1. The images (concurrently): present, else pulled (`pull: missing`), else the start
//!    fails naming the image. Then the named volumes of the `pvc://` mounts: one that
//!    exists must be tycho's (labelled `executor=tycho`) or on the allow-list
//!    (`TYCHO_DOCKER_VOLUME_ALLOW`), else the start fails naming it. Nothing has been
//!    created yet.
//! 2. The network, then the named volumes that do not exist yet.
//! 3. The containers (created, then started in compose order), then one inspect each
//!    for the host ports the Engine bound. A default CPU limit above the Engine's CPU
//!    count (`GET /info`) is lowered to it; a container given a gid without a uid runs
//!    as its image's user with that group.
//!
//! Before step 1, the pod the system compiles to is checked against the policy (the
//! pod security level, the ceilings), and the plan's warnings (what the Engine cannot do
//! as Kubernetes does) are logged on `tycho.docker`, or refused in strict mode.
//!
//! When a step after the first fails, every container and the network created for the
//! system, and the volumes this start created, are removed before the error is
//! returned; the error names the image, port or object and the Engine's message. The
//! clean-up removes only objects labelled for the system: a container or network of the
//! same name that someone else made is left alone.

use super::client::{self, DockerConfig, Pull};
use super::mapping::{self, Plan};
use super::security;
use super::{describe, err, is_not_found, LOG_TARGET};
use crate::error::{Error, ErrorKind, Result};
use crate::model::System;
use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{CreateContainerOptions, CreateImageOptions};
use bollard::Docker;
use futures::future::join_all;
use futures::StreamExt;
use serde_json::{json, Map, Value};

const KIND: ErrorKind = ErrorKind::Start;

/// A step of a start failed: the message goes after `Unable to start system <name>: `.
fn failed(message: String) -> Error {
    err(KIND, message)
}

/// Starts `system` (blocking; on the executor's runtime). See [`start_async`].
pub fn start(config: &Value, system: System) -> Result<Value> {
    client::block_on(KIND, start_async(config, system))
}

/// What a failed start leaves to remove.
#[derive(Default)]
struct Created {
    network: bool,
    volumes: Vec<String>,
    containers: Vec<String>,
}

/// Starts `system` and returns `{"name", "sid", "containers": {service: {"ip_address",
/// "port-1": host port, ...}}, "conn_string"}` — the Kubernetes executor's shape; the
/// address and port are where a client on this machine connects. Errors are
/// `ErrorKind::Start`; on any failure after the first create nothing of the system is left.
// Long because: the checks before anything is created (policy, compile, plan, strict mode), then the run and its clean-up.
pub async fn start_async(config: &Value, mut system: System) -> Result<Value> {
    let settings = DockerConfig::from_config(config).map_err(|e| err(KIND, e.message))?;
    let env = read_env_file(&settings, &system.system_name)?;
    crate::compile::apply_cluster_facts(&mut system, false, &[], &env).map_err(|e| {
        err(
            KIND,
            format!("Unable to start system {}: {}", system.name, e.message),
        )
    })?;
    // The same policy as on Kubernetes (pod security level, ceilings), checked on the
    // objects the system compiles to, before anything is created.
    crate::compile::compile_system(config, system.clone(), None).map_err(|e| {
        let kind = if e.kind == ErrorKind::Policy {
            ErrorKind::Policy
        } else {
            KIND
        };
        err(
            kind,
            format!("Unable to start system {}: {}", system.name, e.message),
        )
    })?;
    let plan = mapping::plan(&system, &settings).map_err(|e| {
        err(
            KIND,
            format!("Unable to start system {}: {}", system.name, e.message),
        )
    })?;
    // What the Engine cannot do as Kubernetes does: refused in strict mode, else logged.
    crate::model::warning::check_strict(&plan.warnings, crate::config::strict(config)).map_err(
        |e| {
            err(
                KIND,
                format!("Unable to start system {}: {}", system.name, e.message),
            )
        },
    )?;
    for w in &plan.warnings {
        log::warn!(target: LOG_TARGET, "system {}: {w}", system.name);
    }
    let docker = client::connect(KIND, &settings).await?;
    let mut plan = plan;
    if plan.containers.iter().any(|c| c.default_cpus) {
        // When the Engine does not say, a default above its CPUs fails the create with
        // the Engine's message.
        if let Ok(Some(cpus)) = docker.info().await.map(|i| i.ncpu) {
            plan.fit_default_cpus(cpus);
        }
    }
    let name = system.name.clone();
    let mut created = Created::default();
    let outcome = tokio::time::timeout(
        settings.timeout * 4,
        run(&docker, &settings, &system, &plan, &mut created),
    )
    .await
    .unwrap_or_else(|_| {
        Err(failed(format!(
            "timed out after {:?} (TYCHO_DOCKER_TIMEOUT × 4)",
            settings.timeout * 4
        )))
    });
    let failure = match outcome {
        Ok(result) => {
            log::info!(target: LOG_TARGET, "started system {name} on the Docker Engine");
            return Ok(result);
        }
        Err(failure) => failure,
    };
    if !created.network && created.containers.is_empty() && created.volumes.is_empty() {
        log::warn!(target: LOG_TARGET, "starting system {name} failed: {failure}");
        return Err(failure.prefixed(format_args!("Unable to start system {name}")));
    }
    log::warn!(target: LOG_TARGET, "starting system {name} failed: {failure}; removing what was created");
    let problems = cleanup(&docker, &system.identifier, &plan.network, &created).await;
    if problems.is_empty() {
        Err(err(
            KIND,
            format!(
                "Unable to start system {name}: {failure} (everything created for it was removed)"
            ),
        ))
    } else {
        log::error!(target: LOG_TARGET, "clean-up of system {name} failed: {}", problems.join("; "));
        Err(err(
            KIND,
            format!(
                "Unable to start system {name}: {failure}; removing what was created failed too: {} (delete the system {} again)",
                problems.join("; "),
                system.identifier
            ),
        ))
    }
}

/// The `<app>-env` file of the configured env directory: `KEY=value` lines (`#`
/// comments and blank lines skipped), the Docker form of the `<app>-env` Secret.
fn read_env_file(settings: &DockerConfig, app: &str) -> Result<Vec<(String, String)>> {
    let Some(dir) = &settings.env_dir else {
        return Ok(Vec::new());
    };
    let path = dir.join(format!("{app}-env"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(err(
                KIND,
                format!("cannot read the env file {}: {e}", path.display()),
            ))
        }
    };
    if text.len() > 1 << 20 {
        return Err(err(
            KIND,
            format!("the env file {} is larger than 1 MiB", path.display()),
        ));
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect())
}

async fn ensure_image(docker: &Docker, pull: Pull, image: &str) -> Result<()> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(e) if is_not_found(&e) => {}
        Err(e) => {
            return Err(failed(format!(
                "cannot inspect image {image:?}: {}",
                describe(&e)
            )))
        }
    }
    if pull == Pull::Never {
        return Err(failed(format!(
            "image {image:?} is not present on the Docker Engine (pull policy: never)"
        )));
    }
    log::info!(target: LOG_TARGET, "pulling image {image}");
    let (repo, tag) = split_reference(image);
    let options = CreateImageOptions {
        from_image: Some(repo.to_string()),
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    return Err(failed(format!(
                        "image {image:?} is not present and pulling it failed: {detail}"
                    )));
                }
            }
            Err(e) => {
                return Err(failed(format!(
                    "image {image:?} is not present and pulling it failed: {}",
                    describe(&e)
                )))
            }
        }
    }
    Ok(())
}

/// Ok when an existing volume may be mounted: tycho created it (`executor=tycho`) or
/// it is on the allow-list.
fn admit(
    settings: &DockerConfig,
    v: &mapping::VolumePlan,
    labels: &std::collections::HashMap<String, String>,
) -> Result<()> {
    let ours = labels.get("executor").is_some_and(|e| e == "tycho");
    if ours || settings.volume_allow.contains(&v.name) {
        return Ok(());
    }
    Err(failed(format!(
        "volume {:?} (service '{}', claim {:?}) exists but tycho did not create it (no executor=tycho label); \
         a pvc:// mount uses only tycho's volumes and those named in TYCHO_DOCKER_VOLUME_ALLOW (tycho.docker.volume_allow)",
        v.name, v.service, v.claim
    )))
}

/// `repo[:tag][@digest]` → (repo, tag or digest); the tag defaults to `latest`.
fn split_reference(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// The three numbered stages of a start (images, network and volumes, containers),
/// each recording what it created for the clean-up.
async fn run(
    docker: &Docker,
    settings: &DockerConfig,
    system: &System,
    plan: &Plan,
    created: &mut Created,
) -> Result<Value> {
    // 1. Images.
    ensure_images(docker, settings, plan).await?;
    let image_users = image_users(docker, plan).await?;
    let missing = missing_volumes(docker, settings, plan).await?;

    // 2. Network and volumes.
    create_network(docker, plan, created).await?;
    create_volumes(docker, settings, missing, created).await?;

    // 3. Containers.
    create_containers(docker, plan, &image_users, created).await?;
    start_containers(docker, plan).await?;
    let containers = published_ports(docker, settings, plan).await?;
    Ok(json!({
        "name": system.name,
        "sid": system.identifier,
        "containers": containers,
        "conn_string": system.conn_string,
    }))
}

/// Each image of the plan present (concurrently), else pulled as the pull policy says;
/// the error names every image that is not.
async fn ensure_images(docker: &Docker, settings: &DockerConfig, plan: &Plan) -> Result<()> {
    let mut images: Vec<&str> = Vec::new();
    for c in &plan.containers {
        if !images.contains(&c.image.as_str()) {
            images.push(&c.image);
        }
    }
    let checks = join_all(
        images
            .iter()
            .map(|i| ensure_image(docker, settings.pull, i)),
    )
    .await;
    let problems: Vec<String> = checks
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.message))
        .collect();
    if !problems.is_empty() {
        return Err(failed(problems.join("; ")));
    }
    Ok(())
}

/// The user of each image whose container has a gid without a uid: that container goes
/// with the image's user (as a pod's runAsGroup alone).
async fn image_users<'p>(
    docker: &Docker,
    plan: &'p Plan,
) -> Result<std::collections::HashMap<&'p str, String>> {
    let mut image_users: std::collections::HashMap<&str, String> = Default::default();
    for c in plan.containers.iter().filter(|c| c.group.is_some()) {
        if !image_users.contains_key(c.image.as_str()) {
            let inspected = docker.inspect_image(&c.image).await.map_err(|e| {
                failed(format!(
                    "cannot inspect image {:?}: {}",
                    c.image,
                    describe(&e)
                ))
                .caused_by(e)
            })?;
            let user = inspected.config.and_then(|c| c.user).unwrap_or_default();
            image_users.insert(&c.image, user);
        }
    }
    Ok(image_users)
}

/// The plan's volumes that do not exist yet; one that exists must be tycho's or an
/// allowed one, else the error names it.
async fn missing_volumes<'p>(
    docker: &Docker,
    settings: &DockerConfig,
    plan: &'p Plan,
) -> Result<Vec<&'p mapping::VolumePlan>> {
    let inspected = join_all(plan.volumes.iter().map(|v| async move {
        match docker.inspect_volume(&v.name).await {
            Ok(found) => admit(settings, v, &found.labels).map(|_| None),
            Err(e) if is_not_found(&e) => Ok(Some(v)),
            Err(e) => Err(failed(format!(
                "cannot inspect volume {:?}: {}",
                v.name,
                describe(&e)
            ))),
        }
    }))
    .await;
    let mut missing = Vec::new();
    let mut problems = Vec::new();
    for r in inspected {
        match r {
            Ok(Some(v)) => missing.push(v),
            Ok(None) => {}
            Err(e) => problems.push(e.message),
        }
    }
    if !problems.is_empty() {
        return Err(failed(problems.join("; ")));
    }
    Ok(missing)
}

/// Creates the system's network.
async fn create_network(docker: &Docker, plan: &Plan, created: &mut Created) -> Result<()> {
    // Recorded first: a create whose answer is lost may still have happened.
    created.network = true;
    docker
        .create_network(NetworkCreateRequest {
            name: plan.network.clone(),
            driver: Some("bridge".into()),
            labels: Some(plan.labels.clone()),
            ..Default::default()
        })
        .await
        .map_err(|e| {
            failed(format!(
                "cannot create network {:?}: {}",
                plan.network,
                describe(&e)
            ))
            .caused_by(e)
        })?;
    Ok(())
}

/// Creates the `missing` volumes.
async fn create_volumes(
    docker: &Docker,
    settings: &DockerConfig,
    missing: Vec<&mapping::VolumePlan>,
    created: &mut Created,
) -> Result<()> {
    for v in missing {
        let volume = &v.name;
        let made = docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(mapping::volume_labels(&v.claim)),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                failed(format!("cannot create volume {volume:?}: {}", describe(&e))).caused_by(e)
            })?;
        // The Engine answers a create of an existing name with that volume: one made in
        // the meantime by someone else is refused like any other, and is not removed.
        admit(settings, v, &made.labels)?;
        created.volumes.push(volume.clone());
    }
    Ok(())
}

/// Creates the plan's containers, in compose order.
async fn create_containers(
    docker: &Docker,
    plan: &Plan,
    image_users: &std::collections::HashMap<&str, String>,
    created: &mut Created,
) -> Result<()> {
    for c in &plan.containers {
        let options = CreateContainerOptions {
            name: Some(c.name.clone()),
            ..Default::default()
        };
        // Recorded first: a create whose answer is lost may still have happened.
        created.containers.push(c.name.clone());
        let mut body = c.body.clone();
        if let Some(gid) = &c.group {
            let image_user = image_users.get(c.image.as_str()).map(String::as_str);
            body.user = Some(security::with_image_user(
                image_user.unwrap_or_default(),
                gid,
            ));
        }
        docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| {
                failed(format!(
                    "cannot create container {:?} (service '{}', image {:?}): {}",
                    c.name,
                    c.service,
                    c.image,
                    describe(&e)
                ))
                .caused_by(e)
            })?;
    }
    Ok(())
}

/// Starts the plan's containers, in compose order; the error names the container's
/// port bindings.
async fn start_containers(docker: &Docker, plan: &Plan) -> Result<()> {
    for c in &plan.containers {
        docker.start_container(&c.name, None).await.map_err(|e| {
            let ports = bindings_text(c);
            let ports = if ports.is_empty() {
                String::new()
            } else {
                format!(", ports {}", ports.join(", "))
            };
            failed(format!(
                "cannot start container {:?} (service '{}', image {:?}{ports}): {}",
                c.name,
                c.service,
                c.image,
                describe(&e)
            ))
            .caused_by(e)
        })?;
    }
    Ok(())
}

/// Container `c`'s port bindings as `host ip:host port->container port/protocol`
/// (`*` for a port the Engine picks).
fn bindings_text(c: &mapping::ContainerPlan) -> Vec<String> {
    c.body
        .host_config
        .as_ref()
        .and_then(|h| h.port_bindings.as_ref())
        .map(|b| {
            b.iter()
                .flat_map(|(k, v)| {
                    v.iter().flatten().map(move |pb| {
                        format!(
                            "{}:{}->{k}",
                            pb.host_ip.clone().unwrap_or_default(),
                            pb.host_port
                                .clone()
                                .filter(|p| !p.is_empty())
                                .unwrap_or_else(|| "*".into())
                        )
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `{service: {"ip_address", "port-1": host port, ...}}` of the containers that publish
/// ports, from one inspect each.
async fn published_ports(
    docker: &Docker,
    settings: &DockerConfig,
    plan: &Plan,
) -> Result<Map<String, Value>> {
    let mut containers = Map::new();
    for c in plan.containers.iter().filter(|c| !c.published.is_empty()) {
        let inspected = docker.inspect_container(&c.name, None).await.map_err(|e| {
            failed(format!(
                "cannot inspect container {:?}: {}",
                c.name,
                describe(&e)
            ))
            .caused_by(e)
        })?;
        let inspected = serde_json::to_value(&inspected).unwrap_or_default();
        containers.insert(
            c.service.clone(),
            Value::Object(host_ports(settings, c, &inspected)),
        );
    }
    Ok(containers)
}

/// `{"ip_address", "port-1": host port, ...}` of container `c` from its inspect.
fn host_ports(
    settings: &DockerConfig,
    c: &mapping::ContainerPlan,
    inspected: &Value,
) -> Map<String, Value> {
    let mut entry = Map::new();
    let mut ip = Value::Null;
    for (i, key) in c.published.iter().enumerate() {
        let binding = inspected.pointer(&format!(
            "/NetworkSettings/Ports/{}/0",
            key.replace('/', "~1")
        ));
        let port = binding
            .and_then(|b| b.get("HostPort"))
            .and_then(Value::as_str)
            .and_then(|p| p.parse::<u16>().ok());
        if ip.is_null() {
            ip = binding
                .and_then(|b| b.get("HostIp"))
                .and_then(Value::as_str)
                .map(|s| {
                    Value::String(if s.is_empty() {
                        settings.bind_address.clone()
                    } else {
                        s.to_string()
                    })
                })
                .unwrap_or(Value::Null);
        }
        entry.insert(
            format!("port-{}", i + 1),
            port.map(Value::from).unwrap_or(Value::Null),
        );
    }
    let mut ordered = Map::new();
    ordered.insert("ip_address".into(), ip);
    ordered.extend(entry);
    ordered
}

/// Removes what a failed start created: its containers, its network and the volumes
/// it created; a container or network is removed only when it carries the system's
/// labels (one of the same name that someone else made stays). Returns the problems
/// (empty when everything is gone).
async fn cleanup(docker: &Docker, guid: &str, network: &str, created: &Created) -> Vec<String> {
    let mut problems = super::delete::remove_containers(docker, guid, &created.containers).await;
    if created.network {
        if let Err(e) = super::delete::remove_system_network(docker, guid, network).await {
            problems.push(e.message);
        }
    }
    for volume in &created.volumes {
        match docker
            .remove_volume(
                volume,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            // Another system started meanwhile mounts it: the volume is its now.
            Err(e) if super::status_code(&e) == Some(409) => {}
            Err(e) => problems.push(format!("cannot remove volume {volume:?}: {}", describe(&e))),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("busybox"), ("busybox", "latest"));
        assert_eq!(split_reference("busybox:1.36"), ("busybox", "1.36"));
        assert_eq!(
            split_reference("localhost:5000/x"),
            ("localhost:5000/x", "latest")
        );
        assert_eq!(
            split_reference("localhost:5000/x:2"),
            ("localhost:5000/x", "2")
        );
        assert_eq!(split_reference("x@sha256:ab"), ("x", "sha256:ab"));
    }
}
