//! Conversions between Python values and the core's JSON values (core errors become
//! `tycho.exceptions` classes in [`super::error`]); [`run`] releases the GIL and turns a Rust panic into
//! `TychoException`, never a crash.

use crate::error::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub(crate) use super::error::to_pyerr;

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
// Long because: one iterative walk keeping its own stack of paths; a case per Python type.
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

/// The configuration a call names, or the built-in one (borrowed, not copied).
pub(crate) fn config_value(
    config: Option<&Bound<'_, PyAny>>,
) -> PyResult<std::borrow::Cow<'static, Value>> {
    use std::borrow::Cow;
    match config {
        None => Ok(Cow::Borrowed(crate::config::default_config())),
        Some(c) if c.is_none() => Ok(Cow::Borrowed(crate::config::default_config())),
        Some(c) => {
            // tycho.config.Config keeps its mapping in `.conf`.
            let inner = if c.hasattr("conf")? && !c.is_instance_of::<PyDict>() {
                c.getattr("conf")?
            } else {
                c.clone()
            };
            match inner.cast::<PyDict>() {
                Ok(dict) => config_parts(dict).map(Cow::Owned),
                Err(_) => from_py(&inner, "config").map(Cow::Owned),
            }
        }
    }
}

/// The parts of a configuration dict the core reads ([`crate::config::READ_PATHS`]),
/// converted; the rest (templates' own settings, comments of a large conf) is never
/// crossed over.
fn config_parts(config: &Bound<'_, PyDict>) -> PyResult<Value> {
    let mut out = Value::Object(serde_json::Map::new());
    'paths: for path in crate::config::READ_PATHS {
        let mut node: Bound<'_, PyAny> = config.clone().into_any();
        for key in *path {
            let Ok(dict) = node.cast::<PyDict>() else {
                if node.is_none() {
                    continue 'paths;
                }
                // Another kind of mapping (or a value where one was expected): convert
                // it all, as before this shortcut.
                return from_py(config.as_any(), "config");
            };
            match dict.get_item(key)? {
                Some(next) => node = next,
                None => continue 'paths,
            }
        }
        let value = from_py(&node, &format!("config {}", path.join(".")))?;
        let mut slot = &mut out;
        for (i, key) in path.iter().enumerate() {
            let map = slot.as_object_mut().expect("built as mappings");
            slot = if i + 1 == path.len() {
                map.insert(key.to_string(), value);
                break;
            } else {
                map.entry(key.to_string())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()))
            };
        }
    }
    Ok(out)
}

/// Converts Python values into plain JSON in one native pass, as
/// `tycho.tycho_utils.to_plain` followed by [`from_py`] would (same result, same errors,
/// a fraction of the time):
///
/// * None, bool, str, int, float, and dicts with string keys, lists and tuples are
///   converted here; a float that is not finite, an int beyond 64 bits and a value
///   nested deeper than [`crate::limits::MAX_DEPTH`] are errors naming the field;
/// * an object whose exact type is a key of `skip` becomes its public instance
///   attributes less the names in `skip[type]` (what the `tycho.model` classes' `to_dict`
///   gives);
/// * anything else (sets, dicts with other keys, other objects) goes through `to_plain`
///   (when given; else through [`from_py`]).
pub(crate) struct PlainWalk<'a, 'py> {
    /// `{type: names left out}` of the model classes converted natively.
    pub skip: Option<&'a Bound<'py, PyDict>>,
    /// `tycho.tycho_utils.to_plain`.
    pub to_plain: Option<&'a Bound<'py, PyAny>>,
}

/// How deep [`PlainWalk`] goes before it hands the whole value to `to_plain` (which
/// tracks cycles), as `to_plain`'s own fast path does.
const FAST_DEPTH: usize = 64;

/// Why a walk stopped.
enum Walked {
    Py(PyErr),
    Deep,
}

impl From<PyErr> for Walked {
    fn from(e: PyErr) -> Self {
        Walked::Py(e)
    }
}

/// Where a value sits: the keys and indices from the root.
enum Step<'py> {
    Key(Bound<'py, PyAny>),
    Index(usize),
}

fn field(what: &str, path: &[Step<'_>]) -> String {
    if path.is_empty() {
        return what.to_string();
    }
    let parts: Vec<String> = path
        .iter()
        .map(|s| match s {
            Step::Key(k) => k.str().map(|s| s.to_string()).unwrap_or_default(),
            Step::Index(i) => i.to_string(),
        })
        .collect();
    format!("{what} field '{}'", crate::limits::echo(&parts.join(".")))
}

impl<'py> PlainWalk<'_, 'py> {
    /// The plain form of `obj`; errors name it `what` (and the field). A value nested
    /// deeper than [`FAST_DEPTH`] (a reference cycle, maybe) is converted again the
    /// slow way, through `to_plain`, which turns a cycle into text as it always did.
    pub fn convert(&self, obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Value> {
        let mut path = Vec::new();
        match self.walk(obj, what, &mut path) {
            Err(Walked::Deep) => self.generic(obj, what, &[]),
            Err(Walked::Py(e)) => Err(e),
            Ok(v) => Ok(v),
        }
    }

    fn generic(&self, obj: &Bound<'py, PyAny>, what: &str, path: &[Step<'py>]) -> PyResult<Value> {
        // The one to_plain walk (`super::plain`), natively (`to_plain` says whether to).
        let plain = match self.to_plain {
            Some(_) => super::plain::to_plain(obj, "value")?,
            None => obj.clone(),
        };
        from_py(&plain, &field(what, path))
    }

    // Long because: one case per Python type, in the order the original's `to_plain` tries them.
    fn walk(
        &self,
        obj: &Bound<'py, PyAny>,
        what: &str,
        path: &mut Vec<Step<'py>>,
    ) -> Result<Value, Walked> {
        use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyTuple};
        let py = obj.py();
        if obj.is_none() {
            return Ok(Value::Null);
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Value::String(s.to_cow()?.into_owned()));
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Value::Bool(b.is_true()));
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            let v = f.value();
            return serde_json::Number::from_f64(v)
                .map(Value::Number)
                .ok_or_else(|| {
                    Walked::Py(to_pyerr(
                        py,
                        Error::input(format!("{}: {v} is not a finite number", field(what, path))),
                    ))
                });
        }
        if obj.is_instance_of::<PyInt>() {
            if let Ok(i) = obj.extract::<i64>() {
                return Ok(Value::from(i));
            }
            if let Ok(u) = obj.extract::<u64>() {
                return Ok(Value::from(u));
            }
            let text = obj.str().map(|s| s.to_string()).unwrap_or_default();
            return Err(Walked::Py(to_pyerr(
                py,
                Error::input(format!(
                    "{}: {} is out of range (64-bit integers)",
                    field(what, path),
                    crate::limits::echo(&text)
                )),
            )));
        }
        if path.len() >= FAST_DEPTH {
            return Err(Walked::Deep);
        }
        if let Ok(d) = obj.cast::<PyDict>() {
            let mut map = serde_json::Map::new();
            for (k, v) in d.iter() {
                let Ok(key) = k.cast::<PyString>() else {
                    return Ok(self.generic(obj, what, path)?);
                };
                let key = key.to_cow()?.into_owned();
                path.push(Step::Key(k));
                let value = self.walk(&v, what, path)?;
                path.pop();
                map.insert(key, value);
            }
            return Ok(Value::Object(map));
        }
        let items = |iter: &mut dyn Iterator<Item = Bound<'py, PyAny>>,
                     path: &mut Vec<Step<'py>>| {
            let mut out = Vec::new();
            for (i, v) in iter.enumerate() {
                path.push(Step::Index(i));
                let value = self.walk(&v, what, path)?;
                path.pop();
                out.push(value);
            }
            Ok::<_, Walked>(Value::Array(out))
        };
        if let Ok(l) = obj.cast::<PyList>() {
            return items(&mut l.iter(), path);
        }
        if let Ok(t) = obj.cast::<PyTuple>() {
            return items(&mut t.iter(), path);
        }
        if let Some(skip) = self
            .skip
            .map(|s| s.get_item(obj.get_type()))
            .transpose()?
            .flatten()
        {
            let attrs = obj.getattr(pyo3::intern!(py, "__dict__"))?;
            if let Ok(attrs) = attrs.cast::<PyDict>() {
                let mut map = serde_json::Map::new();
                for (k, v) in attrs.iter() {
                    let Ok(key) = k.cast::<PyString>() else {
                        continue;
                    };
                    let key = key.to_cow()?;
                    if key.starts_with('_') || skip.contains(key.as_ref())? {
                        continue;
                    }
                    let key = key.into_owned();
                    path.push(Step::Key(k));
                    let value = self.walk(&v, what, path)?;
                    path.pop();
                    map.insert(key, value);
                }
                return Ok(Value::Object(map));
            }
        }
        Ok(self.generic(obj, what, path)?)
    }
}
