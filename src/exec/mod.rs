//! Execution: the back ends that run compiled systems.
//!
//! - [`kube`]: the Kubernetes executor (client, watch cache, operations);
//! - [`docker`]: the Docker Engine backplane;
//! - [`backplane`]: which back end runs a system, by the original's names;
//! - [`remote`]: the REST API of another Tycho (`TychoClient` with `REST_API=true`);
//! - [`cull`]: stopping or deleting idle and old systems (`tycho cull`, `--cull-every`);
//! - here: the [`Executor`] trait that the routes of `tycho api` and the CLI call, so the
//!   HTTP layer is independent of the executor (and testable with a stand-in), and its
//!   Kubernetes implementation.

pub mod backplane;
pub mod cull;
pub mod docker;
pub mod kube;
pub mod remote;

use crate::error::{ErrorKind, Result};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// A boxed future of a back-end operation.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// The operations behind the `/system/*` endpoints and `/readyz`.
///
/// Requests arrive already checked against the API schema.
pub trait Executor: Send + Sync + 'static {
    /// Starts the system of a start request; returns `{name, sid, containers, conn_string}`.
    fn start(&self, request: Value) -> BoxFut<'_, Value>;
    /// Status rows: of system `name` (a GUID), of `username`'s systems, or of all. With
    /// `reasons`, each row also has `reason`: why the system is not ready (None when
    /// ready or unknown).
    fn status(
        &self,
        name: Option<String>,
        username: Option<String>,
        reasons: bool,
    ) -> BoxFut<'_, Value>;
    /// Deletes system `name` (a GUID); returns `{}`.
    fn delete(&self, name: String) -> BoxFut<'_, Value>;
    /// Applies a modify request; returns `{"patches": [...]}`.
    fn modify(&self, request: Value) -> BoxFut<'_, Value>;
    /// Stops system `name` (a GUID), keeping everything but its running pods or
    /// containers; returns `{"name", ...}`. Idempotent.
    fn stop(&self, name: String) -> BoxFut<'_, Value>;
    /// Resumes stopped system `name` (a GUID) as it was. Idempotent.
    fn resume(&self, name: String) -> BoxFut<'_, Value>;
    /// Records activity of system `name` (a GUID) now, for culling.
    fn touch(&self, name: String) -> BoxFut<'_, Value>;
    /// Ok when the cluster's API server answers.
    fn ready(&self) -> BoxFut<'_, ()>;
    /// The progress events of system `name` (a GUID) or of `username`'s systems, for at
    /// most `timeout` (`GET /system/events`); a back end without them refuses.
    fn events(
        &self,
        name: Option<String>,
        username: Option<String>,
        timeout: std::time::Duration,
    ) -> BoxFut<'_, crate::exec::kube::wait::Steps> {
        let _ = (name, username, timeout);
        Box::pin(async {
            Err(crate::error::Error::input(
                "this backplane has no event stream (Kubernetes only)",
            ))
        })
    }
}

/// The Kubernetes executor (`crate::exec::kube`), run on the server's runtime.
pub struct Kubernetes {
    /// Namespace of every operation (None: NAMESPACE, the pod's, the kubeconfig's).
    pub namespace: Option<String>,
    /// The tycho configuration (templates, volumes).
    pub config: Value,
}

impl Kubernetes {
    /// The executor with the built-in configuration.
    pub fn new(namespace: Option<String>) -> Self {
        Kubernetes {
            namespace,
            config: crate::config::default_config().clone(),
        }
    }
}

/// A modify request of the API in the executor's form ([`crate::model::request::modify_request`]).
pub fn modify_request(request: &Value) -> Value {
    crate::model::request::modify_request(request)
}

impl Executor for Kubernetes {
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
            crate::exec::kube::start_async(&self.config, system, self.namespace.as_deref()).await
        })
    }
    fn status(
        &self,
        name: Option<String>,
        username: Option<String>,
        reasons: bool,
    ) -> BoxFut<'_, Value> {
        Box::pin(async move {
            let mut rows = crate::exec::kube::status_async(
                name.as_deref(),
                username.as_deref(),
                self.namespace.as_deref(),
            )
            .await?;
            if reasons {
                crate::exec::kube::add_reasons(&mut rows, self.namespace.as_deref()).await;
            }
            Ok(Value::Array(rows))
        })
    }
    fn delete(&self, name: String) -> BoxFut<'_, Value> {
        Box::pin(
            async move { crate::exec::kube::delete_async(&name, self.namespace.as_deref()).await },
        )
    }
    fn modify(&self, request: Value) -> BoxFut<'_, Value> {
        Box::pin(async move {
            let request = modify_request(&request);
            crate::exec::kube::modify_async(&self.config, &request, self.namespace.as_deref()).await
        })
    }
    fn stop(&self, name: String) -> BoxFut<'_, Value> {
        Box::pin(async move {
            crate::exec::kube::scale::apply_async(
                crate::exec::kube::scale::Action::Stop,
                &name,
                self.namespace.as_deref(),
                chrono::Utc::now(),
            )
            .await
        })
    }
    fn resume(&self, name: String) -> BoxFut<'_, Value> {
        Box::pin(async move {
            crate::exec::kube::scale::apply_async(
                crate::exec::kube::scale::Action::Resume,
                &name,
                self.namespace.as_deref(),
                crate::environment::cull::clock()?,
            )
            .await
        })
    }
    fn touch(&self, name: String) -> BoxFut<'_, Value> {
        Box::pin(async move {
            crate::exec::backplane::touch_async(
                crate::exec::backplane::Backplane::Kubernetes,
                &name,
                self.namespace.as_deref(),
            )
            .await
        })
    }
    fn ready(&self) -> BoxFut<'_, ()> {
        Box::pin(async move { crate::exec::kube::api_ready().await })
    }
    fn events(
        &self,
        name: Option<String>,
        username: Option<String>,
        timeout: std::time::Duration,
    ) -> BoxFut<'_, crate::exec::kube::wait::Steps> {
        Box::pin(async move {
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
