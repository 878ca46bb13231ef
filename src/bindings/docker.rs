//! Python bindings of the Docker backplane (`tycho._native.docker_*`), called by
//! `tycho.dockerc.DockerComposeCompute`: each public operation of the compute is one of
//! these calls, a model-level one (`docker_start(system)`, ...) or a request-level one
//! (`docker_start_request(request)`, ...: checked, parsed and run in one crossing). Each
//! is one `crate::exec::backplane::Target::run` on the Docker backplane (through
//! `bindings::stopcull::operate`), counted in [`crate::metrics`] by outcome; the GIL is
//! released while it talks to the Engine. Errors become `tycho.exceptions` classes
//! (StartException, DeleteException, ModifyException, TychoException); a panic becomes
//! TychoException.

use super::stopcull::{model_value, operate, operate_request, request_value, Asked};
use crate::exec::backplane::{Backplane, Operation};
use pyo3::prelude::*;
use pyo3::types::PyDict;

const DOCKER: Backplane = Backplane::Docker;

/// Registers the Docker backplane's functions on the native module.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(docker_start, m)?)?;
    m.add_function(wrap_pyfunction!(docker_start_request, m)?)?;
    m.add_function(wrap_pyfunction!(docker_status, m)?)?;
    m.add_function(wrap_pyfunction!(docker_status_request, m)?)?;
    m.add_function(wrap_pyfunction!(docker_status_object, m)?)?;
    m.add_function(wrap_pyfunction!(docker_delete, m)?)?;
    m.add_function(wrap_pyfunction!(docker_delete_request, m)?)?;
    m.add_function(wrap_pyfunction!(docker_modify, m)?)?;
    m.add_function(wrap_pyfunction!(docker_modify_request, m)?)?;
    Ok(())
}

/// Starts a system (`tycho.model.System.to_dict()`, or the `System` itself with
/// `skip`/`to_plain`: `tycho.model._NATIVE_MODEL`, see [`model_value`]); returns
/// `{"name", "sid", "containers": {container: {"ip_address", "port-1": port}}, "conn_string"}`.
#[pyfunction]
#[pyo3(signature = (system, *, config=None, skip=None, to_plain=None))]
fn docker_start<'py>(
    py: Python<'py>,
    system: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    skip: Option<&Bound<'py, PyDict>>,
    to_plain: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let system = model_value(system, "system", skip, to_plain)?;
    operate(py, DOCKER, config, None, |_| {
        let system = crate::model::System::from_plain(system)?;
        Ok(Operation::Start(Box::new(system)))
    })
}

/// Starts the system of a start request in one crossing: `request` checked against the
/// API schema's `System`, parsed, compiled and started. Returns `(result, system name)`:
/// the result as [`docker_start`]'s, the model's `name` (`<app>-<guid>`).
#[pyfunction]
#[pyo3(signature = (request, *, config=None))]
fn docker_start_request<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, String)> {
    let (result, name) = operate_request(py, DOCKER, Asked::Start, request, config, None)?;
    Ok((result, name.unwrap_or_default()))
}

/// Status rows of the systems with GUID `name`, of `username`, or all; with `reasons`
/// each row also has `reason` (why it is not ready, else None).
#[pyfunction]
#[pyo3(signature = (name=None, username=None, *, config=None, reasons=false))]
fn docker_status<'py>(
    py: Python<'py>,
    name: Option<String>,
    username: Option<String>,
    config: Option<&Bound<'py, PyAny>>,
    reasons: bool,
) -> PyResult<Bound<'py, PyAny>> {
    operate(py, DOCKER, config, None, |_| {
        Ok(Operation::Status {
            name,
            username,
            reasons,
        })
    })
}

/// Status rows for a status request in one crossing: `request` checked against the API
/// schema's `StatusRequest`, then the rows of its `name` (GUID), of its `username`, or all.
#[pyfunction]
#[pyo3(signature = (request, *, config=None))]
fn docker_status_request<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(operate_request(py, DOCKER, Asked::Status, request, config, None)?.0)
}

/// The `tycho.client.TychoStatus` of a status request in one crossing (`TychoClient.status`
/// in process): as [`docker_status_request`], each row made a `TychoService` directly
/// (no dict of it); `message` is the status's message.
#[pyfunction]
#[pyo3(signature = (request, message, *, config=None))]
fn docker_status_object<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    message: &str,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, crate::bindings::results::TychoStatus>> {
    let (rows, _) = request_value(py, DOCKER, Asked::Status, request, config, None)?;
    let rows = rows.as_array().map(Vec::as_slice).unwrap_or_default();
    crate::bindings::results::TychoStatus::from_rows(py, rows, message)
}

/// Removes the containers and network of system `name` (a GUID); returns `{}`.
#[pyfunction]
#[pyo3(signature = (name, *, config=None))]
fn docker_delete<'py>(
    py: Python<'py>,
    name: String,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    operate(py, DOCKER, config, None, |_| Ok(Operation::Delete(name)))
}

/// Deletes the system of a delete request in one crossing: `request` checked against the
/// API schema's `DeleteRequest`, then its containers and network removed; returns `{}`.
#[pyfunction]
#[pyo3(signature = (request, *, config=None))]
fn docker_delete_request<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(operate_request(py, DOCKER, Asked::Delete, request, config, None)?.0)
}

/// Updates cpu/memory of a running system (`tycho.model.ModifySystem.to_dict()`, or the
/// object itself with `skip`/`to_plain`);
/// returns `{"patches": [...]}`; labels are refused (ModifyException).
#[pyfunction]
#[pyo3(signature = (modify, *, config=None, skip=None, to_plain=None))]
fn docker_modify<'py>(
    py: Python<'py>,
    modify: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    skip: Option<&Bound<'py, PyDict>>,
    to_plain: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let modify = model_value(modify, "modify", skip, to_plain)?;
    operate(py, DOCKER, config, None, |_| Ok(Operation::Modify(modify)))
}

/// Applies a modify request in one crossing: `request` checked against the API schema's
/// `ModifyRequest`, then its cpu/memory updated on the system `tycho-guid` (labels are
/// refused: ModifyException); returns `{"patches": [...]}`.
#[pyfunction]
#[pyo3(signature = (request, *, config=None))]
fn docker_modify_request<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(operate_request(py, DOCKER, Asked::Modify, request, config, None)?.0)
}
