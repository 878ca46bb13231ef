//! Python bindings of stop, resume, touch and culling (`tycho._native.system_*`),
//! called by `tycho.kube.KubernetesCompute` and `tycho.dockerc.DockerComposeCompute`
//! (each names its backplane). Every call releases the GIL; errors become
//! `tycho.exceptions` classes; a panic becomes TychoException. Each operation is counted
//! in [`crate::metrics`] by outcome.

use crate::bindings::{config_value, from_py, to_py};
use crate::exec::backplane::Backplane;
use crate::metrics::Operation;
use pyo3::prelude::*;

/// Registers the functions on the native module.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(system_stop, m)?)?;
    m.add_function(wrap_pyfunction!(system_resume, m)?)?;
    m.add_function(wrap_pyfunction!(system_touch, m)?)?;
    m.add_function(wrap_pyfunction!(system_cull, m)?)?;
    Ok(())
}

/// Stops system `name` (a GUID) on `backplane`; returns `{"name", ...}`.
#[pyfunction]
#[pyo3(signature = (backplane, name, *, config=None, namespace=None))]
fn system_stop<'py>(
    py: Python<'py>,
    backplane: &str,
    name: String,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let config = config_value(config)?;
    let result = crate::bindings::run(py, || {
        let backplane = Backplane::parse(backplane)?;
        let r = crate::exec::backplane::stop(backplane, &config, &name, namespace.as_deref());
        crate::metrics::operation(Operation::Stop, &r);
        r
    })?;
    to_py(py, &result)
}

/// Resumes system `name` (a GUID) on `backplane`; returns `{"name", ...}`.
#[pyfunction]
#[pyo3(signature = (backplane, name, *, config=None, namespace=None))]
fn system_resume<'py>(
    py: Python<'py>,
    backplane: &str,
    name: String,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let config = config_value(config)?;
    let result = crate::bindings::run(py, || {
        let backplane = Backplane::parse(backplane)?;
        let r = crate::exec::backplane::resume(backplane, &config, &name, namespace.as_deref());
        crate::metrics::operation(Operation::Resume, &r);
        r
    })?;
    to_py(py, &result)
}

/// Records activity of system `name` (a GUID) now (`TYCHO_NOW` when set).
#[pyfunction]
#[pyo3(signature = (backplane, name, *, namespace=None))]
fn system_touch<'py>(
    py: Python<'py>,
    backplane: &str,
    name: String,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let result = crate::bindings::run(py, || {
        let backplane = Backplane::parse(backplane)?;
        let r = crate::exec::backplane::touch(backplane, &name, namespace.as_deref());
        crate::metrics::operation(Operation::Touch, &r);
        r
    })?;
    to_py(py, &result)
}

/// One culling pass (`crate::exec::cull`) with `options` (max_age, idle, action, username,
/// app, dry_run, now, activity_host, concurrency); returns the report.
#[pyfunction]
#[pyo3(signature = (backplane, options, *, namespace=None))]
fn system_cull<'py>(
    py: Python<'py>,
    backplane: &str,
    options: &Bound<'py, PyAny>,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let options = from_py(options, "options")?;
    let result = crate::bindings::run(py, || {
        let backplane = Backplane::parse(backplane)?;
        let options = crate::exec::cull::CullOptions::from_value(&options)?;
        crate::exec::backplane::cull(backplane, &options, namespace.as_deref())
    })?;
    to_py(py, &result)
}
