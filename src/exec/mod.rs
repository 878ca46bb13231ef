//! Execution: the back ends that run compiled systems.
//!
//! - [`kube`]: the Kubernetes executor (client, watch cache, operations);
//! - [`docker`]: the Docker Engine backplane;
//! - [`backplane`]: which back end runs a system, by the original's names, and the one
//!   dispatch of an operation to it (`backplane::Target`), with the executor of
//!   `tycho api` over it (`backplane::BackplaneExecutor`);
//! - [`remote`]: the REST API of another Tycho (`TychoClient` with `REST_API=true`);
//! - [`cull`]: stopping or deleting idle and old systems (`tycho cull`, `--cull-every`);
//! - here: the [`Executor`] trait that the routes of `tycho api` call, so the HTTP layer
//!   is independent of the executor (and testable with a stand-in).

pub mod backplane;
pub mod cull;
pub mod docker;
pub mod kube;
pub mod remote;

use crate::error::Result;
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
        Box::pin(async { Err(no_event_stream()) })
    }
}

/// The refusal of a back end without progress events ([`Executor::events`]).
pub fn no_event_stream() -> crate::error::Error {
    crate::error::Error::input("this backplane has no event stream (Kubernetes only)")
}
