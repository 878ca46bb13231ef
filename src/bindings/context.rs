//! `TychoContext`, native: the operations of a registry context (`start`, `_start`,
//! `status`, `delete`, `update`, `stop`, `resume`, `touch`) that
//! `tycho.context.TychoContext` inherits. The Python subclass loads the registry (its
//! `__init__`, `_grok`, `get_spec`, ...), so the original's suites can subclass it and
//! `mock.patch.object(TychoContext, "_start", ...)`.
//!
//! Methods reach each other, the registry's file methods and `self.client` through
//! attribute lookup, as the original's did: a patch or a subclass override is honoured.
//! `start` builds the request with the core's one builder (`crate::registry::start`,
//! shared with the command line's `--registry`) without returning to Python, then hands
//! it to `self._start`, the named patch point before the check, compile and start.

use super::pylog::{log, DEBUG, INFO};
use super::registry::PyRegistryCache;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

/// The native base of `tycho.context.TychoContext`.
#[pyclass(subclass, dict, module = "tycho.context")]
pub struct TychoContext;

/// A record on the `tycho.context` logger.
fn context_log<'py>(
    py: Python<'py>,
    level: u8,
    format: &str,
    args: &[Bound<'py, PyAny>],
) -> PyResult<()> {
    log(py, "tycho.context", level, format, args)
}

/// `tycho.tycho_utils.brief(value)`: the value as bounded log text, made when emitted.
fn brief<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    value
        .py()
        .import("tycho.tycho_utils")?
        .getattr("brief")?
        .call1((value,))
}

/// The principal's fields for the request builder: `{"username", "access_token",
/// "refresh_token", "host"[, "extra_container_env"]}`.
fn principal_params<'py>(
    principal: &Bound<'py, PyAny>,
    host: &Bound<'py, PyAny>,
    extra_container_env: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let py = principal.py();
    let params = PyDict::new(py);
    params.set_item("username", principal.getattr("username")?)?;
    params.set_item("access_token", principal.getattr("access_token")?)?;
    params.set_item("refresh_token", principal.getattr("refresh_token")?)?;
    params.set_item("host", host)?;
    // Only when given, so the request is the original's otherwise.
    if extra_container_env.is_truthy()? {
        params.set_item("extra_container_env", extra_container_env)?;
    }
    Ok(params)
}

/// What [`build_request`] gives: the request, the spec and settings text fetched (None
/// and None when given), and whether they were fetched natively.
type Built<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Option<String>, bool);

/// `(request, spec, settings)` of the core's start-request builder for `app_id`: the
/// spec and settings fetched natively unless a subclass or patch replaces how they are
/// fetched (`_fetches_natively`), in which case `get_spec` and `get_settings` are asked.
fn build_request<'py>(
    slf: &Bound<'py, TychoContext>,
    app_id: &Bound<'py, PyAny>,
    app: &Bound<'py, PyAny>,
    params: &Bound<'py, PyDict>,
    resource_request: &Bound<'py, PyAny>,
) -> PyResult<Built<'py>> {
    let py = slf.py();
    let native_files = slf.call_method0("_fetches_natively")?.is_truthy()?;
    let (spec, settings) = if native_files {
        (None, None)
    } else {
        let spec = slf.call_method1("get_spec", (app_id,))?;
        let settings: String = slf.call_method1("get_settings", (app_id,))?.extract()?;
        (Some(spec), Some(settings))
    };
    let cache = if native_files {
        Some(slf.getattr("http_session")?.getattr("_cache")?)
    } else {
        None
    };
    let cache = cache
        .as_ref()
        .map(|c| c.extract::<PyRef<'_, PyRegistryCache>>())
        .transpose()?;
    let to_plain = py.import("tycho.tycho_utils")?.getattr("to_plain")?;
    let built = super::registry::registry_start_request(
        py,
        cache.as_deref(),
        &slf.getattr("registry")?,
        slf.getattr("product")?.extract()?,
        app_id.extract()?,
        app,
        params.as_any(),
        resource_request,
        spec.as_ref(),
        settings,
        Some(&to_plain),
    );
    match built {
        Ok((request, spec, settings)) => Ok((request, spec, settings, native_files)),
        Err(e) => Err(unknown_app_or(py, e)?),
    }
}

/// `{service name: port}` of a started system; StartException when a service of the
/// request is not among them.
fn running_services<'py>(
    system: &Bound<'py, PyAny>,
    request: &Bound<'py, PyAny>,
    app_id: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let py = system.py();
    let running = PyDict::new(py);
    for service in system.getattr("services")?.try_iter()? {
        let service = service?;
        running.set_item(service.getattr("name")?, service.getattr("port")?)?;
    }
    for name in request.get_item("services")?.try_iter()? {
        let name = name?;
        if !running.contains(&name)? {
            let class = py.import("tycho.exceptions")?.getattr("StartException")?;
            let names = PyList::new(py, running.keys())?;
            return Err(PyErr::from_value(class.call1((format!(
                "service {} of app {} expected but only {} are running",
                name.str()?,
                app_id.str()?,
                names.repr()?
            ),))?));
        }
    }
    Ok(running)
}

/// A ContextException about the app's compose services (no such app in the spec) as
/// the original's KeyError (`_UnknownApp`); any other error as it is.
fn unknown_app_or(py: Python<'_>, e: PyErr) -> PyResult<PyErr> {
    let context_exception = py.import("tycho.exceptions")?.getattr("ContextException")?;
    if e.matches(py, &context_exception)? {
        let value = e.value(py);
        let field = value.getattr("field")?;
        if !field.is_none() && field.eq("spec.services")? {
            let unknown = py.import("tycho.context")?.getattr("_UnknownApp")?;
            return Ok(PyErr::from_value(
                unknown.call1((value.getattr("message")?,))?,
            ));
        }
    }
    Ok(e)
}

#[pymethods]
impl TychoContext {
    /// The native part of a context; the Python subclass's `__init__` loads the registry.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        TychoContext
    }

    /// Launch `app_id` for `principal`; returns a `tycho.client.TychoSystem`.
    ///
    /// `resource_request`: `{"deploy": {"resources": {"limits": {...}, "reservations":
    /// {...}}}}`; `host`: the host name the user reached appstore by;
    /// `extra_container_env`: extra environment variables for every container.
    #[pyo3(
        signature = (principal, app_id, resource_request, host, extra_container_env=None),
        text_signature = "($self, principal, app_id, resource_request, host, extra_container_env={})"
    )]
    fn start<'py>(
        slf: &Bound<'py, Self>,
        principal: &Bound<'py, PyAny>,
        app_id: &Bound<'py, PyAny>,
        resource_request: &Bound<'py, PyAny>,
        host: &Bound<'py, PyAny>,
        extra_container_env: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        context_log(
            py,
            INFO,
            "start: principal: %s app_id: %s resource_request: %s host: %s",
            &[
                principal.clone(),
                app_id.clone(),
                brief(resource_request)?,
                host.clone(),
            ],
        )?;
        let app = slf.call_method1("_app", (app_id,))?;
        let none = py.None().into_bound(py);
        let params = principal_params(principal, host, extra_container_env.unwrap_or(&none))?;
        let is_mapping = resource_request.is_none()
            || resource_request.is_instance(&py.import("collections.abc")?.getattr("Mapping")?)?;
        if !is_mapping {
            let class = py.import("tycho.exceptions")?.getattr("ContextException")?;
            let what = resource_request.get_type().name()?;
            return Err(PyErr::from_value(class.call1((format!(
                "resource_request must be a mapping, got {what}"
            ),))?));
        }
        let (request, spec, settings, native_files) =
            build_request(slf, app_id, &app, &params, resource_request)?;
        if native_files {
            app.set_item("spec_obj", spec)?;
            app.set_item("env_obj", settings)?;
        }
        let safe = PyDict::new(py);
        for (k, v) in params.iter() {
            if !(k.eq("access_token")? || k.eq("refresh_token")?) {
                safe.set_item(k, v)?;
            }
        }
        context_log(
            py,
            DEBUG,
            "start request for %s: principal %s",
            &[app_id.clone(), safe.into_any()],
        )?;
        // The named mock.patch point between the request and its start (see _start).
        let system = slf.call_method1("_start", (&request,))?;
        let running = running_services(&system, &request, app_id)?;
        context_log(
            py,
            INFO,
            "  -- started app id:%s user:%s id:%s services:%s",
            &[
                app_id.clone(),
                principal.getattr("username")?,
                system.getattr("identifier")?,
                PyList::new(py, running.items())?.into_any(),
            ],
        )?;
        Ok(system)
    }

    /// Launch a start request (`self.client.start`); the anchor to mock in tests: the
    /// mock.patch point between `start`'s request and its check, compile and start
    /// (`TychoContext._start`, then `TychoClient.start` / `TychoClient.request`, as the
    /// original's suites patch them).
    fn _start<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.getattr("client")?.call_method1("start", (request,))
    }

    /// Status of systems (the original's call and result). Opt-in: `"reasons": True` in
    /// `request` also fills `reason` on each row's TychoService that is not ready (from
    /// `readiness`; None when ready). The rows keep the original's keys.
    fn status<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let client = slf.getattr("client")?;
        let asked = match request.cast::<PyDict>() {
            Ok(d) => match d.get_item("reasons")? {
                Some(v) => v.is(pyo3::types::PyBool::new(py, true).as_any()),
                None => false,
            },
            Err(_) => false,
        };
        if !asked {
            return client.call_method1("status", (request,));
        }
        if crate::environment::python::rest_api() {
            // The server (`tycho api`) fills `reason` on each row; TychoStatus moves it to
            // the TychoService (an original server ignores the field: no reasons).
            return client.call_method1("status", (request,));
        }
        let without = PyDict::new(py);
        for (k, v) in request.cast::<PyDict>()?.iter() {
            if !k.eq("reasons")? {
                without.set_item(k, v)?;
            }
        }
        let result = client.call_method1("status", (without,))?;
        if let Ok(services) = result.getattr("services") {
            for service in services.try_iter()? {
                let service = service?;
                let identifier = service.getattr("identifier")?;
                if identifier.is_truthy()? && !service.getattr("is_ready")?.is_truthy()? {
                    let progress = slf.call_method1("readiness", (identifier,))?;
                    service.setattr("reason", progress.call_method1("get", ("reason",))?)?;
                }
            }
        }
        Ok(result)
    }

    /// Delete a system: `{"name": <GUID>}` (`self.client.delete`).
    fn delete<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.getattr("client")?.call_method1("delete", (request,))
    }

    /// Change a running system (`self.client.patch`): `{"tycho-guid", "labels", "cpu",
    /// "memory"}`.
    fn update<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.getattr("client")?.call_method1("patch", (request,))
    }

    /// The result of `service` (stop, resume, touch) of system `name`; TychoException
    /// when it failed.
    fn _by_name<'py>(
        slf: &Bound<'py, Self>,
        service: &str,
        name: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let request = PyDict::new(py);
        request.set_item("name", name.str()?)?;
        let response = slf
            .getattr("client")?
            .call_method1("request", (service, request))?;
        let status = response.call_method1("get", ("status",))?;
        if !status.eq("success")? {
            let message = response.call_method1("get", ("message",))?;
            let message = if message.is_truthy()? {
                message.str()?.to_string()
            } else {
                format!("{service} failed")
            };
            let result = response.call_method1("get", ("result",))?;
            let class = py.import("tycho.exceptions")?.getattr("TychoException")?;
            return Err(PyErr::from_value(class.call1((message, result))?));
        }
        let result = response.call_method1("get", ("result",))?;
        if result.is_truthy()? {
            Ok(result)
        } else {
            Ok(PyDict::new(py).into_any())
        }
    }

    /// Stop system `name` (its GUID): its Deployment scaled to 0; Services, the token
    /// Secret, claims and the NetworkPolicy are kept. Idempotent. Returns the result
    /// (`{"name", "deployments": {name: replicas}}`); TychoException on failure.
    fn stop<'py>(slf: &Bound<'py, Self>, name: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        slf.call_method1("_by_name", ("stop", name))
    }

    /// Resume stopped system `name` with the replica count it had. Idempotent.
    fn resume<'py>(
        slf: &Bound<'py, Self>,
        name: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.call_method1("_by_name", ("resume", name))
    }

    /// Record activity of system `name` now: culling counts its idle time from here.
    fn touch<'py>(slf: &Bound<'py, Self>, name: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        slf.call_method1("_by_name", ("touch", name))
    }
}

/// Adds `TychoContext` to `tycho._native`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TychoContext>()
}
