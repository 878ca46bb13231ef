//! Python bindings of the Kubernetes executor (`tycho._native.kube_*`), called by
//! `tycho.kube.KubernetesCompute`. Every call releases the GIL while it talks to the
//! cluster; errors become `tycho.exceptions` classes (StartException, DeleteException,
//! ModifyException, TychoException); a panic becomes TychoException. Each operation is
//! counted in [`crate::metrics`] by outcome (`tycho.metrics()`).
//!
//! The executor logs through the `log` crate (target `tycho.kube`); [`init`] bridges it
//! to Python's `logging` with pyo3-log.

use crate::bindings::{config_value, from_py, to_py};
use crate::metrics::Operation;
use pyo3::prelude::*;
use serde_json::Value;
use std::sync::OnceLock;

static LOG_RESET: OnceLock<pyo3_log::ResetHandle> = OnceLock::new();

/// Registers the executor's functions on the native module and bridges `log` records
/// (target `tycho.kube` and Rust paths under `tycho`, Debug and up; other
/// crates Warn and up; Python's levels decide from there) to Python logging.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kube_start, m)?)?;
    m.add_function(wrap_pyfunction!(kube_status, m)?)?;
    m.add_function(wrap_pyfunction!(kube_delete, m)?)?;
    m.add_function(wrap_pyfunction!(kube_modify, m)?)?;
    m.add_function(wrap_pyfunction!(kube_namespace, m)?)?;
    m.add_function(wrap_pyfunction!(kube_service_url, m)?)?;
    m.add_function(wrap_pyfunction!(kube_readiness, m)?)?;
    m.add_function(wrap_pyfunction!(kube_wait, m)?)?;
    if LOG_RESET.get().is_none() {
        let logger = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::LoggersAndLevels)?
            .filter(log::LevelFilter::Warn)
            .filter_target("tycho".to_string(), log::LevelFilter::Debug)
            // pyo3-log matches targets by `::` segments: name dotted ones too.
            .filter_target(
                crate::exec::kube::LOG_TARGET.to_string(),
                log::LevelFilter::Debug,
            )
            .filter_target(
                crate::exec::docker::LOG_TARGET.to_string(),
                log::LevelFilter::Debug,
            )
            // kube-rs reports every failed request at ERROR (through tracing's log
            // bridge), retried ones included; tycho.kube logs them with context instead.
            .filter_target("kube_client".to_string(), log::LevelFilter::Off);
        // Another logger may already be installed (then records go there). Records of
        // the runtime's threads reach Python only while it is not exiting.
        let handle = logger.reset_handle();
        if log::set_boxed_logger(Box::new(super::lifecycle::GatedLogger(logger))).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
            let _ = LOG_RESET.set(handle);
        }
    }
    Ok(())
}

/// Runs `f` without the GIL, catching panics (see `python::run`). Python logging levels
/// are re-read first (pyo3-log caches them), so a level set since the last call is honoured.
fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> crate::Result<T> + Send) -> PyResult<T> {
    if let Some(handle) = LOG_RESET.get() {
        handle.reset();
    }
    crate::bindings::run(py, f)
}

/// Starts a system (`tycho.model.System.to_dict()`); returns
/// `{"name", "sid", "containers": {container: {"ip_address", <port name>: port}}, "conn_string"}`.
#[pyfunction]
#[pyo3(signature = (system, *, config=None, namespace=None))]
fn kube_start<'py>(
    py: Python<'py>,
    system: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let system = from_py(system, "system")?;
    let config = config_value(config)?;
    let result = run(py, || {
        let system = crate::exec::kube::system_from_value(&system)?;
        let result = crate::exec::kube::start(&config, system, namespace.as_deref());
        crate::metrics::operation(Operation::Start, &result);
        result
    })?;
    to_py(py, &result)
}

/// Status rows of the systems with GUID `name`, of `username`, or all.
#[pyfunction]
#[pyo3(signature = (name=None, username=None, *, namespace=None))]
fn kube_status<'py>(
    py: Python<'py>,
    name: Option<String>,
    username: Option<String>,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let rows = run(py, || {
        let all = name.is_none() && username.is_none();
        let rows =
            crate::exec::kube::status(name.as_deref(), username.as_deref(), namespace.as_deref());
        crate::metrics::operation(Operation::Status, &rows);
        if let (true, Ok(rows)) = (all, &rows) {
            crate::metrics::systems(rows);
        }
        rows
    })?;
    to_py(py, &Value::Array(rows))
}

/// Deletes everything labelled `tycho-guid=<name>`; returns `{}`.
#[pyfunction]
#[pyo3(signature = (name, *, namespace=None))]
fn kube_delete<'py>(
    py: Python<'py>,
    name: String,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let result = run(py, || {
        let result = crate::exec::kube::delete(&name, namespace.as_deref());
        crate::metrics::operation(Operation::Delete, &result);
        result
    })?;
    to_py(py, &result)
}

/// Patches labels and cpu/memory of a running system (`tycho.model.ModifySystem.to_dict()`);
/// returns `{"patches": [...]}`.
#[pyfunction]
#[pyo3(signature = (modify, *, config=None, namespace=None))]
fn kube_modify<'py>(
    py: Python<'py>,
    modify: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let modify = from_py(modify, "modify")?;
    let config = config_value(config)?;
    let result = run(py, || {
        let result = crate::exec::kube::modify(&config, &modify, namespace.as_deref());
        crate::metrics::operation(Operation::Modify, &result);
        result
    })?;
    to_py(py, &result)
}

/// The namespace operations use when none is given: NAMESPACE, the pod's
/// service-account namespace, the kubeconfig context's, else "default".
#[pyfunction]
fn kube_namespace(py: Python<'_>) -> PyResult<String> {
    run(py, || Ok(crate::exec::kube::default_namespace()))
}

/// `http://<name>:<port>` of the Tycho API Service `name` in `namespace`, None when
/// there is no such Service (`tycho.client.TychoClientFactory.get_client`).
#[pyfunction]
fn kube_service_url(py: Python<'_>, name: String, namespace: String) -> PyResult<Option<String>> {
    run(py, || crate::exec::kube::service_url(&name, &namespace))
}

fn progress_value(p: &crate::exec::kube::wait::Progress) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// One progress event of system `sid` (its GUID): `{"sid", "progress" (0-100),
/// "message", "ready", "failed", "reason"}` from the Deployment, its pods and their
/// newest Warning event.
#[pyfunction]
#[pyo3(signature = (sid, *, namespace=None))]
fn kube_readiness<'py>(
    py: Python<'py>,
    sid: String,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let event = run(py, || {
        crate::exec::kube::wait::readiness(&sid, namespace.as_deref())
    })?;
    to_py(py, &progress_value(&event))
}

/// Waits up to `timeout` seconds for system `sid` to become ready or to fail; returns
/// the last progress event (`ready` or `failed` set, or neither on timeout).
#[pyfunction]
#[pyo3(signature = (sid, timeout, *, namespace=None))]
fn kube_wait<'py>(
    py: Python<'py>,
    sid: String,
    timeout: f64,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    if !(0.0..=1e9).contains(&timeout) {
        return Err(crate::bindings::to_pyerr(
            py,
            crate::error::Error::input(format!(
                "timeout must be a number of seconds, not {timeout}"
            )),
        ));
    }
    let timeout = std::time::Duration::from_secs_f64(timeout);
    let event = run(py, || {
        crate::exec::kube::wait::wait(&sid, namespace.as_deref(), timeout)
    })?;
    to_py(py, &progress_value(&event))
}
