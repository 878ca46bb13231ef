//! Settings of the Docker backplane and the connection to the Engine.
//!
//! Each setting is read from the environment first, then from the configuration's
//! `tycho.docker` section, then defaults:
//!
//! | setting | env | `tycho.docker.` | default |
//! | --- | --- | --- | --- |
//! | address published ports bind to | `TYCHO_DOCKER_BIND_ADDRESS` | `bind_address` | `127.0.0.1` |
//! | host ports: `random` (the Engine picks free ones) or `compose` (the `host:` side written in the compose file, else random) | `TYCHO_DOCKER_HOST_PORTS` | `host_ports` | `random` |
//! | directory of `<app>-env` files (`KEY=value` lines, the Docker form of the `<app>-env` Secret) | `TYCHO_DOCKER_ENV_DIR` | `env_dir` | none |
//! | image pull: `missing` (pull what the Engine lacks) or `never` | `TYCHO_DOCKER_PULL` | `pull` | `missing` |
//! | seconds one Engine request may take | `TYCHO_DOCKER_TIMEOUT` | `timeout` | `120` |
//! | volumes tycho did not create that `pvc://` may mount (comma-separated names; a list in the configuration) | `TYCHO_DOCKER_VOLUME_ALLOW` | `volume_allow` | none |
//!
//! Containers without CPU or memory limits get the defaults of
//! [`crate::exec::default_limits`] (`TYCHO_APP_DEFAULT_CPUS` / `_MEMORY` / `_PIDS`).
//!
//! The Engine is the one `DOCKER_HOST` names (`unix:///path` or `tcp://host:port`),
//! else `/var/run/docker.sock`. A connection is made per operation (one `GET /version`
//! negotiates the API version, so Engines from API 1.24 up work), which also makes the
//! backplane safe across `fork()`.

use super::{describe, err};
use crate::error::{ErrorKind, Result};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// How host ports of published container ports are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPorts {
    /// The Engine picks a free port for each (several systems of one app can run).
    Random,
    /// The compose file's `host:container` host side when written, else random.
    Compose,
}

/// When images are pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    /// Pull an image the Engine does not have.
    Missing,
    /// Never pull: a missing image fails the start.
    Never,
}

/// Settings of the Docker backplane (see the module documentation).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Host address published ports bind to.
    pub bind_address: String,
    /// How host ports are chosen.
    pub host_ports: HostPorts,
    /// Directory holding `<app>-env` files.
    pub env_dir: Option<PathBuf>,
    /// Image pull policy.
    pub pull: Pull,
    /// Time one Engine request may take.
    pub timeout: Duration,
    /// Names of volumes tycho did not create that `pvc://` mounts may use.
    pub volume_allow: Vec<String>,
    /// Limits of containers whose compose service sets none.
    pub default_limits: crate::exec::default_limits::DefaultLimits,
}

fn setting(config: &Value, env: &Option<String>, key: &str) -> Option<String> {
    if let Some(v) = env {
        return Some(v.clone());
    }
    match config.pointer(&format!("/tycho/docker/{key}")) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

impl Settings {
    /// The settings from the environment and `config` (a tycho configuration).
    pub fn from_config(config: &Value) -> Result<Settings> {
        Self::from_parts(
            config,
            &crate::environment::docker::DockerEnv::from_env(),
            &crate::environment::resources::DefaultLimitsEnv::from_env(),
        )
    }

    /// The settings of `env` and `limits` (the environment, as read) and `config`.
    pub fn from_parts(
        config: &Value,
        env: &crate::environment::docker::DockerEnv,
        limits: &crate::environment::resources::DefaultLimitsEnv,
    ) -> Result<Settings> {
        let kind = ErrorKind::Config;
        let bind_address = setting(config, &env.bind_address, "bind_address")
            .unwrap_or_else(|| "127.0.0.1".into());
        if bind_address.parse::<std::net::IpAddr>().is_err() {
            return Err(err(
                kind,
                format!("Docker bind address {bind_address:?} (TYCHO_DOCKER_BIND_ADDRESS / tycho.docker.bind_address) is not an IP address"),
            ));
        }
        let host_ports = match setting(config, &env.host_ports, "host_ports").as_deref() {
            None | Some("random") => HostPorts::Random,
            Some("compose") => HostPorts::Compose,
            Some(other) => {
                return Err(err(
                    kind,
                    format!("Docker host_ports {other:?} must be \"random\" or \"compose\""),
                ))
            }
        };
        let pull = match setting(config, &env.pull, "pull").as_deref() {
            None | Some("missing") => Pull::Missing,
            Some("never") => Pull::Never,
            Some(other) => {
                return Err(err(
                    kind,
                    format!("Docker pull policy {other:?} must be \"missing\" or \"never\""),
                ))
            }
        };
        let timeout = match setting(config, &env.timeout, "timeout") {
            None => Duration::from_secs(120),
            Some(s) => match s.parse::<u64>() {
                Ok(n) if (1..=3600).contains(&n) => Duration::from_secs(n),
                _ => {
                    return Err(err(
                        kind,
                        format!(
                            "Docker timeout {s:?} must be a whole number of seconds from 1 to 3600"
                        ),
                    ))
                }
            },
        };
        let volume_allow = volume_allow(config, &env.volume_allow)?;
        Ok(Settings {
            bind_address,
            host_ports,
            env_dir: setting(config, &env.env_dir, "env_dir").map(PathBuf::from),
            pull,
            timeout,
            volume_allow,
            default_limits: crate::exec::default_limits::DefaultLimits::for_docker(config, limits)?,
        })
    }
}

/// The volume allow-list: `TYCHO_DOCKER_VOLUME_ALLOW` (comma-separated), else
/// `tycho.docker.volume_allow` (a list of names or a comma-separated string).
fn volume_allow(config: &Value, env: &Option<String>) -> Result<Vec<String>> {
    const MAX: usize = 1000;
    let (names, source): (Vec<String>, &str) = match env {
        Some(v) => (
            v.split(',').map(|n| n.trim().to_string()).collect(),
            "TYCHO_DOCKER_VOLUME_ALLOW",
        ),
        None => match config.pointer("/tycho/docker/volume_allow") {
            None | Some(Value::Null) => (Vec::new(), ""),
            Some(Value::String(s)) => (
                s.split(',').map(|n| n.trim().to_string()).collect(),
                "tycho.docker.volume_allow",
            ),
            Some(Value::Array(items)) if items.len() <= MAX => (
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.trim().to_string(),
                        other => other.to_string(),
                    })
                    .collect(),
                "tycho.docker.volume_allow",
            ),
            Some(_) => {
                return Err(err(
                    ErrorKind::Config,
                    format!(
                        "tycho.docker.volume_allow must be a list of at most {MAX} volume names"
                    ),
                ))
            }
        },
    };
    let names: Vec<String> = names.into_iter().filter(|n| !n.is_empty()).collect();
    if names.len() > MAX {
        return Err(err(
            ErrorKind::Config,
            format!("{source} names more than {MAX} volumes"),
        ));
    }
    if let Some(bad) = names.iter().find(|n| !super::mapping::is_engine_name(n)) {
        let shown: String = bad.chars().take(crate::limits::ECHO_LIMIT).collect();
        return Err(err(
            ErrorKind::Config,
            format!("{source}: {shown:?} is not a Docker volume name"),
        ));
    }
    Ok(names)
}

/// Where the Engine is, for messages.
pub(crate) fn engine_address() -> String {
    crate::environment::docker::DockerEnv::from_env().engine_address()
}

/// A client of the Engine `DOCKER_HOST` names, its API version negotiated.
pub(crate) async fn connect(kind: ErrorKind, settings: &Settings) -> Result<bollard::Docker> {
    let address = engine_address();
    let docker = bollard::Docker::connect_with_host(&address)
        .map_err(|e| {
            err(
                kind,
                format!("cannot use the Docker Engine at {address}: {e}"),
            )
        })?
        .with_timeout(settings.timeout);
    docker.negotiate_version().await.map_err(|e| {
        err(
            kind,
            format!(
                "cannot reach the Docker Engine at {address}: {}",
                describe(&e)
            ),
        )
    })
}

/// Runs `fut` to completion on the process's executor runtime (shared with the
/// Kubernetes executor; made again after `fork()`).
pub(crate) fn block_on<T>(
    kind: ErrorKind,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    crate::exec::kube::block_on(kind, fut)
}
