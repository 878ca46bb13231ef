//! Which compute back end ("backplane") runs systems, by the original's names:
//! `kubernetes` ([`crate::exec::kube`]) or `docker-compose` (alias `docker`,
//! [`crate::exec::docker`]). The CLI and `tycho api` dispatch through here; the Python face
//! chooses in `tycho.factory`.

use crate::error::{Error, Result};
use crate::exec::{BoxFut, Executor};
use crate::model::System;
use serde_json::Value;

/// A compute back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backplane {
    /// A Kubernetes cluster.
    Kubernetes,
    /// This machine's Docker Engine.
    Docker,
}

/// The names `-b` and `tycho.backplane` accept.
pub const SUPPORTED: &[&str] = &["kubernetes", "docker-compose", "docker"];

impl Backplane {
    /// The backplane named `name` (`kubernetes`, `docker-compose`, `docker`).
    pub fn parse(name: &str) -> Result<Backplane> {
        match name {
            "kubernetes" => Ok(Backplane::Kubernetes),
            "docker-compose" | "docker" => Ok(Backplane::Docker),
            other => Err(Error::input(format!(
                "unrecognized backplane {other:?}; supported backplanes: {}",
                SUPPORTED.join(", ")
            ))),
        }
    }
}

/// Starts `system` on `backplane`.
pub fn start(
    backplane: Backplane,
    config: &Value,
    system: System,
    namespace: Option<&str>,
) -> Result<Value> {
    match backplane {
        Backplane::Kubernetes => crate::exec::kube::start(config, system, namespace),
        Backplane::Docker => crate::exec::docker::start(config, system),
    }
}

/// Status rows on `backplane`.
pub fn status(
    backplane: Backplane,
    config: &Value,
    name: Option<&str>,
    username: Option<&str>,
    namespace: Option<&str>,
) -> Result<Vec<Value>> {
    match backplane {
        Backplane::Kubernetes => crate::exec::kube::status(name, username, namespace),
        Backplane::Docker => crate::exec::docker::status(config, name, username, false),
    }
}

/// Deletes system `guid` on `backplane`.
pub fn delete(
    backplane: Backplane,
    config: &Value,
    guid: &str,
    namespace: Option<&str>,
) -> Result<Value> {
    match backplane {
        Backplane::Kubernetes => crate::exec::kube::delete(guid, namespace),
        Backplane::Docker => crate::exec::docker::delete(config, guid),
    }
}

/// Applies a modify request (executor form) on `backplane`.
pub fn modify(
    backplane: Backplane,
    config: &Value,
    request: &Value,
    namespace: Option<&str>,
) -> Result<Value> {
    match backplane {
        Backplane::Kubernetes => crate::exec::kube::modify(config, request, namespace),
        Backplane::Docker => crate::exec::docker::modify(config, request),
    }
}

/// Polls the Docker backplane's status of `guid` until it is ready (`tycho up --wait`),
/// reporting each new reason through `progress`; at `timeout` the error names the last one.
pub fn wait_ready_docker(
    config: &Value,
    guid: &str,
    timeout: std::time::Duration,
    mut progress: impl FnMut(&str),
) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let rows = crate::exec::docker::status(config, Some(guid), None, true)?;
        let reason = match rows.first() {
            None => "no container of the system exists".to_string(),
            Some(row) if row.get("is_ready") == Some(&Value::Bool(true)) => return Ok(()),
            Some(row) => row
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("not ready")
                .to_string(),
        };
        if reason != last {
            progress(&reason);
            last = reason;
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::new(
                crate::ErrorKind::Kube,
                format!("system {guid} was not ready after {timeout:?}: {last}"),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The Docker backplane behind `tycho api -b docker-compose`.
pub struct DockerExecutor {
    /// The tycho configuration (templates, volumes, `tycho.docker`).
    pub config: Value,
}

impl DockerExecutor {
    /// The executor with the built-in configuration.
    pub fn new() -> Self {
        DockerExecutor {
            config: crate::config::default_config().clone(),
        }
    }
}

impl Default for DockerExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl Executor for DockerExecutor {
    fn start(&self, request: Value) -> BoxFut<'_, Value> {
        Box::pin(async move {
            let request = crate::model::StartRequest::from_value(request)?;
            let system = crate::compile::parse_request(&self.config, request, None, false, false)?;
            crate::exec::docker::start_async(&self.config, system).await
        })
    }
    fn status(
        &self,
        name: Option<String>,
        username: Option<String>,
        reasons: bool,
    ) -> BoxFut<'_, Value> {
        Box::pin(async move {
            let rows = crate::exec::docker::status_async(
                &self.config,
                name.as_deref(),
                username.as_deref(),
                reasons,
            )
            .await?;
            Ok(Value::Array(rows))
        })
    }
    fn delete(&self, name: String) -> BoxFut<'_, Value> {
        Box::pin(async move { crate::exec::docker::delete_async(&self.config, &name).await })
    }
    fn modify(&self, request: Value) -> BoxFut<'_, Value> {
        Box::pin(async move {
            let request = crate::exec::modify_request(&request);
            crate::exec::docker::modify_async(&self.config, &request).await
        })
    }
    fn ready(&self) -> BoxFut<'_, ()> {
        Box::pin(async move { crate::exec::docker::ping(&self.config).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_original_select_the_backplane() {
        assert_eq!(Backplane::parse("kubernetes"), Ok(Backplane::Kubernetes));
        assert_eq!(Backplane::parse("docker-compose"), Ok(Backplane::Docker));
        assert_eq!(Backplane::parse("docker"), Ok(Backplane::Docker));
        let e = Backplane::parse("nomad").unwrap_err();
        assert!(e.message.contains("docker-compose"), "{}", e.message);
    }
}
