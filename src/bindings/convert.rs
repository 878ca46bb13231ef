//! Conversions between Python values and the core's JSON values, and core errors to
//! `tycho.exceptions` classes; [`run`] releases the GIL and turns a Rust panic into
//! `TychoException`, never a crash.

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
