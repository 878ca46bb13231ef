//! `tycho.tycho_utils.to_plain`, the one walk that turns any Python value into plain
//! dicts, lists and scalars for the core (the Python face calls it; [`super::PlainWalk`]
//! hands it what it does not convert itself).
//!
//! Objects are converted with their `to_dict()` method, else `__json__()`, else
//! `isoformat()`, else their public, non-callable instance attributes; anything else,
//! and an object met again on its own path (a reference cycle), becomes its `str()`.
//! Mapping keys that are not str, int, float, bool or None become their `str()`;
//! tuples and sets become lists. A value nested deeper than
//! [`crate::limits::MAX_DEPTH`] mappings and sequences (or `to_dict()` results chained
//! deeper than [`MAX_HOPS`]) raises TychoException naming the field.

use crate::limits::MAX_DEPTH;
use pyo3::exceptions::{PyRecursionError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple};
use std::collections::HashSet;

/// How many conversions may be nested in all (`to_dict()` results included), so an
/// object whose `to_dict()` returns a new object of its kind, forever, ends in an error
/// as Python's recursion limit ended it.
const MAX_HOPS: usize = 900;

/// Why a walk stopped.
enum Stop {
    Py(PyErr),
    Deep,
}

impl From<PyErr> for Stop {
    fn from(e: PyErr) -> Self {
        Stop::Py(e)
    }
}

struct Walk<'py> {
    seen: HashSet<usize>,
    path: Vec<Bound<'py, PyAny>>,
    hops: usize,
}

fn is_scalar(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_none()
        || obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyInt>()
        || obj.is_instance_of::<PyFloat>()
        || obj.is_instance_of::<PyBool>()
}

impl<'py> Walk<'py> {
    fn key(&self, k: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if is_scalar(k) {
            Ok(k.clone())
        } else {
            Ok(k.str()?.into_any())
        }
    }

    fn walk(&mut self, value: &Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>, Stop> {
        let py = value.py();
        if is_scalar(value) {
            return Ok(value.clone());
        }
        let marker = value.as_ptr() as usize;
        if self.seen.contains(&marker) {
            return Ok(value.str()?.into_any());
        }
        if self.path.len() >= MAX_DEPTH || self.hops >= MAX_HOPS {
            return Err(Stop::Deep);
        }
        self.seen.insert(marker);
        self.hops += 1;
        let out = self.convert(py, value);
        self.hops -= 1;
        self.seen.remove(&marker);
        out
    }

    fn convert(
        &mut self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
    ) -> Result<Bound<'py, PyAny>, Stop> {
        if let Ok(d) = value.cast::<PyDict>() {
            let out = PyDict::new(py);
            for item in d.call_method0(pyo3::intern!(py, "items"))?.try_iter()? {
                let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?.extract()?;
                self.path.push(k.clone());
                let plain = self.walk(&v)?;
                self.path.pop();
                out.set_item(self.key(&k)?, plain)?;
            }
            return Ok(out.into_any());
        }
        if value.is_instance_of::<PyList>()
            || value.is_instance_of::<PyTuple>()
            || value.is_instance_of::<PySet>()
            || value.is_instance_of::<PyFrozenSet>()
        {
            let out = PyList::empty(py);
            for (i, v) in value.try_iter()?.enumerate() {
                self.path.push(pyo3::types::PyInt::new(py, i).into_any());
                let plain = self.walk(&v?)?;
                self.path.pop();
                out.append(plain)?;
            }
            return Ok(out.into_any());
        }
        for method in [pyo3::intern!(py, "to_dict"), pyo3::intern!(py, "__json__")] {
            let Ok(function) = value.getattr(method) else {
                continue;
            };
            if !function.is_callable() {
                continue;
            }
            match function.call0() {
                // e.g. an unbound method on a class object: fall through.
                Err(e) if e.is_instance_of::<PyTypeError>(py) => continue,
                Err(e) => return Err(Stop::Py(e)),
                Ok(result) => {
                    // The result stands for the object: its own walk, on the same path.
                    self.hops += 1;
                    let out = if self.hops >= MAX_HOPS {
                        Err(Stop::Deep)
                    } else {
                        self.walk(&result)
                    };
                    self.hops -= 1;
                    return out;
                }
            }
        }
        if let Ok(isoformat) = value.getattr(pyo3::intern!(py, "isoformat")) {
            if isoformat.is_callable() {
                return Ok(isoformat.call0()?);
            }
        }
        if let Ok(attrs) = value.getattr(pyo3::intern!(py, "__dict__")) {
            if let Ok(attrs) = attrs.cast::<PyDict>() {
                let out = PyDict::new(py);
                for (k, v) in attrs.iter() {
                    let Ok(name) = k.cast::<PyString>() else {
                        continue;
                    };
                    if name.to_cow()?.starts_with('_') || v.is_callable() {
                        continue;
                    }
                    self.path.push(k.clone());
                    let plain = self.walk(&v)?;
                    self.path.pop();
                    out.set_item(&k, plain)?;
                }
                return Ok(out.into_any());
            }
        }
        Ok(value.str()?.into_any())
    }
}

/// The error of a value nested too deep at `path`: `<what> field '<a.b.0>': nested
/// deeper than 128 levels of mappings and sequences`, the path as `exc.field`.
fn too_deep(py: Python<'_>, what: &str, path: &[Bound<'_, PyAny>]) -> PyErr {
    let parts: Vec<String> = path
        .iter()
        .take(MAX_DEPTH + 1)
        .map(|p| p.str().map(|s| s.to_string()).unwrap_or_default())
        .collect();
    let mut at = parts.join(".");
    if at.chars().count() > 200 {
        at = at.chars().take(200).collect::<String>() + "...";
    }
    let message = if path.is_empty() {
        format!("{what}: nested deeper than {MAX_DEPTH} levels of mappings and sequences")
    } else {
        format!(
            "{what} field '{at}': nested deeper than {MAX_DEPTH} levels of mappings and sequences"
        )
    };
    let mut error = crate::error::Error::input(message);
    // The path as written (not echoed): `exc.field` of the original walk.
    error.field = (!at.is_empty()).then_some(at);
    super::error::to_pyerr(py, error)
}

/// The plain form of `value` (see the module documentation); `what` names it in errors.
pub(crate) fn to_plain<'py>(value: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    let mut walk = Walk {
        seen: HashSet::new(),
        path: Vec::new(),
        hops: 0,
    };
    match walk.walk(value) {
        Ok(plain) => Ok(plain),
        Err(Stop::Deep) => Err(too_deep(py, what, &walk.path)),
        // A to_dict() of a user's object that recurses by itself.
        Err(Stop::Py(e)) if e.is_instance_of::<PyRecursionError>(py) => {
            Err(too_deep(py, what, &walk.path))
        }
        Err(Stop::Py(e)) => Err(e),
    }
}
