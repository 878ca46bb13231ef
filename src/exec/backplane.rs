//! Which compute back end ("backplane") runs systems, by the original's names:
//! `kubernetes` ([`crate::exec::kube`]) or `docker-compose` (alias `docker`,
//! [`crate::exec::docker`]). The CLI and `tycho api` dispatch through here; the Python face
//! asks for the names (`tycho._native.BACKPLANES`, `tycho._native.backplane_name`) and
//! maps them to its compute classes in `tycho.factory`.

use crate::error::{Error, ErrorKind, Result};
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

/// The original's names of the backplanes, in its order (`tycho.factory.supported_backplanes`);
/// [`SUPPORTED`] adds the alias `docker`.
pub const NAMES: &[&str] = &["kubernetes", "docker-compose"];

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

    /// The backplane's name (one of [`NAMES`]; `docker` is named `docker-compose`).
    pub fn name(self) -> &'static str {
        match self {
            Backplane::Kubernetes => NAMES[0],
            Backplane::Docker => NAMES[1],
        }
    }
}

/// One operation on the systems of a backplane (what [`Target::run`] dispatches).
#[derive(Debug)]
pub enum Operation {
    /// Start a compiled system; the result is `{name, sid, containers, conn_string}`.
    Start(Box<System>),
    /// Status rows (an array): of system `name` (a GUID), of `username`'s, or of all;
    /// with `reasons`, each row also says why it is not ready.
    Status {
        /// The system's GUID.
        name: Option<String>,
        /// The user whose systems are listed.
        username: Option<String>,
        /// Add `reason` to each row.
        reasons: bool,
    },
    /// Delete system `guid`; the result is `{}`.
    Delete(String),
    /// Apply a modify request in the executor's form
    /// ([`crate::model::request::modify_request`]); the result is `{"patches": [...]}`.
    Modify(Value),
    /// Stop system `guid`: its Deployments scaled to 0 (Kubernetes) or its containers
    /// stopped (Docker); everything else is kept. Idempotent.
    Stop(String),
    /// Resume system `guid` (the replica count it had; the containers started). Idempotent.
    Resume(String),
    /// Record activity of system `guid` now (`TYCHO_NOW` when set: tests); Kubernetes only.
    Touch(String),
}

impl Operation {
    /// The operation's label in [`crate::metrics`].
    pub fn metric(&self) -> crate::metrics::Operation {
        use crate::metrics::Operation as M;
        match self {
            Operation::Start(_) => M::Start,
            Operation::Status { .. } => M::Status,
            Operation::Delete(_) => M::Delete,
            Operation::Modify(_) => M::Modify,
            Operation::Stop(_) => M::Stop,
            Operation::Resume(_) => M::Resume,
            Operation::Touch(_) => M::Touch,
        }
    }

    /// The kind of the error when the operation cannot run at all.
    fn kind(&self) -> ErrorKind {
        match self {
            Operation::Start(_) => ErrorKind::Start,
            Operation::Delete(_) => ErrorKind::Delete,
            Operation::Modify(_) => ErrorKind::Modify,
            _ => ErrorKind::Kube,
        }
    }

    /// A status of every system (the systems-by-app gauge is set from its rows).
    fn lists_all(&self) -> bool {
        matches!(
            self,
            Operation::Status {
                name: None,
                username: None,
                ..
            }
        )
    }
}

/// Where operations run: a backplane, the tycho configuration and (Kubernetes) the
/// explicit namespace (None: NAMESPACE, the pod's service-account namespace, else the
/// kubeconfig context's; the executor resolves it).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The back end.
    pub backplane: Backplane,
    /// The tycho configuration (templates, volumes, `tycho.docker`).
    pub config: &'a Value,
    /// The explicit namespace (Kubernetes).
    pub namespace: Option<&'a str>,
}

impl Target<'_> {
    /// Runs `operation` (blocking, on the executor's runtime) and counts it in
    /// [`crate::metrics`] by outcome (a status of all systems also sets the
    /// systems-by-app gauge). The CLI and the Python bindings call this.
    pub fn run(&self, operation: Operation) -> Result<Value> {
        let (kind, metric, all) = (operation.kind(), operation.metric(), operation.lists_all());
        let result = crate::runtime::block_on(kind, self.run_async(operation));
        crate::metrics::operation(metric, &result);
        if let (true, Ok(Value::Array(rows))) = (all, &result) {
            crate::metrics::systems(rows);
        }
        result
    }

    /// Runs `operation`, uncounted (`tycho api` counts at its routes): the one place
    /// that picks the back end of an operation.
    pub async fn run_async(&self, operation: Operation) -> Result<Value> {
        use crate::exec::{docker, kube};
        let (config, namespace) = (self.config, self.namespace);
        match (self.backplane, operation) {
            (Backplane::Kubernetes, Operation::Start(system)) => {
                kube::start_async(config, *system, namespace).await
            }
            (Backplane::Docker, Operation::Start(system)) => {
                docker::start_async(config, *system).await
            }
            (
                backplane,
                Operation::Status {
                    name,
                    username,
                    reasons,
                },
            ) => {
                let (name, username) = (name.as_deref(), username.as_deref());
                let rows = match backplane {
                    Backplane::Kubernetes => {
                        let mut rows = kube::status_async(name, username, namespace).await?;
                        if reasons {
                            kube::add_reasons(&mut rows, namespace).await;
                        }
                        rows
                    }
                    Backplane::Docker => {
                        docker::status_async(config, name, username, reasons).await?
                    }
                };
                Ok(Value::Array(rows))
            }
            (Backplane::Kubernetes, Operation::Delete(guid)) => {
                kube::delete_async(&guid, namespace).await
            }
            (Backplane::Docker, Operation::Delete(guid)) => {
                docker::delete_async(config, &guid).await
            }
            (Backplane::Kubernetes, Operation::Modify(request)) => {
                kube::modify_async(config, &request, namespace).await
            }
            (Backplane::Docker, Operation::Modify(request)) => {
                docker::modify_async(config, &request).await
            }
            (Backplane::Kubernetes, Operation::Stop(guid)) => {
                let now = chrono::Utc::now();
                kube::scale::apply_async(kube::scale::Action::Stop, &guid, namespace, now).await
            }
            (Backplane::Kubernetes, Operation::Resume(guid)) => {
                let now = clock()?;
                kube::scale::apply_async(kube::scale::Action::Resume, &guid, namespace, now).await
            }
            (Backplane::Kubernetes, Operation::Touch(guid)) => {
                let now = clock()?;
                kube::scale::apply_async(kube::scale::Action::Touch, &guid, namespace, now).await
            }
            (Backplane::Docker, Operation::Stop(guid)) => docker::stop_async(config, &guid).await,
            (Backplane::Docker, Operation::Resume(guid)) => {
                docker::resume_async(config, &guid).await
            }
            (Backplane::Docker, Operation::Touch(_)) => Err(kubernetes_only("touch")),
        }
    }

    /// One culling pass ([`crate::exec::cull`]); Kubernetes only.
    pub fn cull(&self, options: &crate::exec::cull::CullOptions) -> Result<Value> {
        match self.backplane {
            Backplane::Kubernetes => crate::exec::cull::cull(options, self.namespace),
            Backplane::Docker => Err(kubernetes_only("culling")),
        }
    }
}

/// The status rows of a [`Operation::Status`] result.
pub fn rows(result: Value) -> Vec<Value> {
    match result {
        Value::Array(rows) => rows,
        _ => Vec::new(),
    }
}

/// The error of an operation only the Kubernetes backplane has (touch, cull): a Docker
/// container's labels cannot change after it is created.
fn kubernetes_only(what: &str) -> Error {
    Error::input(format!(
        "{what} runs on the kubernetes backplane only (a Docker container cannot record activity)"
    ))
}

/// Now: `TYCHO_NOW` when set (the injected clock of tests), else the system clock.
pub fn clock() -> Result<chrono::DateTime<chrono::Utc>> {
    crate::environment::cull::clock()
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

/// The executor behind `tycho api -b <backplane>`: every operation through
/// [`Target::run_async`].
pub struct BackplaneExecutor {
    /// The back end.
    pub backplane: Backplane,
    /// Namespace of every operation (Kubernetes; None: NAMESPACE, the pod's, the kubeconfig's).
    pub namespace: Option<String>,
    /// The tycho configuration (templates, volumes, `tycho.docker`).
    pub config: Value,
}

impl BackplaneExecutor {
    /// The executor of `backplane` with the built-in configuration.
    pub fn new(backplane: Backplane, namespace: Option<String>) -> Self {
        BackplaneExecutor {
            backplane,
            namespace,
            config: crate::config::default_config().clone(),
        }
    }

    fn target(&self) -> Target<'_> {
        Target {
            backplane: self.backplane,
            config: &self.config,
            namespace: self.namespace.as_deref(),
        }
    }

    fn run(&self, operation: Operation) -> BoxFut<'_, Value> {
        Box::pin(async move { self.target().run_async(operation).await })
    }
}

impl Executor for BackplaneExecutor {
    fn start(&self, request: Value) -> BoxFut<'_, Value> {
        Box::pin(async move {
            // Parsing runs the compose and settings through the templates: CPU work,
            // on the worker pool (the async threads keep serving).
            let config = self.config.clone();
            let system = crate::offload::run(ErrorKind::Start, "parsing the request", move || {
                let request = crate::model::StartRequest::from_value(request)?;
                crate::compile::parse_request(&config, request, None, false, false)
            })
            .await??;
            self.target()
                .run_async(Operation::Start(Box::new(system)))
                .await
        })
    }
    fn status(
        &self,
        name: Option<String>,
        username: Option<String>,
        reasons: bool,
    ) -> BoxFut<'_, Value> {
        self.run(Operation::Status {
            name,
            username,
            reasons,
        })
    }
    fn delete(&self, name: String) -> BoxFut<'_, Value> {
        self.run(Operation::Delete(name))
    }
    fn modify(&self, request: Value) -> BoxFut<'_, Value> {
        let request = crate::model::request::modify_request(&request);
        self.run(Operation::Modify(request))
    }
    fn stop(&self, name: String) -> BoxFut<'_, Value> {
        self.run(Operation::Stop(name))
    }
    fn resume(&self, name: String) -> BoxFut<'_, Value> {
        self.run(Operation::Resume(name))
    }
    fn touch(&self, name: String) -> BoxFut<'_, Value> {
        self.run(Operation::Touch(name))
    }
    fn ready(&self) -> BoxFut<'_, ()> {
        Box::pin(async move {
            match self.backplane {
                Backplane::Kubernetes => crate::exec::kube::api_ready().await,
                Backplane::Docker => crate::exec::docker::ping(&self.config).await,
            }
        })
    }
    fn events(
        &self,
        name: Option<String>,
        username: Option<String>,
        timeout: std::time::Duration,
    ) -> BoxFut<'_, crate::exec::kube::wait::Steps> {
        Box::pin(async move {
            if self.backplane == Backplane::Docker {
                return Err(crate::exec::no_event_stream());
            }
            crate::exec::kube::wait::follow_async(
                name.as_deref(),
                username.as_deref(),
                self.namespace.as_deref(),
                timeout,
            )
            .await
        })
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
