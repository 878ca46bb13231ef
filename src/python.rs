//! Python bindings (`tycho._native`): the core's entry points as functions taking and
//! returning plain dicts and lists. Errors become `tycho.exceptions` classes; a Rust
//! panic is caught and raised as `TychoException`, never as a crash.

use crate::compile::{self, CompileOptions};
use crate::error::{Error, ErrorKind};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn exception_class(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Start => "StartException",
        ErrorKind::Delete => "DeleteException",
        ErrorKind::Modify => "ModifyException",
        ErrorKind::Context => "ContextException",
        // Internal (a bug), Input, Template, Config, Kube.
        _ => "TychoException",
    }
}

/// Converts a core error into the matching `tycho.exceptions` instance, with the field
/// at fault as `exc.field` and a render error's template and line as `exc.template` and
/// `exc.line` (None when not known).
pub(crate) fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let class = exception_class(e.kind);
    let made = py
        .import("tycho.exceptions")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((e.message.clone(),)))
        .and_then(|exc| {
            exc.setattr("field", e.field.clone())?;
            exc.setattr("template", e.template.clone())?;
            exc.setattr("line", e.line)?;
            Ok(exc)
        });
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) => PyRuntimeError::new_err(e.message),
    }
}

/// Runs `f` without the GIL, catching panics (an [`ErrorKind::Internal`] error, raised
/// as `TychoException` saying it is a bug).
pub(crate) fn run<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> crate::Result<T> + Send,
) -> PyResult<T> {
    let out = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_pyerr(py, e)),
        Err(panic) => Err(to_pyerr(
            py,
            Error::internal(crate::error::panic_message(panic.as_ref())),
        )),
    }
}

/// Refuses, before conversion (which recurses and turns NaN into null), a Python value
/// nested deeper than [`crate::limits::MAX_DEPTH`] or containing itself, and a float
/// that is NaN or infinite or an int outside 64 bits, naming where it sits.
fn check_py_value(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<()> {
    use pyo3::types::{PyFloat, PyInt, PyList, PyTuple};
    let py = obj.py();
    let mut stack: Vec<(Bound<'_, PyAny>, usize, String)> = vec![(obj.clone(), 1, String::new())];
    let at = |path: &str| {
        if path.is_empty() {
            what.to_string()
        } else {
            format!(
                "{what} field '{}'",
                crate::limits::echo(path.trim_start_matches('.'))
            )
        }
    };
    while let Some((node, depth, path)) = stack.pop() {
        let children: Vec<(Bound<'_, PyAny>, String)> = if let Ok(d) = node.cast::<PyDict>() {
            d.iter()
                .map(|(k, v)| {
                    let key = k.str().map(|s| s.to_string()).unwrap_or_default();
                    (v, format!("{path}.{key}"))
                })
                .collect()
        } else if let Ok(l) = node.cast::<PyList>() {
            l.iter()
                .enumerate()
                .map(|(i, v)| (v, format!("{path}.{i}")))
                .collect()
        } else if let Ok(t) = node.cast::<PyTuple>() {
            t.iter()
                .enumerate()
                .map(|(i, v)| (v, format!("{path}.{i}")))
                .collect()
        } else {
            if let Ok(f) = node.cast::<PyFloat>() {
                let v = f.value();
                if !v.is_finite() {
                    return Err(to_pyerr(
                        py,
                        Error::input(format!("{}: {v} is not a finite number", at(&path))),
                    ));
                }
            } else if node.is_instance_of::<PyInt>()
                && node.extract::<i64>().is_err()
                && node.extract::<u64>().is_err()
            {
                let text = node.str().map(|s| s.to_string()).unwrap_or_default();
                return Err(to_pyerr(
                    py,
                    Error::input(format!(
                        "{}: {} is out of range (64-bit integers)",
                        at(&path),
                        crate::limits::echo(&text)
                    )),
                ));
            }
            continue;
        };
        if depth > crate::limits::MAX_DEPTH {
            return Err(to_pyerr(py, crate::limits::depth_error(&at(&path))));
        }
        stack.extend(children.into_iter().map(|(c, p)| (c, depth + 1, p)));
    }
    Ok(())
}

pub(crate) fn from_py(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    check_py_value(obj, what)?;
    let v = pythonize::depythonize::<Value>(obj).map_err(|e| {
        to_pyerr(
            obj.py(),
            Error::input(format!("{what}: {}", crate::limits::echo(&e.to_string()))),
        )
    })?;
    crate::limits::check_depth(&v, what).map_err(|e| to_pyerr(obj.py(), e))?;
    Ok(v)
}

pub(crate) fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, v).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

pub(crate) fn config_value(config: Option<&Bound<'_, PyAny>>) -> PyResult<Value> {
    match config {
        None => Ok(crate::config::default_config().clone()),
        Some(c) if c.is_none() => Ok(crate::config::default_config().clone()),
        Some(c) => {
            // tycho.config.Config keeps its mapping in `.conf`.
            let inner = if c.hasattr("conf")? && !c.is_instance_of::<PyDict>() {
                c.getattr("conf")?
            } else {
                c.clone()
            };
            from_py(&inner, "config")
        }
    }
}

/// Compiles a start request into its Kubernetes objects (Deployment, NetworkPolicy, Services).
#[pyfunction]
#[pyo3(signature = (request, ambassador=false, identifier=None, deployment_uid=None, config=None, missing_claims=None, secret_env=None))]
#[allow(clippy::too_many_arguments)]
fn compile_request<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    ambassador: bool,
    identifier: Option<String>,
    deployment_uid: Option<String>,
    config: Option<&Bound<'py, PyAny>>,
    missing_claims: Option<Vec<String>>,
    secret_env: Option<Vec<(String, String)>>,
) -> PyResult<Bound<'py, PyAny>> {
    let request = from_py(request, "request")?;
    let config = config_value(config)?;
    let options = CompileOptions {
        ambassador,
        identifier,
        deployment_uid,
        missing_claims: missing_claims.unwrap_or_default(),
        secret_env: secret_env.unwrap_or_default(),
    };
    let objects = run(py, || {
        compile::compile(&config, &request, &options).map(|c| c.objects())
    })?;
    to_py(py, &Value::Array(objects))
}

/// Parses a start request into the system model (a dict with the original's attribute names).
#[pyfunction]
#[pyo3(signature = (request, identifier=None, config=None))]
fn parse_system<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    identifier: Option<String>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let request = from_py(request, "request")?;
    let config = config_value(config)?;
    let system = run(py, || {
        let s = compile::parse_system(&config, &request, identifier)?;
        serde_json::to_value(&s).map_err(|e| Error::input(e.to_string()))
    })?;
    to_py(py, &system)
}

/// Renders template `name` with `context` (a dict) and returns the YAML documents.
#[pyfunction]
#[pyo3(signature = (name, context, config=None))]
fn render_template<'py>(
    py: Python<'py>,
    name: String,
    context: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut context = from_py(context, "context")?;
    let config = config_value(config)?;
    let docs = run(py, || {
        compile::add_container_env(&config, &mut context)?;
        let paths = crate::config::template_paths(&config);
        crate::render::render(
            &paths,
            &name,
            minijinja::Value::from(minijinja::value::Serde(&context)),
        )
    })?;
    to_py(py, &Value::Array(docs))
}

/// Renders template text with a context, printing values as Python does.
#[pyfunction]
fn render_string(py: Python<'_>, source: String, context: &Bound<'_, PyAny>) -> PyResult<String> {
    let context = from_py(context, "context")?;
    run(py, || crate::render::render_string(&source, &context))
}

/// `value` with every string that holds template syntax made to render as itself
/// (user input merged into a compose document stays data).
#[pyfunction]
fn template_literal<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let v = from_py(value, "value")?;
    to_py(py, &crate::render::literal_value(v))
}

/// Reads YAML text the way PyYAML's safe_load_all does.
#[pyfunction]
fn yaml_load_all<'py>(py: Python<'py>, text: String) -> PyResult<Bound<'py, PyAny>> {
    let docs = run(py, || crate::yaml::load_all(&text))?;
    to_py(py, &Value::Array(docs))
}

/// Writes documents as YAML.
#[pyfunction]
fn yaml_dump_all(py: Python<'_>, docs: &Bound<'_, PyAny>) -> PyResult<String> {
    let docs = from_py(docs, "documents")?;
    let list = match docs {
        Value::Array(a) => a,
        other => vec![other],
    };
    run(py, || Ok(crate::yaml::dump_all(&list)))
}

/// Runs the `tycho` command line with `argv` (program name first); returns the exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> PyResult<i32> {
    run(py, || Ok(crate::cli::run(argv)))
}

/// The process's metrics in the OpenMetrics text format (`tycho.metrics()`).
#[pyfunction]
fn metrics_text() -> String {
    crate::metrics::text()
}

/// The native core of the `tycho` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(compile_request, m)?)?;
    m.add_function(wrap_pyfunction!(parse_system, m)?)?;
    m.add_function(wrap_pyfunction!(render_template, m)?)?;
    m.add_function(wrap_pyfunction!(render_string, m)?)?;
    m.add_function(wrap_pyfunction!(yaml_load_all, m)?)?;
    m.add_function(wrap_pyfunction!(template_literal, m)?)?;
    m.add_function(wrap_pyfunction!(yaml_dump_all, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(metrics_text, m)?)?;
    m.add("DEFAULT_CONFIG", crate::config::DEFAULT_CONFIG)?;
    crate::python_kube::init(m)?;
    crate::python_docker::init(m)?;
    crate::python_registry::init(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
