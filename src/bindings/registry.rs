//! Python bindings of the app registry (`tycho._native.registry_*`, `RegistryCache`)
//! and of the asyncio bridge (`tycho._native.aio_call`).
//!
//! Registry documents cross the boundary as plain dicts; network I/O and rendering run
//! without the GIL. Errors are `tycho.exceptions.ContextException`.
//!
//! `aio_call(fn, *args, **kwargs)` returns an awaitable that runs `fn(*args, **kwargs)`
//! (in a copy of the caller's contextvars) on a tokio blocking-pool thread, so several
//! awaited calls proceed in parallel wherever they release the GIL (HTTP fetches,
//! compilation, the Kubernetes executor). The tokio runtime is per process: a forked
//! child builds its own instead of using the parent's dead threads.

use crate::bindings::{from_py, run, to_py};
use crate::registry::fetch::{Fetched, HttpCache, DEFAULT_MAX_AGE, DEFAULT_TIMEOUT};
use crate::registry::start::{start_request, StartApp, StartPrincipal};
use crate::registry::{self, grok as grk, model, spec, Source};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3_async_runtimes::generic::{ContextExt, Runtime as GenericRuntime};
use pyo3_async_runtimes::TaskLocals;
use serde_json::{Map, Value};
use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

// ---------------------------------------------------------------- HTTP cache

/// The registry's HTTP cache (see `tycho.context.RegistryHttpCache`).
#[pyclass(name = "RegistryCache", module = "tycho._native", frozen)]
pub struct PyRegistryCache {
    inner: Arc<HttpCache>,
}

type Answer = (
    u16,
    String,
    Vec<(String, String)>,
    bool,
    bool,
    Option<String>,
);

fn answer(f: Fetched) -> Answer {
    (
        f.status,
        f.text,
        f.headers,
        f.from_cache,
        f.revalidated,
        f.stale,
    )
}

#[pymethods]
impl PyRegistryCache {
    #[new]
    #[pyo3(signature = (timeout=DEFAULT_TIMEOUT, max_age=DEFAULT_MAX_AGE))]
    fn new(timeout: f64, max_age: f64) -> Self {
        PyRegistryCache {
            inner: Arc::new(HttpCache::new(timeout, max_age)),
        }
    }

    /// Seconds one fetch may take.
    #[getter]
    fn timeout(&self) -> f64 {
        self.inner.timeout()
    }

    #[setter]
    fn set_timeout(&self, value: f64) {
        self.inner.set_timeout(value)
    }

    /// Seconds after which a cached answer is revalidated.
    #[getter]
    fn max_age(&self) -> f64 {
        self.inner.max_age()
    }

    #[setter]
    fn set_max_age(&self, value: f64) {
        self.inner.set_max_age(value)
    }

    /// `{"requests", "not_modified", "hits"}` so far.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("requests", s.requests)?;
        d.set_item("not_modified", s.not_modified)?;
        d.set_item("hits", s.hits)?;
        Ok(d)
    }

    /// Forgets every cached answer.
    fn clear(&self) {
        self.inner.clear()
    }

    /// GET through the cache: `(status, text, headers, from_cache, revalidated, stale_reason)`.
    fn get(&self, py: Python<'_>, url: String) -> PyResult<Answer> {
        let cache = self.inner.clone();
        run(py, move || cache.get(&url)).map(answer)
    }

    /// Like `get`, but any status except 200 raises ContextException naming `what`,
    /// the URL and the status.
    fn fetch(&self, py: Python<'_>, url: String, what: String) -> PyResult<Answer> {
        let cache = self.inner.clone();
        run(py, move || cache.fetch(&url, &what)).map(answer)
    }
}

// ---------------------------------------------------------------- registry functions

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Reads registry file `file_name` from `conf_dir` (when `tycho_config_url` is empty)
/// or from `tycho_config_url`: `(document, stale_reason)`.
#[pyfunction]
fn registry_load_config<'py>(
    py: Python<'py>,
    cache: &PyRegistryCache,
    tycho_config_url: String,
    file_name: String,
    conf_dir: String,
) -> PyResult<(Bound<'py, PyAny>, Option<String>)> {
    let cache = cache.inner.clone();
    let source = if tycho_config_url.is_empty() {
        Source::Directory(conf_dir.into())
    } else {
        Source::Url(tycho_config_url)
    };
    let (doc, stale) = run(py, move || {
        registry::load_config(&cache, &source, &file_name)
    })?;
    Ok((to_py(py, &doc)?, stale))
}

/// The compiled apps of `product` (see `crate::registry::grok`).
#[pyfunction]
fn registry_grok<'py>(
    py: Python<'py>,
    registry: &Bound<'py, PyAny>,
    app_defaults: &Bound<'py, PyAny>,
    product: String,
    tycho_config_url: String,
) -> PyResult<Bound<'py, PyAny>> {
    let registry = from_py(registry, "registry")?;
    let defaults = from_py(app_defaults, "app_defaults")?;
    let apps = run(py, move || {
        grk::grok(
            &registry,
            &defaults,
            &product,
            &tycho_config_url,
            &grk::GrokOptions::from_env(),
        )
    })?;
    to_py(py, &Value::Object(apps))
}

/// The apps of `context` and of every context it extends (recursively).
#[pyfunction]
#[pyo3(signature = (contexts, context, name=String::new()))]
fn registry_inherit<'py>(
    py: Python<'py>,
    contexts: &Bound<'py, PyAny>,
    context: &Bound<'py, PyAny>,
    name: String,
) -> PyResult<Bound<'py, PyAny>> {
    let contexts = object(from_py(contexts, "contexts")?);
    let context = from_py(context, "context")?;
    let apps = run(py, move || grk::inherit(&contexts, &context, &name))?;
    to_py(py, &Value::Object(apps))
}

/// `apps` with `defaults` merged into every app.
#[pyfunction]
fn registry_mixin_defaults<'py>(
    py: Python<'py>,
    apps: &Bound<'py, PyAny>,
    defaults: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut apps = object(from_py(apps, "apps")?);
    let defaults = from_py(defaults, "defaults")?;
    grk::mixin_defaults(&mut apps, &defaults);
    to_py(py, &Value::Object(apps))
}

/// `apps` with the mixin contexts of `context` merged over them.
#[pyfunction]
fn registry_mixin<'py>(
    py: Python<'py>,
    contexts: &Bound<'py, PyAny>,
    context: &Bound<'py, PyAny>,
    apps: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let contexts = object(from_py(contexts, "contexts")?);
    let context = from_py(context, "context")?;
    let mut apps = object(from_py(apps, "apps")?);
    grk::mixin(&contexts, &context, &mut apps);
    to_py(py, &Value::Object(apps))
}

/// `apps` with the product-level entries of `context` merged in.
#[pyfunction]
fn registry_add_conf_impl<'py>(
    py: Python<'py>,
    apps: &Bound<'py, PyAny>,
    context: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut apps = object(from_py(apps, "apps")?);
    let context = from_py(context, "context")?;
    grk::add_conf_impl(&mut apps, &context);
    to_py(py, &Value::Object(apps))
}

/// The compose `text` of `app_id` (fetched from `url`) rendered with `settings`.
#[pyfunction]
fn registry_render_spec<'py>(
    py: Python<'py>,
    app_id: String,
    url: String,
    text: String,
    settings: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let settings = from_py(settings, "settings")?;
    let settings = if settings.is_null() {
        Value::Object(Map::new())
    } else {
        settings
    };
    let spec = run(py, move || {
        spec::render_spec(&app_id, &url, &text, &settings)
    })?;
    to_py(py, &spec)
}

/// Logs that a cached copy of `url` is used because it could not be revalidated.
fn stale_warning(url: &str, stale: Option<&str>) {
    if let Some(reason) = stale {
        log::warn!(
            target: "tycho.context",
            "cannot revalidate {} ({}); using the cached copy",
            crate::limits::echo(url),
            reason
        );
    }
}

/// The rendered spec of `which`, fetched through `cache` (any status but 200 is a
/// ContextException naming the spec, the URL and the status).
fn fetch_spec(cache: &HttpCache, which: &StartApp<'_>) -> crate::Result<Value> {
    let url = which.spec_url();
    let answer = cache.fetch(url, &format!("spec of app {}", which.app_id))?;
    stale_warning(url, answer.stale.as_deref());
    which.render_spec(&answer.text)
}

/// The text of the `.env` beside the spec of `which` ("" when there is none; any other
/// status than 200 and 404 is logged and reads as none).
fn fetch_settings(cache: &HttpCache, which: &StartApp<'_>) -> crate::Result<String> {
    let url = which.settings_url();
    let answer = cache.get(&url)?;
    stale_warning(&url, answer.stale.as_deref());
    match answer.status {
        200 => Ok(answer.text),
        404 => Ok(String::new()),
        status => {
            log::warn!(
                target: "tycho.context",
                "-- settings {}: HTTP status {status}; using empty settings",
                crate::limits::echo(&url)
            );
            Ok(String::new())
        }
    }
}

/// The start request of app `app_id` (the compiled `app` of context `product` of
/// `registry`) for `principal` (`{"username", "access_token", "refresh_token", "host"[,
/// "extra_container_env"]}`, values `to_plain` takes) with `resource_request`
/// (`tycho.context.TychoContext.start`; the builder of `crate::registry::start`, which
/// the command line's `--registry` uses too). The spec and the `.env` beside it are
/// fetched through `cache` unless given (`spec`: the rendered spec, `settings`: the
/// `.env` text; `cache` may then be None). Returns `(request, spec, settings)`: the
/// spec and settings text fetched (None when given).
#[pyfunction]
#[pyo3(signature = (cache, registry, product, app_id, app, principal, resource_request, *, spec=None, settings=None, to_plain=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn registry_start_request<'py>(
    py: Python<'py>,
    cache: Option<&PyRegistryCache>,
    registry: &Bound<'py, PyAny>,
    product: String,
    app_id: String,
    app: &Bound<'py, PyAny>,
    principal: &Bound<'py, PyAny>,
    resource_request: &Bound<'py, PyAny>,
    spec: Option<&Bound<'py, PyAny>>,
    settings: Option<String>,
    to_plain: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Option<String>)> {
    let registry = from_py(registry, "registry")?;
    let app = object(from_py(app, "app")?);
    let walk = crate::bindings::PlainWalk {
        skip: None,
        to_plain,
    };
    let principal = walk.convert(principal, "principal")?;
    let principal = StartPrincipal {
        username: principal.get("username").cloned().unwrap_or(Value::Null),
        access_token: principal
            .get("access_token")
            .cloned()
            .unwrap_or(Value::Null),
        refresh_token: principal
            .get("refresh_token")
            .cloned()
            .unwrap_or(Value::Null),
        host: principal.get("host").cloned().unwrap_or(Value::Null),
        extra_container_env: principal
            .get("extra_container_env")
            .cloned()
            .unwrap_or(Value::Null),
    };
    let resources = from_py(resource_request, "resource_request")?;
    let given_spec = spec.map(|s| from_py(s, "spec")).transpose()?;
    // None: the spec and settings are given (a cache of its own would fetch them).
    let cache = cache.map(|c| c.inner.clone()).unwrap_or_default();
    let (request, fetched_spec, fetched_settings) = run(py, move || {
        let which = StartApp {
            registry: &registry,
            product: &product,
            app_id: &app_id,
            app: &app,
        };
        let (spec, fetched_spec) = match given_spec {
            Some(spec) => (spec, None),
            None => {
                let spec = fetch_spec(&cache, &which)?;
                (spec.clone(), Some(spec))
            }
        };
        let (settings, fetched_settings) = match settings {
            Some(text) => (text, None),
            None => {
                let text = fetch_settings(&cache, &which)?;
                (text.clone(), Some(text))
            }
        };
        let request = start_request(&which, spec, &settings, Some(resources), &principal)?;
        Ok((request, fetched_spec, fetched_settings))
    })?;
    let fetched_spec = match fetched_spec {
        Some(spec) => to_py(py, &spec)?,
        None => py.None().into_bound(py),
    };
    Ok((to_py(py, &request)?, fetched_spec, fetched_settings))
}

/// The `.env` URL beside a spec URL.
#[pyfunction]
fn registry_settings_url(spec_url: &str) -> String {
    spec::settings_url(spec_url)
}

/// `posixpath.join(posixpath.dirname(spec_url), "icon.png")`.
#[pyfunction]
fn registry_icon_url(spec_url: &str) -> String {
    model::posix_join(&model::posix_dirname(spec_url), "icon.png")
}

// ---------------------------------------------------------------- asyncio bridge

/// The process's tokio runtime (`crate::runtime`; rebuilt in a forked child).
fn runtime() -> &'static tokio::runtime::Runtime {
    crate::runtime::get(crate::error::ErrorKind::Kube).expect("the tokio runtime starts")
}

pub(crate) struct AioRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl GenericRuntime for AioRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        runtime().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        // pyo3-async-runtimes resolves the asyncio future here, in Python: not once the
        // interpreter exits (then `f` and the objects it holds are dropped unrun).
        runtime().spawn_blocking(move || {
            if let Some(_entry) = super::lifecycle::enter() {
                f()
            }
        })
    }
}

impl ContextExt for AioRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}

/// An awaitable running `function(*args, **kwargs)` on a worker thread.
#[pyfunction]
#[pyo3(signature = (function, *args, **kwargs))]
fn aio_call<'py>(
    py: Python<'py>,
    function: Bound<'py, PyAny>,
    args: Bound<'py, PyTuple>,
    kwargs: Option<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    if !function.is_callable() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "aio_call needs a callable",
        ));
    }
    // Run in a copy of the caller's contextvars, as asyncio.to_thread does.
    let context = py
        .import("contextvars")?
        .call_method0("copy_context")?
        .unbind();
    let mut call_args = vec![function.unbind()];
    call_args.extend(args.iter().map(Bound::unbind));
    let kwargs = kwargs.map(Bound::unbind);
    pyo3_async_runtimes::generic::future_into_py::<AioRuntime, _, _>(py, async move {
        let job = runtime().spawn_blocking(move || {
            let Some(_entry) = super::lifecycle::enter() else {
                return Err(PyRuntimeError::new_err(
                    "tycho async call refused: the interpreter is exiting",
                ));
            };
            Python::attach(|py| -> PyResult<Py<PyAny>> {
                let args = PyTuple::new(py, call_args.iter().map(|a| a.bind(py)))?;
                context
                    .bind(py)
                    .call_method("run", args, kwargs.as_ref().map(|k| k.bind(py)))
                    .map(Bound::unbind)
            })
        });
        match job.await {
            Ok(result) => result,
            Err(e) => Err(PyRuntimeError::new_err(format!(
                "tycho async call failed: {e}"
            ))),
        }
    })
}

/// Registers the registry functions and the asyncio bridge on the native module.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRegistryCache>()?;
    m.add_function(wrap_pyfunction!(registry_load_config, m)?)?;
    m.add_function(wrap_pyfunction!(registry_grok, m)?)?;
    m.add_function(wrap_pyfunction!(registry_inherit, m)?)?;
    m.add_function(wrap_pyfunction!(registry_mixin_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(registry_mixin, m)?)?;
    m.add_function(wrap_pyfunction!(registry_add_conf_impl, m)?)?;
    m.add_function(wrap_pyfunction!(registry_render_spec, m)?)?;
    m.add_function(wrap_pyfunction!(registry_start_request, m)?)?;
    m.add_function(wrap_pyfunction!(registry_settings_url, m)?)?;
    m.add_function(wrap_pyfunction!(registry_icon_url, m)?)?;
    m.add_function(wrap_pyfunction!(aio_call, m)?)?;
    Ok(())
}
