//! Conversions between Python values and the core's JSON values, and core errors to
//! `tycho.exceptions` classes; [`run`] releases the GIL and turns a Rust panic into
//! `TychoException`, never a crash.

use crate::error::{Error, ErrorKind};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
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
    // Where a node is, kept cheap: a parent index and the key object or list index,
    // spelled out only for the message of a node at fault.
    enum Step<'py> {
        Key(Bound<'py, PyAny>),
        Index(usize),
    }
    let mut steps: Vec<(usize, Step<'_>)> = Vec::new(); // (parent + 1, step); 0: the root
    let at = |steps: &Vec<(usize, Step<'_>)>, mut node: usize| {
        let mut parts = Vec::new();
        while node > 0 {
            let (parent, step) = &steps[node - 1];
            parts.push(match step {
                Step::Key(k) => k.str().map(|s| s.to_string()).unwrap_or_default(),
                Step::Index(i) => i.to_string(),
            });
            node = *parent;
        }
        if parts.is_empty() {
            return what.to_string();
        }
        parts.reverse();
        format!("{what} field '{}'", crate::limits::echo(&parts.join(".")))
    };
    let mut stack: Vec<(Bound<'_, PyAny>, usize, usize)> = vec![(obj.clone(), 1, 0)];
    while let Some((node, depth, here)) = stack.pop() {
        let container = node.is_instance_of::<PyDict>()
            || node.is_instance_of::<PyList>()
            || node.is_instance_of::<PyTuple>();
        if !container {
            if let Ok(f) = node.cast::<PyFloat>() {
                let v = f.value();
                if !v.is_finite() {
                    return Err(to_pyerr(
                        py,
                        Error::input(format!("{}: {v} is not a finite number", at(&steps, here))),
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
                        at(&steps, here),
                        crate::limits::echo(&text)
                    )),
                ));
            }
            continue;
        }
        if depth > crate::limits::MAX_DEPTH {
            return Err(to_pyerr(py, crate::limits::depth_error(&at(&steps, here))));
        }
        let scalar = |v: &Bound<'_, PyAny>| {
            v.is_none()
                || v.is_instance_of::<PyString>()
                || v.is_instance_of::<pyo3::types::PyBool>()
        };
        if let Ok(d) = node.cast::<PyDict>() {
            for (k, v) in d.iter() {
                if scalar(&v) {
                    continue;
                }
                steps.push((here, Step::Key(k)));
                stack.push((v, depth + 1, steps.len()));
            }
        } else if let Ok(l) = node.cast::<PyList>() {
            for (i, v) in l.iter().enumerate() {
                if scalar(&v) {
                    continue;
                }
                steps.push((here, Step::Index(i)));
                stack.push((v, depth + 1, steps.len()));
            }
        } else if let Ok(t) = node.cast::<PyTuple>() {
            for (i, v) in t.iter().enumerate() {
                if scalar(&v) {
                    continue;
                }
                steps.push((here, Step::Index(i)));
                stack.push((v, depth + 1, steps.len()));
            }
        }
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
