//! Python bindings of the Docker backplane (`tycho._native.docker_*`), called by
//! `tycho.dockerc.DockerComposeCompute`. Every call releases the GIL while it talks to
//! the Engine; errors become `tycho.exceptions` classes (StartException,
//! DeleteException, ModifyException, TychoException); a panic becomes TychoException.

use crate::bindings::{config_value, from_py, to_py};
use pyo3::prelude::*;
use serde_json::Value;

/// Registers the Docker backplane's functions on the native module.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(docker_start, m)?)?;
    m.add_function(wrap_pyfunction!(docker_status, m)?)?;
    m.add_function(wrap_pyfunction!(docker_delete, m)?)?;
    m.add_function(wrap_pyfunction!(docker_modify, m)?)?;
    Ok(())
}

/// Starts a system (`tycho.model.System.to_dict()`); returns
/// `{"name", "sid", "containers": {container: {"ip_address", "port-1": port}}, "conn_string"}`.
#[pyfunction]
#[pyo3(signature = (system, *, config=None))]
fn docker_start<'py>(
    py: Python<'py>,
    system: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let system = from_py(system, "system")?;
    let config = config_value(config)?;
    let result = crate::bindings::run(py, || {
        let system = crate::exec::kube::system_from_value(&system)?;
        crate::exec::docker::start(&config, system)
    })?;
    to_py(py, &result)
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
    let config = config_value(config)?;
    let rows = crate::bindings::run(py, || {
        crate::exec::docker::status(&config, name.as_deref(), username.as_deref(), reasons)
    })?;
    to_py(py, &Value::Array(rows))
}

/// Removes the containers and network of system `name` (a GUID); returns `{}`.
#[pyfunction]
#[pyo3(signature = (name, *, config=None))]
fn docker_delete<'py>(
    py: Python<'py>,
    name: String,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let config = config_value(config)?;
    let result = crate::bindings::run(py, || crate::exec::docker::delete(&config, &name))?;
    to_py(py, &result)
}

/// Updates cpu/memory of a running system (`tycho.model.ModifySystem.to_dict()`);
/// returns `{"patches": [...]}`; labels are refused (ModifyException).
#[pyfunction]
#[pyo3(signature = (modify, *, config=None))]
fn docker_modify<'py>(
    py: Python<'py>,
    modify: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let modify = from_py(modify, "modify")?;
    let config = config_value(config)?;
    let result = crate::bindings::run(py, || crate::exec::docker::modify(&config, &modify))?;
    to_py(py, &result)
}
