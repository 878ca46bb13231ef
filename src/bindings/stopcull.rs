//! Python bindings of the operations on a named backplane: stop, resume, touch and
//! culling (`tycho._native.system_*`, called by `tycho.kube.KubernetesCompute` and
//! `tycho.dockerc.DockerComposeCompute`, each naming its backplane), the modify
//! request's rule for `tycho.model.ModifySystem.parse_modify` (`modify_model`), and the one path of
//! every operation binding ([`operate`], [`operate_request`]; `bindings::kube` and
//! `bindings::docker` call them): the configuration converted, the operation made and
//! run without the GIL through `crate::exec::backplane::Target::run`, which picks the
//! back end and counts the operation in [`crate::metrics`] by outcome. Errors become
//! `tycho.exceptions` classes; a panic becomes TychoException.

use crate::bindings::{config_value, from_py, to_py, PlainWalk};
use crate::exec::backplane::{Backplane, Operation, Target};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;

/// Registers the functions on the native module.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(system_stop, m)?)?;
    m.add_function(wrap_pyfunction!(system_resume, m)?)?;
    m.add_function(wrap_pyfunction!(system_touch, m)?)?;
    m.add_function(wrap_pyfunction!(system_cull, m)?)?;
    m.add_function(wrap_pyfunction!(modify_model, m)?)?;
    Ok(())
}

/// The modify request rule (`crate::model::request::modify_request`) for
/// `tycho.model.ModifySystem.parse_modify`: `{"tycho-guid", "labels", "cpu", "memory"}`
/// to `{"guid", "labels", "resources", "patch"}`.
#[pyfunction]
fn modify_model<'py>(py: Python<'py>, request: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let request = from_py(request, "request")?;
    to_py(py, &crate::model::request::modify_request(&request))
}

/// Runs the operation `make` builds (from the configuration, without the GIL) on
/// `backplane` in `namespace` (Kubernetes: None lets the executor resolve it: NAMESPACE,
/// the pod's service-account namespace, else the kubeconfig context's); the result as
/// Python.
pub(super) fn operate<'py>(
    py: Python<'py>,
    backplane: Backplane,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
    make: impl FnOnce(&Value) -> crate::Result<Operation> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    to_py(py, &operate_value(py, backplane, config, namespace, make)?)
}

/// [`operate`]'s result as the core's value (for a caller that builds its own Python
/// objects from it, as `TychoStatus` from status rows).
pub(super) fn operate_value<'py>(
    py: Python<'py>,
    backplane: Backplane,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
    make: impl FnOnce(&Value) -> crate::Result<Operation> + Send,
) -> PyResult<Value> {
    let config = config_value(config)?;
    super::lifecycle::run(py, || {
        let operation = make(&config)?;
        let target = Target {
            backplane,
            config: &config,
            namespace: namespace.as_deref(),
        };
        target.run(operation)
    })
}

/// The plain form of a model argument (`system`, `modify`): a dict, or the
/// `tycho.model` object itself, converted in this crossing as its `to_dict()` would give
/// it (`model` is `tycho.model._NATIVE_MODEL`'s `skip`: the model classes converted
/// natively, anything else by the core's `to_plain` walk).
pub(super) fn model_value(
    obj: &Bound<'_, PyAny>,
    what: &str,
    skip: Option<&Bound<'_, PyDict>>,
    to_plain: Option<&Bound<'_, PyAny>>,
) -> PyResult<Value> {
    PlainWalk { skip, to_plain }.convert(obj, what)
}

/// What an API request asks for (the component of the API schema it is checked against).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked {
    /// A start request (`System`).
    Start,
    /// A status request (`StatusRequest`).
    Status,
    /// A delete request (`DeleteRequest`).
    Delete,
    /// A modify request (`ModifyRequest`).
    Modify,
}

/// A text field of a checked request (None when absent or null).
fn text_field(request: &Value, key: &str) -> Option<String> {
    request.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The operation of `request`, checked against its API schema component first (as the
/// REST server checks it): a start request parsed and compiled, a modify request in the
/// executor's form.
fn operation_of(asked: Asked, config: &Value, request: &Value) -> crate::Result<Operation> {
    let checked = |component| crate::bindings::compile::checked(component, request);
    Ok(match asked {
        Asked::Start => {
            checked("System")?;
            let system = crate::compile::parse_system(config, request, None)?;
            Operation::Start(Box::new(system))
        }
        Asked::Status => {
            checked("StatusRequest")?;
            Operation::Status {
                name: text_field(request, "name"),
                username: text_field(request, "username"),
                reasons: false,
            }
        }
        Asked::Delete => {
            checked("DeleteRequest")?;
            Operation::Delete(text_field(request, "name").unwrap_or_default())
        }
        Asked::Modify => {
            checked("ModifyRequest")?;
            Operation::Modify(crate::model::request::modify_request(request))
        }
    })
}

/// Runs an API request in one crossing (the `*_request` bindings): `request` checked,
/// made into its operation ([`operation_of`]) and run as [`operate`] runs it. Returns
/// the result and, for a start request, the system's name (`<app>-<guid>`).
pub(super) fn operate_request<'py>(
    py: Python<'py>,
    backplane: Backplane,
    asked: Asked,
    request: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
) -> PyResult<(Bound<'py, PyAny>, Option<String>)> {
    let (result, name) = request_value(py, backplane, asked, request, config, namespace)?;
    Ok((to_py(py, &result)?, name))
}

/// [`operate_request`]'s result as the core's value, with the started system's name.
pub(crate) fn request_value<'py>(
    py: Python<'py>,
    backplane: Backplane,
    asked: Asked,
    request: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
) -> PyResult<(Value, Option<String>)> {
    let request = from_py(request, "request")?;
    let name = std::sync::Mutex::new(None);
    let result = operate_value(py, backplane, config, namespace, |config| {
        let operation = operation_of(asked, config, &request)?;
        if let Operation::Start(system) = &operation {
            *name.lock().unwrap_or_else(|p| p.into_inner()) = Some(system.name.clone());
        }
        Ok(operation)
    })?;
    Ok((result, name.into_inner().unwrap_or_else(|p| p.into_inner())))
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
    by_name(py, backplane, Operation::Stop(name), config, namespace)
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
    by_name(py, backplane, Operation::Resume(name), config, namespace)
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
    by_name(py, backplane, Operation::Touch(name), None, namespace)
}

/// [`operate`] of an operation on one system of the backplane named `backplane`.
fn by_name<'py>(
    py: Python<'py>,
    backplane: &str,
    operation: Operation,
    config: Option<&Bound<'py, PyAny>>,
    namespace: Option<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let backplane = Backplane::parse(backplane).map_err(|e| crate::bindings::to_pyerr(py, e))?;
    operate(py, backplane, config, namespace, |_| Ok(operation))
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
    let result = super::lifecycle::run(py, || {
        let backplane = Backplane::parse(backplane)?;
        let options = crate::exec::cull::CullOptions::from_value(&options)?;
        let config = crate::config::default_config();
        let target = Target {
            backplane,
            config,
            namespace: namespace.as_deref(),
        };
        target.cull(&options)
    })?;
    to_py(py, &result)
}
