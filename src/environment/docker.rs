//! Settings of the Docker backplane that come from the environment.
//!
//! Read from the process environment by [`super::var`] only; `crate::exec::docker::client`
//! combines them with the configuration's `tycho.docker.*` keys (the variable wins when
//! it is set and not blank).
//!
//! | variable | configuration key |
//! | --- | --- |
//! | `DOCKER_HOST` | (the Engine's address; default `unix:///var/run/docker.sock`) |
//! | `TYCHO_DOCKER_BIND_ADDRESS` | `tycho.docker.bind_address` |
//! | `TYCHO_DOCKER_HOST_PORTS` | `tycho.docker.host_ports` |
//! | `TYCHO_DOCKER_PULL` | `tycho.docker.pull` |
//! | `TYCHO_DOCKER_TIMEOUT` | `tycho.docker.timeout` |
//! | `TYCHO_DOCKER_ENV_DIR` | `tycho.docker.env_dir` |
//! | `TYCHO_DOCKER_VOLUME_ALLOW` | `tycho.docker.volume_allow` |
//!
//! The default limits of containers without `deploy.resources` (`TYCHO_APP_DEFAULT_*`)
//! apply to both backplanes: they are read by [`super::resources`].

/// The Docker environment, as read (trimmed; None when unset or blank).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerEnv {
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// `TYCHO_DOCKER_BIND_ADDRESS`.
    pub bind_address: Option<String>,
    /// `TYCHO_DOCKER_HOST_PORTS`.
    pub host_ports: Option<String>,
    /// `TYCHO_DOCKER_PULL`.
    pub pull: Option<String>,
    /// `TYCHO_DOCKER_TIMEOUT`.
    pub timeout: Option<String>,
    /// `TYCHO_DOCKER_ENV_DIR`.
    pub env_dir: Option<String>,
    /// `TYCHO_DOCKER_VOLUME_ALLOW`: comma-separated names of volumes tycho did not create
    /// that `pvc://` mounts may use.
    pub volume_allow: Option<String>,
}

fn set(name: &str) -> Option<String> {
    super::var(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl DockerEnv {
    /// The settings from the environment.
    pub fn from_env() -> DockerEnv {
        DockerEnv {
            docker_host: set("DOCKER_HOST"),
            bind_address: set("TYCHO_DOCKER_BIND_ADDRESS"),
            host_ports: set("TYCHO_DOCKER_HOST_PORTS"),
            pull: set("TYCHO_DOCKER_PULL"),
            timeout: set("TYCHO_DOCKER_TIMEOUT"),
            env_dir: set("TYCHO_DOCKER_ENV_DIR"),
            volume_allow: set("TYCHO_DOCKER_VOLUME_ALLOW"),
        }
    }

    /// The Engine's address (`DOCKER_HOST`, else the default Unix socket).
    pub fn engine_address(&self) -> String {
        self.docker_host
            .clone()
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
    }
}
