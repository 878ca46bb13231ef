//! Execution: the back ends that run compiled systems.
//!
//! - [`kube`]: the Kubernetes executor (client, watch cache, operations);
//! - [`docker`]: the Docker Engine backplane;
//! - [`backplane`]: which back end runs a system, by the original's names;
//! - [`default_limits`]: default container limits on both back ends;
//! - here: the [`Executor`] trait that the routes of `tycho api` and the CLI call, so the
//!   HTTP layer is independent of the executor (and testable with a stand-in), and its
//!   Kubernetes implementation.

pub mod backplane;
pub mod default_limits;
pub mod docker;
pub mod kube;

use crate::error::{ErrorKind, Result};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// A boxed future of a back-end operation.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// The operations behind the four `/system/*` endpoints and `/readyz`.
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
    /// Ok when the cluster's API server answers.
    fn ready(&self) -> BoxFut<'_, ()>;
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

/// A modify request of the API (`tycho-guid`, `labels`, `cpu`, `memory`) in the
/// executor's form (`guid`, `labels`, `resources`), as `ModifySystem.parse_modify` builds it.
pub fn modify_request(request: &Value) -> Value {
    let mut resources = serde_json::Map::new();
    for key in ["cpu", "memory"] {
        if let Some(v) = request.get(key).filter(|v| !v.is_null()) {
            resources.insert(key.into(), v.clone());
        }
    }
    let labels = request
        .get("labels")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    serde_json::json!({
        "guid": request.get("tycho-guid").cloned().unwrap_or(Value::Null),
        "labels": labels,
        "resources": resources,
    })
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
    fn ready(&self) -> BoxFut<'_, ()> {
        Box::pin(async move { crate::exec::kube::api_ready().await })
    }
}
