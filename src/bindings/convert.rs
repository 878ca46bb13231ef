//! Conversions between Python values and the core's JSON values (core errors become
//! `tycho.exceptions` classes in [`super::error`]); [`run`] releases the GIL and turns a Rust panic into
//! `TychoException`, never a crash.

use crate::error::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

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

/// `obj` as a JSON value. The common case (exact dicts with string keys, lists, tuples,
/// strings, 64-bit ints, finite floats, bools and None, at most [`crate::limits::MAX_DEPTH`]
/// levels) is converted in one pass ([`fast_from_py`]); anything else (another type, a
/// non-finite float, a big int, a deep or self-containing value) is converted again by
/// the checked path ([`checked_from_py`]), whose answer and errors it always was.
pub(crate) fn from_py(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    match fast_from_py(obj, 1) {
        Some(v) => Ok(v),
        None => checked_from_py(obj, what),
    }
}

/// The one-pass conversion of [`from_py`]; `None` where the value leaves its common case.
fn fast_from_py(obj: &Bound<'_, PyAny>, depth: usize) -> Option<Value> {
    use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyTuple};
    if obj.is_none() {
        return Some(Value::Null);
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return s.to_cow().ok().map(|s| Value::String(s.into_owned()));
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Some(Value::Bool(b.is_true()));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Some(Value::from(i));
        }
        return obj.extract::<u64>().ok().map(Value::from);
    }
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return serde_json::Number::from_f64(f.value()).map(Value::Number);
    }
    if depth >= crate::limits::MAX_DEPTH {
        return None;
    }
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        let mut map = serde_json::Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k.cast_exact::<PyString>().ok()?.to_cow().ok()?.into_owned();
            let value = fast_from_py(&v, depth + 1)?;
            map.insert(key, value);
        }
        return Some(Value::Object(map));
    }
    if let Ok(l) = obj.cast_exact::<PyList>() {
        let mut out = Vec::with_capacity(l.len());
        for v in l.iter() {
            out.push(fast_from_py(&v, depth + 1)?);
        }
        return Some(Value::Array(out));
    }
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        let mut out = Vec::with_capacity(t.len());
        for v in t.iter() {
            out.push(fast_from_py(&v, depth + 1)?);
        }
        return Some(Value::Array(out));
    }
    None
}

/// [`from_py`]'s checked path: the value's checks ([`check_py_value`]), pythonize's
/// conversion, and the depth check of the result.
fn checked_from_py(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
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

/// `v` as Python values (dicts, lists, str, int, float, bool, None), built directly: the
/// same objects pythonize builds, without its serializer between.
pub(crate) fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    to_py_at(py, v, 1)
}

/// How deep [`to_py`] builds by recursion before it hands a subtree to pythonize (values
/// the core produces are bounded far below: [`crate::limits::MAX_DEPTH`]).
const TO_PY_DEPTH: usize = 4 * crate::limits::MAX_DEPTH;

fn to_py_at<'py>(py: Python<'py>, v: &Value, depth: usize) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::types::{PyBool, PyFloat, PyList};
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        _ if depth >= TO_PY_DEPTH => {
            return pythonize::pythonize(py, v).map_err(|e| PyRuntimeError::new_err(e.to_string()))
        }
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py_at(py, item, depth + 1)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(PyString::new(py, k), to_py_at(py, item, depth + 1)?)?;
            }
            dict.into_any()
        }
    })
}

/// The built-in configuration, shared.
fn default_config() -> Arc<Value> {
    static DEFAULT: std::sync::OnceLock<Arc<Value>> = std::sync::OnceLock::new();
    DEFAULT
        .get_or_init(|| Arc::new(crate::config::default_config().clone()))
        .clone()
}

thread_local! {
    /// The configuration dict last converted on this thread, with the trace of its
    /// objects ([`Trace`]): a call with the same, unchanged dict (a `tycho.config.Config`
    /// lives as long as its context) shares the conversion.
    static LAST_CONFIG: std::cell::RefCell<Option<(Trace, Arc<Value>)>> =
        const { std::cell::RefCell::new(None) };
}

/// [`config_parts`] of `config`, or the last conversion when `config` is the same dict,
/// unchanged ([`PlainWalk::unchanged`]).
fn shared_config_parts(config: &Bound<'_, PyDict>) -> PyResult<Arc<Value>> {
    let walk = PlainWalk {
        skip: None,
        to_plain: None,
    };
    // Taken out while Python runs (a key's `__eq__` may convert again on this thread).
    if let Some((trace, value)) = LAST_CONFIG.with(|l| l.borrow_mut().take()) {
        if walk.unchanged(config.as_any(), &trace).unwrap_or(false) {
            let shared = value.clone();
            LAST_CONFIG.with(|l| *l.borrow_mut() = Some((trace, value)));
            return Ok(shared);
        }
    }
    let value = Arc::new(config_parts(config)?);
    let mut trace = Some(Vec::new());
    if walk
        .convert_traced(config.as_any(), "config", &mut trace)
        .is_ok()
    {
        if let Some(trace) = trace {
            LAST_CONFIG.with(|l| *l.borrow_mut() = Some((trace, value.clone())));
        }
    }
    Ok(value)
}

/// The configuration a call names, or the built-in one (shared, not copied).
pub(crate) fn config_value(config: Option<&Bound<'_, PyAny>>) -> PyResult<Arc<Value>> {
    match config {
        None => Ok(default_config()),
        Some(c) if c.is_none() => Ok(default_config()),
        Some(c) => {
            // tycho.config.Config keeps its mapping in `.conf`.
            // (A dict first: `hasattr` on a dict raises and catches an AttributeError.)
            let inner = if !c.is_instance_of::<PyDict>() && c.hasattr("conf")? {
                c.getattr("conf")?
            } else {
                c.clone()
            };
            match inner.cast::<PyDict>() {
                Ok(dict) => shared_config_parts(dict),
                Err(_) => from_py(&inner, "config").map(Arc::new),
            }
        }
    }
}

/// The parts of a configuration dict the core reads ([`crate::config::READ_PATHS`]),
/// converted; the rest (templates' own settings, comments of a large conf) is never
/// crossed over.
fn config_parts(config: &Bound<'_, PyDict>) -> PyResult<Value> {
    // The paths' keys as Python strings, made once per process (their hashes kept).
    static KEYS: pyo3::sync::PyOnceLock<Vec<Vec<Py<PyString>>>> = pyo3::sync::PyOnceLock::new();
    let py = config.py();
    let keys = KEYS.get_or_init(py, || {
        crate::config::READ_PATHS
            .iter()
            .map(|path| {
                path.iter()
                    .map(|k| PyString::intern(py, k).unbind())
                    .collect()
            })
            .collect()
    });
    let mut out = Value::Object(serde_json::Map::new());
    'paths: for (path, py_keys) in crate::config::READ_PATHS.iter().zip(keys) {
        let mut node: Bound<'_, PyAny> = config.clone().into_any();
        for key in py_keys {
            let Ok(dict) = node.cast::<PyDict>() else {
                if node.is_none() {
                    continue 'paths;
                }
                // Another kind of mapping (or a value where one was expected): convert
                // it all, as before this shortcut.
                return from_py(config.as_any(), "config");
            };
            match dict.get_item(key.bind(py))? {
                Some(next) => node = next,
                None => continue 'paths,
            }
        }
        let value = match fast_from_py(&node, 1) {
            Some(v) => v,
            None => checked_from_py(&node, &format!("config {}", path.join(".")))?,
        };
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

/// What a [`PlainWalk`] visited, in order, holding each object: every node (with the
/// length of a dict, list or tuple), every dict key, and for a model object its type,
/// its names left out and its attribute dict (with the count of attributes converted).
/// Python strings, numbers, booleans and None cannot change, and an object held here
/// cannot be freed and its address reused: the same objects in the same places mean
/// the same plain value ([`PlainWalk::unchanged`]). Dicts, lists and attribute dicts
/// can change, so their contents are walked again.
pub(crate) type Trace = Vec<(Py<PyAny>, usize)>;

impl<'py> PlainWalk<'_, 'py> {
    /// The plain form of `obj`; errors name it `what` (and the field). A value nested
    /// deeper than [`FAST_DEPTH`] (a reference cycle, maybe) is converted again the
    /// slow way, through `to_plain`, which turns a cycle into text as it always did.
    pub fn convert(&self, obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Value> {
        self.convert_traced(obj, what, &mut None)
    }

    /// [`Self::convert`], recording what it visited into `trace` (left `None` when a
    /// part of the value went through `to_plain`: such a value is never taken as
    /// unchanged).
    pub fn convert_traced(
        &self,
        obj: &Bound<'py, PyAny>,
        what: &str,
        trace: &mut Option<Trace>,
    ) -> PyResult<Value> {
        let mut path = Vec::new();
        match self.walk(obj, what, &mut path, trace) {
            Err(Walked::Deep) => {
                *trace = None;
                self.generic(obj, what, &[])
            }
            Err(Walked::Py(e)) => Err(e),
            Ok(v) => Ok(v),
        }
    }

    /// Whether `obj` still converts to what it did when `trace` was recorded: the same
    /// objects met in the same order (see [`Trace`]). Cheap: pointer comparisons and
    /// lengths, no string copied.
    pub fn unchanged(&self, obj: &Bound<'py, PyAny>, trace: &Trace) -> PyResult<bool> {
        let mut pos = 0;
        Ok(self.same(obj, trace, &mut pos, 0)? && pos == trace.len())
    }

    // Long because: it mirrors `walk` case by case, in the same order, so the two read
    // side by side.
    fn same(
        &self,
        obj: &Bound<'py, PyAny>,
        trace: &Trace,
        pos: &mut usize,
        depth: usize,
    ) -> PyResult<bool> {
        use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyTuple};
        let py = obj.py();
        let next = |o: &Bound<'py, PyAny>, pos: &mut usize| -> Option<usize> {
            let (t, len) = trace.get(*pos)?;
            *pos += 1;
            t.bind(py).is(o).then_some(*len)
        };
        let Some(len) = next(obj, pos) else {
            return Ok(false);
        };
        if obj.is_none()
            || obj.is_instance_of::<PyString>()
            || obj.is_instance_of::<PyBool>()
            || obj.is_instance_of::<PyFloat>()
            || obj.is_instance_of::<PyInt>()
        {
            return Ok(true);
        }
        if depth >= FAST_DEPTH {
            return Ok(false);
        }
        if let Ok(d) = obj.cast::<PyDict>() {
            if d.len() != len {
                return Ok(false);
            }
            for (k, v) in d.iter() {
                if next(&k, pos).is_none() || !self.same(&v, trace, pos, depth + 1)? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        if let Ok(l) = obj.cast::<PyList>() {
            return self.same_items(l.len() == len, l.iter(), trace, pos, depth);
        }
        if let Ok(t) = obj.cast::<PyTuple>() {
            return self.same_items(t.len() == len, t.iter(), trace, pos, depth);
        }
        // A model object: its type, its names left out, its attribute dict, then the
        // attributes converted (the count at the end).
        let Some(skip) = self.skip else {
            return Ok(false);
        };
        let kind = obj.get_type().into_any();
        if next(&kind, pos).is_none() {
            return Ok(false);
        }
        let Some(names) = skip.get_item(&kind)? else {
            return Ok(false);
        };
        if next(&names, pos).is_none() {
            return Ok(false);
        }
        let attrs = obj.getattr(pyo3::intern!(py, "__dict__"))?;
        let Ok(attrs) = attrs.cast::<PyDict>() else {
            return Ok(false);
        };
        let Some(count) = next(attrs.as_any(), pos) else {
            return Ok(false);
        };
        let mut seen = 0;
        for (k, v) in attrs.iter() {
            let Ok(key) = k.cast::<PyString>() else {
                continue;
            };
            // The name converted next, met again: converted again (the same name and
            // the same names left out decide the same). Any other name must be one
            // left out (spelled out only then: few are).
            let expected = trace.get(*pos).is_some_and(|(t, _)| t.bind(py).is(&k));
            if !expected {
                if key.to_cow()?.starts_with('_') || names.contains(key)? {
                    continue;
                }
                return Ok(false);
            }
            *pos += 1;
            seen += 1;
            if !self.same(&v, trace, pos, depth + 1)? {
                return Ok(false);
            }
        }
        Ok(seen == count)
    }

    /// [`Self::same`] of a list's or tuple's items (`same_len`: its length is the one
    /// recorded).
    fn same_items(
        &self,
        same_len: bool,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        trace: &Trace,
        pos: &mut usize,
        depth: usize,
    ) -> PyResult<bool> {
        if !same_len {
            return Ok(false);
        }
        for v in items {
            if !self.same(&v, trace, pos, depth + 1)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn generic(&self, obj: &Bound<'py, PyAny>, what: &str, path: &[Step<'py>]) -> PyResult<Value> {
        // The one to_plain walk (`super::plain`), natively (`to_plain` says whether to).
        let plain = match self.to_plain {
            Some(_) => super::plain::to_plain(obj, "value")?,
            None => obj.clone(),
        };
        from_py(&plain, &field(what, path))
    }

    // Long because: one case per Python type, in the order the original's `to_plain` tries
    // them, each recording what it visits into `trace`.
    fn walk(
        &self,
        obj: &Bound<'py, PyAny>,
        what: &str,
        path: &mut Vec<Step<'py>>,
        trace: &mut Option<Trace>,
    ) -> Result<Value, Walked> {
        use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyTuple};
        let py = obj.py();
        let record = |trace: &mut Option<Trace>, o: &Bound<'py, PyAny>, len: usize| {
            if let Some(t) = trace {
                t.push((o.clone().unbind(), len));
            }
        };
        if obj.is_none() {
            record(trace, obj, 0);
            return Ok(Value::Null);
        }
        if let Ok(s) = obj.cast::<PyString>() {
            record(trace, obj, 0);
            return Ok(Value::String(s.to_cow()?.into_owned()));
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            record(trace, obj, 0);
            return Ok(Value::Bool(b.is_true()));
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            record(trace, obj, 0);
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
            record(trace, obj, 0);
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
            record(trace, obj, d.len());
            let mut map = serde_json::Map::with_capacity(d.len());
            for (k, v) in d.iter() {
                let Ok(key) = k.cast::<PyString>() else {
                    *trace = None;
                    return Ok(self.generic(obj, what, path)?);
                };
                let key = key.to_cow()?.into_owned();
                record(trace, &k, 0);
                path.push(Step::Key(k));
                let value = self.walk(&v, what, path, trace)?;
                path.pop();
                map.insert(key, value);
            }
            return Ok(Value::Object(map));
        }
        let items = |iter: &mut dyn Iterator<Item = Bound<'py, PyAny>>,
                     path: &mut Vec<Step<'py>>,
                     trace: &mut Option<Trace>| {
            let mut out = Vec::new();
            for (i, v) in iter.enumerate() {
                path.push(Step::Index(i));
                let value = self.walk(&v, what, path, trace)?;
                path.pop();
                out.push(value);
            }
            Ok::<_, Walked>(Value::Array(out))
        };
        if let Ok(l) = obj.cast::<PyList>() {
            record(trace, obj, l.len());
            return items(&mut l.iter(), path, trace);
        }
        if let Ok(t) = obj.cast::<PyTuple>() {
            record(trace, obj, t.len());
            return items(&mut t.iter(), path, trace);
        }
        let kind = obj.get_type().into_any();
        if let Some(skip) = self.skip.map(|s| s.get_item(&kind)).transpose()?.flatten() {
            let attrs = obj.getattr(pyo3::intern!(py, "__dict__"))?;
            if let Ok(attrs) = attrs.cast::<PyDict>() {
                record(trace, obj, 0);
                record(trace, &kind, 0);
                record(trace, &skip, 0);
                let count_at = trace.as_ref().map(Vec::len);
                record(trace, attrs.as_any(), 0);
                let mut map = serde_json::Map::new();
                for (k, v) in attrs.iter() {
                    let Ok(key) = k.cast::<PyString>() else {
                        continue;
                    };
                    let key_text = key.to_cow()?;
                    // The attribute's own name object: `in` a tuple of names is an
                    // identity check for the interned names of the class.
                    if key_text.starts_with('_') || skip.contains(key)? {
                        continue;
                    }
                    let key = key_text.into_owned();
                    record(trace, &k, 0);
                    path.push(Step::Key(k));
                    let value = self.walk(&v, what, path, trace)?;
                    path.pop();
                    map.insert(key, value);
                }
                if let (Some(t), Some(at)) = (trace.as_mut(), count_at) {
                    t[at].1 = map.len();
                }
                return Ok(Value::Object(map));
            }
        }
        *trace = None;
        Ok(self.generic(obj, what, path)?)
    }
}
