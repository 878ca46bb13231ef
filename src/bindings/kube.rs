//! Python bindings of the Kubernetes executor (`tycho._native.kube_*`), called by
//! `tycho.kube.KubernetesCompute`. Every call releases the GIL while it talks to the
//! cluster; errors become `tycho.exceptions` classes (StartException, DeleteException,
//! ModifyException, TychoException); a panic becomes TychoException. Each operation is
//! one `crate::exec::backplane::Target::run` (through `bindings::stopcull::operate`),
//! counted in [`crate::metrics`] by outcome (`tycho.metrics()`).
//!
//! The executor logs through the `log` crate (target `tycho.kube`); [`init`] bridges it
//! to Python's `logging` with pyo3-log (`bindings::lifecycle::bridge_logging`).

use super::lifecycle::run;
use super::stopcull::{model_value, operate, operate_request, request_value, Asked};
use crate::bindings::to_py;
use crate::exec::backplane::{Backplane, Operation};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;

const KUBERNETES: Backplane = Backplane::Kubernetes;

/// Registers the executor's functions on the native module and bridges `log` records to
/// Python logging (`bindings::lifecycle::bridge_logging`).
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kube_start, m)?)?;
    m.add_function(wrap_pyfunction!(kube_start_request, m)?)?;
    m.add_function(wrap_pyfunction!(kube_status, m)?)?;
    m.add_function(wrap_pyfunction!(kube_status_request, m)?)?;
    m.add_function(wrap_pyfunction!(kube_status_object, m)?)?;
    m.add_function(wrap_pyfunction!(kube_delete, m)?)?;
    m.add_function(wrap_pyfunction!(kube_delete_request, m)?)?;
    m.add_function(wrap_pyfunction!(kube_modify, m)?)?;
    m.add_function(wrap_pyfunction!(kube_modify_request, m)?)?;
    m.add_function(wrap_pyfunction!(kube_namespace, m)?)?;
    m.add_function(wrap_pyfunction!(kube_service_url, m)?)?;
    m.add_function(wrap_pyfunction!(kube_readiness, m)?)?;
    m.add_function(wrap_pyfunction!(kube_wait, m)?)?;
    m.add_function(wrap_pyfunction!(kube_follow, m)?)?;
    m.add_class::<ProgressFollower>()?;
    super::lifecycle::bridge_logging(m.py())?;
    Ok(())
}

// Every operation below is one `Target::run` on the Kubernetes backplane
// (`bindings::stopcull::operate`). `namespace` is the explicit one; None lets the
// executor resolve it: NAMESPACE, the pod's service-account namespace, else the
// kubeconfig context's.

/// Starts a system: `tycho.model.System.to_dict()`, or the `System` itself with
/// `skip`/`to_plain` (`tycho.model._NATIVE_MODEL`: converted in this call, see
/// [`model_value`]); a hand-built one included (the core's rule converts it). Returns
/// `{"name", "sid", "containers": {container: {"ip_address", <port name>: port}}, "conn_string"}`.
#[pyfunction]
#[pyo3(signature = (system, *, config=None, namespace=None, skip=None, to_plain=None))]
fn kube_start<'py>(
    py: Python<'py>,
    system: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
    skip: Option<&Bound<'py, PyDict>>,
    to_plain: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let system = model_value(system, "system", skip, to_plain)?;
    operate(py, KUBERNETES, config, namespace, |_| {
        let system = crate::model::System::from_plain(system)?;
        Ok(Operation::Start(Box::new(system)))
    })
}

/// Starts the system of a start request in one crossing (`tycho.actions`'
/// `StartSystemResource` through `tycho.kube.KubernetesCompute.start_request`): checks
/// `request` against the API schema's `System` (as the REST server does), parses it into
/// the model, compiles and starts it. Returns `(result, system name)`: the result as
/// [`kube_start`]'s, the model's `name` (`<app>-<guid>`).
#[pyfunction]
#[pyo3(signature = (request, *, config=None, namespace=None))]
fn kube_start_request<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
) -> PyResult<(Bound<'py, PyAny>, String)> {
    let (result, name) = operate_request(py, KUBERNETES, Asked::Start, request, config, namespace)?;
    Ok((result, name.unwrap_or_default()))
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
    operate(py, KUBERNETES, None, namespace, |_| {
        Ok(Operation::Status {
            name,
            username,
            reasons: false,
        })
    })
}

/// Deletes everything labelled `tycho-guid=<name>`; returns `{}`.
#[pyfunction]
#[pyo3(signature = (name, *, namespace=None))]
fn kube_delete<'py>(
    py: Python<'py>,
    name: String,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    operate(py, KUBERNETES, None, namespace, |_| {
        Ok(Operation::Delete(name))
    })
}

/// Status rows for a status request in one crossing (`tycho.actions`'
/// `StatusSystemResource`): `request` checked against the API schema's
/// `StatusRequest`, then the rows of its `name` (GUID), of its `username`, or all.
#[pyfunction]
#[pyo3(signature = (request, *, namespace=None))]
fn kube_status_request<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(operate_request(py, KUBERNETES, Asked::Status, request, None, namespace)?.0)
}

/// The `tycho.client.TychoStatus` of a status request in one crossing
/// (`TychoClient.status` in process): as [`kube_status_request`], each row made a
/// `TychoService` directly (no dict of it); `message` is the status's message.
#[pyfunction]
#[pyo3(signature = (request, message, *, namespace=None))]
fn kube_status_object<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    message: &str,
    namespace: Option<String>,
) -> PyResult<Bound<'py, crate::bindings::results::TychoStatus>> {
    let (rows, _) = request_value(py, KUBERNETES, Asked::Status, request, None, namespace)?;
    let rows = rows.as_array().map(Vec::as_slice).unwrap_or_default();
    crate::bindings::results::TychoStatus::from_rows(py, rows, message)
}

/// Deletes the system of a delete request in one crossing (`tycho.actions`'
/// `DeleteSystemResource`): `request` checked against the API schema's
/// `DeleteRequest`, then everything labelled `tycho-guid=<name>`; returns `{}`.
#[pyfunction]
#[pyo3(signature = (request, *, namespace=None))]
fn kube_delete_request<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(operate_request(py, KUBERNETES, Asked::Delete, request, None, namespace)?.0)
}

/// Patches labels and cpu/memory of a running system (`tycho.model.ModifySystem.to_dict()`,
/// or the object itself with `skip`/`to_plain`, as [`kube_start`] takes it); returns
/// `{"patches": [...]}`.
#[pyfunction]
#[pyo3(signature = (modify, *, config=None, namespace=None, skip=None, to_plain=None))]
fn kube_modify<'py>(
    py: Python<'py>,
    modify: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
    skip: Option<&Bound<'py, PyDict>>,
    to_plain: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let modify = model_value(modify, "modify", skip, to_plain)?;
    operate(py, KUBERNETES, config, namespace, |_| {
        Ok(Operation::Modify(modify))
    })
}

/// Applies a modify request in one crossing (`tycho.actions`' `ModifySystemResource`):
/// `request` checked against the API schema's `ModifyRequest`, then its labels and
/// cpu/memory patched onto the system `tycho-guid`; returns `{"patches": [...]}`.
#[pyfunction]
#[pyo3(signature = (request, *, config=None, namespace=None))]
fn kube_modify_request<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(operate_request(py, KUBERNETES, Asked::Modify, request, config, namespace)?.0)
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

/// Where a [`ProgressFollower`] is.
enum FollowState {
    /// Not begun (the follower connects on the first `__anext__`).
    New,
    Following(Box<crate::exec::kube::wait::Follower>),
    Done,
}

/// The progress events of one system as an asyncio iterator (`TychoContext.aprogress`):
/// each event that differs from the one before, as the watches deliver changes; it ends
/// after the event that is `ready` or `failed`, or when the timeout passes. Dropping or
/// closing it frees the follower (its subscription, its watches).
#[pyclass(module = "tycho._native", name = "ProgressFollower", frozen)]
struct ProgressFollower {
    sid: String,
    namespace: Option<String>,
    timeout: std::time::Duration,
    state: std::sync::Arc<tokio::sync::Mutex<FollowState>>,
}

#[pymethods]
impl ProgressFollower {
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        use futures::FutureExt;
        let state = std::sync::Arc::clone(&self.state);
        let (sid, namespace, timeout) = (self.sid.clone(), self.namespace.clone(), self.timeout);
        let next = async move {
            let mut st = state.lock().await;
            if matches!(*st, FollowState::New) {
                match crate::exec::kube::wait::Follower::new(&sid, namespace.as_deref(), timeout)
                    .await
                {
                    Ok(f) => *st = FollowState::Following(Box::new(f)),
                    Err(e) => {
                        *st = FollowState::Done;
                        return Err(e);
                    }
                }
            }
            let event = match &mut *st {
                FollowState::Following(f) => f.next().await,
                _ => None,
            };
            if event.is_none() {
                *st = FollowState::Done;
            }
            Ok(event)
        };
        pyo3_async_runtimes::generic::future_into_py::<super::registry::AioRuntime, _, _>(
            py,
            async move {
                let outcome = std::panic::AssertUnwindSafe(next).catch_unwind().await;
                let Some(_entry) = super::lifecycle::enter() else {
                    return Err(pyo3::exceptions::PyRuntimeError::new_err(
                        "tycho async call refused: the interpreter is exiting",
                    ));
                };
                Python::attach(|py| match outcome {
                    Ok(Ok(Some(event))) => to_py(py, &progress_value(&event)).map(Bound::unbind),
                    Ok(Ok(None)) => Err(pyo3::exceptions::PyStopAsyncIteration::new_err(())),
                    Ok(Err(e)) => Err(crate::bindings::to_pyerr(py, e)),
                    Err(_) => Err(crate::bindings::to_pyerr(
                        py,
                        crate::error::Error::internal("following the system failed (a bug)"),
                    )),
                })
            },
        )
    }

    /// Stops following (the next `__anext__` ends the iteration).
    fn close(&self) {
        if let Ok(mut st) = self.state.try_lock() {
            *st = FollowState::Done;
        }
    }
}

/// A [`ProgressFollower`] of system `sid` for at most `timeout` seconds (None: a day).
#[pyfunction]
#[pyo3(signature = (sid, timeout=None, *, namespace=None))]
fn kube_follow(
    py: Python<'_>,
    sid: String,
    timeout: Option<f64>,
    namespace: Option<String>,
) -> PyResult<ProgressFollower> {
    let most = crate::exec::kube::wait::MAX_FOLLOW;
    let timeout = match timeout {
        None => most,
        Some(t) if t.is_finite() && t >= 0.0 => {
            std::time::Duration::from_secs_f64(t.min(most.as_secs_f64()))
        }
        Some(t) => {
            return Err(crate::bindings::to_pyerr(
                py,
                crate::error::Error::input(format!("timeout must be a number of seconds, not {t}")),
            ))
        }
    };
    Ok(ProgressFollower {
        sid,
        namespace,
        timeout,
        state: std::sync::Arc::new(tokio::sync::Mutex::new(FollowState::New)),
    })
}
