//! `TychoClient`, native: the client of the Tycho API that `tycho.client.TychoClient`
//! subclasses (so the original's suites can `mock.patch.object(TychoClient, "request",
//! ...)` and subclass it). A request goes to the REST API when `REST_API=true`
//! ([`crate::environment::python::rest_api`], read at each request; the HTTP exchange is
//! [`crate::exec::remote`]), else to the in-process request handlers of
//! `tycho.actions` in `self.actions`.
//!
//! Public methods call each other through attribute lookup, as the original's did, so a
//! patch of `request` is honoured by `start`, `status` and the rest. `status` builds its
//! [`TychoStatus`] from the executor's rows without a response dict when nothing
//! between it and the executor is replaced (`StatusSystemResource.status_object`).

use super::results::{Given, TychoStatus, TychoSystem};
use super::stopcull::{request_value, Asked};
use crate::exec::backplane::Backplane;
use crate::exec::remote::{self, Answer};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::time::Duration;

/// The URL of the Tycho API when none is given.
const DEFAULT_URL: &str = "http://localhost:5000";

/// The request handlers of `tycho.actions`, by service name.
const ACTIONS: [(&str, &str); 7] = [
    ("start", "StartSystemResource"),
    ("status", "StatusSystemResource"),
    ("delete", "DeleteSystemResource"),
    ("modify", "ModifySystemResource"),
    ("stop", "StopSystemResource"),
    ("resume", "ResumeSystemResource"),
    ("touch", "TouchSystemResource"),
];

/// Python client of the Tycho dynamic application deployment API.
///
/// Its attributes live in the instance's `__dict__`, as the original's: `url`
/// (`{url}/system`, where requests are posted when `REST_API=true`) and `actions` (the
/// in-process request handlers by service name, `tycho.actions`).
#[pyclass(subclass, dict, module = "tycho.client")]
pub struct TychoClient;

/// `TychoException(message, details)` of `tycho.exceptions`.
fn tycho_exception(py: Python<'_>, message: String, details: String) -> PyErr {
    match py
        .import("tycho.exceptions")
        .and_then(|m| m.getattr("TychoException"))
        .and_then(|c| c.call1((message.clone(), details)))
    {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// `cls(**response)`: a result type from a response dict, as the original built it.
fn from_response<'py>(
    class: Bound<'py, pyo3::types::PyType>,
    response: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = response.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{}() argument after ** must be a mapping, not {}",
            class.name().map(|n| n.to_string()).unwrap_or_default(),
            response
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    class.call((), Some(kwargs))
}

/// A DEBUG record on the `tycho.client` logger.
fn log_debug<'py>(py: Python<'py>, format: &str, args: &[Bound<'py, PyAny>]) -> PyResult<()> {
    super::pylog::log(py, "tycho.client", super::pylog::DEBUG, format, args)
}

/// Whether `method` of `slf` is this class's own: neither a subclass nor a patch (on the
/// class or the instance) replaced it.
pub(crate) fn is_own<T: pyo3::PyTypeInfo>(slf: &Bound<'_, PyAny>, method: &str) -> PyResult<bool> {
    let py = slf.py();
    let own = py.get_type::<T>().getattr(method)?;
    if !slf.get_type().getattr(method)?.is(&own) {
        return Ok(false);
    }
    let dict = slf.getattr("__dict__")?;
    Ok(!dict.contains(method)?)
}

/// A request the in-process client runs itself, in its own crossing: its handler
/// (`self.actions[service]`) and the compute are tycho's own (`tycho.actions._native_target`).
struct Direct<'py> {
    /// The handler, which words the answer (`create_response`).
    action: Bound<'py, PyAny>,
    /// The backplane that runs it.
    backplane: Backplane,
    /// The compute's configuration.
    config: Bound<'py, PyAny>,
    /// The compute's explicit namespace.
    namespace: Option<String>,
    /// The service (start, status, delete, modify).
    service: &'static str,
}

/// The [`Direct`] way for `service`, or None when a request must take the handlers'
/// way: `REST_API=true`, `request` replaced, or a handler or compute method replaced.
fn direct<'py>(slf: &Bound<'py, PyAny>, service: &'static str) -> PyResult<Option<Direct<'py>>> {
    let py = slf.py();
    if crate::environment::python::rest_api() || !is_own::<TychoClient>(slf, "request")? {
        return Ok(None);
    }
    let action = slf.getattr("actions")?.call_method1("get", (service,))?;
    let target = py
        .import("tycho.actions")?
        .getattr("_native_target")?
        .call1((service, &action))?;
    if target.is_none() {
        return Ok(None);
    }
    let (name, config, namespace): (String, Bound<'py, PyAny>, Option<String>) =
        target.extract()?;
    let Ok(backplane) = Backplane::parse(&name) else {
        return Ok(None);
    };
    Ok(Some(Direct {
        action,
        backplane,
        config,
        namespace,
        service,
    }))
}

impl<'py> Direct<'py> {
    /// The core's result of `request` for `asked`, with a started system's name.
    fn run(
        &self,
        asked: Asked,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<(serde_json::Value, Option<String>)> {
        let py = request.py();
        request_value(
            py,
            self.backplane,
            asked,
            request,
            Some(&self.config),
            self.namespace.clone(),
        )
    }

    /// The handler's success response (`create_response(result=..., message=...)`).
    fn success(&self, result: Bound<'py, PyAny>, message: String) -> PyResult<Bound<'py, PyAny>> {
        let kwargs = PyDict::new(self.action.py());
        kwargs.set_item("result", result)?;
        kwargs.set_item("message", message)?;
        let response = self
            .action
            .call_method("create_response", (), Some(&kwargs))?;
        self.answered("success")?;
        Ok(response)
    }

    /// The client's DEBUG record of an answer (on `tycho.client`, as for a request
    /// through the handler).
    fn answered(&self, status: &str) -> PyResult<()> {
        let py = self.action.py();
        log_debug(
            py,
            "TychoClient.request - status %s received from service: %s",
            &[
                PyString::new(py, status).into_any(),
                PyString::new(py, self.service).into_any(),
            ],
        )
    }

    /// The handler's error response to `error` (an Exception; anything else is raised),
    /// logged on `tycho.actions` as the handler logs it: `log` with the message last.
    fn failure(
        &self,
        error: PyErr,
        log: &str,
        mut log_args: Vec<Bound<'py, PyAny>>,
        message: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = self.action.py();
        if !error.is_instance_of::<pyo3::exceptions::PyException>(py) {
            return Err(error);
        }
        let actions = py.import("tycho.actions")?;
        let exception = error.value(py).clone().into_any();
        log_args.push(actions.getattr("_message_of")?.call1((&exception,))?);
        super::pylog::log(py, "tycho.actions", super::pylog::ERROR, log, &log_args)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("exception", exception)?;
        kwargs.set_item("message", message)?;
        let response = self
            .action
            .call_method("create_response", (), Some(&kwargs))?;
        self.answered("error")?;
        Ok(response)
    }
}

/// `request.get("name")` of a dict request (None otherwise), as the handlers name a system.
fn system_name<'py>(request: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    match request.cast::<PyDict>() {
        Ok(d) => Ok(d
            .get_item("name")?
            .unwrap_or_else(|| request.py().None().into_bound(request.py()))),
        Err(_) => Ok(request.py().None().into_bound(request.py())),
    }
}

impl TychoClient {
    /// POSTs `request` to `{url}/{service}` (the REST API), bounded by `self.timeout`.
    fn post<'py>(
        slf: &Bound<'py, PyAny>,
        service: &str,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let url = format!("{}/{service}", slf.getattr("url")?.str()?);
        let timeout: f64 = slf.getattr("timeout")?.extract()?;
        let timeout = Duration::try_from_secs_f64(timeout).map_err(|_| {
            PyTypeError::new_err(format!("timeout must be positive seconds, got {timeout}"))
        })?;
        let plain = super::plain::to_plain(request, "request")?;
        let body = serde_json::to_vec(&super::from_py(&plain, "request")?).map_err(|e| {
            tycho_exception(
                py,
                format!("request: cannot be written as JSON: {e}"),
                String::new(),
            )
        })?;
        let target = url.clone();
        let answer = super::run(py, move || Ok(remote::post(&target, body, timeout)))?;
        match answer {
            Answer::Json(v) | Answer::Refused(v) => {
                let status = v.get("status").and_then(serde_json::Value::as_str);
                log_debug(
                    py,
                    "TychoClient.request - HTTP answer %s received from service: %s",
                    &[
                        status.into_pyobject(py)?.into_any(),
                        PyString::new(py, service).into_any(),
                    ],
                )?;
                super::to_py(py, &v)
            }
            Answer::Status(code) => Err(tycho_exception(
                py,
                format!("Error: HTTP status {code} received from service: {service}"),
                url,
            )),
            Answer::Unreachable(reason) => Err(tycho_exception(
                py,
                format!("Error: cannot reach the Tycho API at {url}: {reason}"),
                url,
            )),
            Answer::Unreadable(head) => Err(tycho_exception(
                py,
                format!("Error: the Tycho API at {url} did not answer JSON"),
                head,
            )),
        }
    }
}

#[pymethods]
impl TychoClient {
    /// The object; `__init__` sets its attributes.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs), text_signature = "(url='http://localhost:5000')")]
    fn new(_args: &Bound<'_, pyo3::types::PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        TychoClient
    }

    /// A client of the Tycho API at `url` (used when `REST_API=true`).
    #[pyo3(signature = (url=Given::Missing))]
    fn __init__(slf: &Bound<'_, Self>, url: Given) -> PyResult<()> {
        let py = slf.py();
        let url = url.or(|| PyString::new(py, DEFAULT_URL).into_any().unbind());
        slf.setattr("url", format!("{}/system", url.bind(py).str()?))?;
        let module = py.import("tycho.actions")?;
        let actions = PyDict::new(py);
        for (service, class) in ACTIONS {
            actions.set_item(service, module.getattr(class)?.call0()?)?;
        }
        slf.setattr("actions", actions)
    }

    /// Seconds to wait for the REST API to answer one request.
    #[classattr]
    fn timeout() -> f64 {
        300.0
    }

    /// Send `request` to `service` (start, status, delete, modify, stop, resume,
    /// touch); returns the response dict.
    fn request<'py>(
        slf: &Bound<'py, Self>,
        service: &Bound<'py, PyAny>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if crate::environment::python::rest_api() {
            let name = service.str()?.to_string();
            return Self::post(slf.as_any(), &name, request);
        }
        let action = slf.getattr("actions")?.call_method1("get", (service,))?;
        if action.is_none() {
            return Err(tycho_exception(
                py,
                format!("unknown Tycho service {}", service.repr()?),
                String::new(),
            ));
        }
        let result = action.call_method1("post", (request,))?;
        let status = result
            .cast::<PyDict>()
            .ok()
            .and_then(|d| d.get_item("status").ok().flatten());
        log_debug(
            py,
            "TychoClient.request - status %s received from service: %s",
            &[
                status.unwrap_or_else(|| py.None().into_bound(py)),
                service.clone(),
            ],
        )?;
        Ok(result)
    }

    /// `name` with path separators replaced by `-` (a valid DNS label part).
    fn format_name<'py>(&self, name: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        name.call_method1("replace", (std::path::MAIN_SEPARATOR_STR, "-"))
    }

    /// `{VAR: value}` from `VAR=value` lines (lines without `=` are skipped).
    fn parse_env<'py>(
        &self,
        py: Python<'py>,
        environment: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let parsed = crate::text::dotenv::parse_env(environment.unwrap_or(""));
        super::to_py(py, &serde_json::Value::Object(parsed))
    }

    /// Start a system; returns a `TychoSystem` (TychoException on error).
    ///
    /// `request`: `{"name", "principal" (JSON text), "serviceaccount", "env", "system", "services"}`.
    fn start<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let response = match direct(slf.as_any(), "start")? {
            Some(d) => match d.run(Asked::Start, request) {
                Ok((result, name)) => d.success(
                    super::to_py(py, &result)?,
                    format!("Started system {}", name.unwrap_or_default()),
                )?,
                Err(e) => d.failure(
                    e,
                    "failed to start system: %s",
                    vec![],
                    "Failed to create system.".to_string(),
                )?,
            },
            None => slf.call_method1("request", ("start", request))?,
        };
        from_response(py.get_type::<TychoSystem>(), &response)
    }

    /// Status of systems: `{}`, `{"name": <GUID>}` or `{"username": u}`. Returns a
    /// TychoStatus, built from the executor's rows (no response dict) unless `request`
    /// is replaced or the REST API answers.
    fn status<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if let Some(d) = direct(slf.as_any(), "status")? {
            let response = match d.run(Asked::Status, request) {
                Ok((rows, _)) => {
                    let message = format!("Get status for system {}", system_name(request)?.str()?);
                    let rows = rows.as_array().map(Vec::as_slice).unwrap_or_default();
                    let status = TychoStatus::from_rows(py, rows, &message)?;
                    d.answered("success")?;
                    return Ok(status.into_any());
                }
                Err(e) => d.failure(
                    e,
                    "failed to get status: %s",
                    vec![],
                    "Failed to get system status.".to_string(),
                )?,
            };
            return from_response(py.get_type::<TychoStatus>(), &response);
        }
        if !crate::environment::python::rest_api()
            && is_own::<TychoClient>(slf.as_any(), "request")?
        {
            let action = slf.getattr("actions")?.call_method1("get", ("status",))?;
            if let Ok(status_object) = action.getattr("status_object") {
                return status_object.call1((request,));
            }
        }
        let response = slf.call_method1("request", ("status", request))?;
        from_response(py.get_type::<TychoStatus>(), &response)
    }

    /// Delete a system: `{"name": <GUID>}`. Returns the response dict.
    fn delete<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let Some(d) = direct(slf.as_any(), "delete")? else {
            return slf.call_method1("request", ("delete", request));
        };
        let name = system_name(request)?;
        match d.run(Asked::Delete, request) {
            Ok((result, _)) => d.success(
                super::to_py(py, &result)?,
                format!("Deleted system {}", name.str()?),
            ),
            Err(e) => d.failure(
                e,
                "failed to delete system %s: %s",
                vec![name.clone()],
                format!("Failed to delete system {}.", name.str()?),
            ),
        }
    }

    /// Change a running system: `{"tycho-guid": <GUID>, "labels": {...}, "cpu": ...,
    /// "memory": ...}`. Returns the response dict.
    fn modify<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let Some(d) = direct(slf.as_any(), "modify")? else {
            return slf.call_method1("request", ("modify", request));
        };
        match d.run(Asked::Modify, request) {
            Ok((result, _)) => d.success(
                super::to_py(py, &result)?,
                "Modified the system".to_string(),
            ),
            Err(e) => d.failure(
                e,
                "failed to modify system: %s",
                vec![],
                "Failed to modify system status.".to_string(),
            ),
        }
    }

    /// Modify a running system (CLI helper); returns the response dict, or None on
    /// failure (logged).
    fn patch<'py>(
        slf: &Bound<'py, Self>,
        mod_items: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        super::pylog::log(
            py,
            "tycho.client",
            super::pylog::INFO,
            "System specifications and metadata to be modified: %s",
            std::slice::from_ref(mod_items),
        )?;
        match slf.call_method1("modify", (mod_items,)) {
            Ok(response) => {
                log_debug(
                    py,
                    "TychoClient.patch - %s",
                    std::slice::from_ref(&response),
                )?;
                Ok(response)
            }
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyException>(py) => {
                let logger = py
                    .import("logging")?
                    .getattr("getLogger")?
                    .call1(("tycho.client",))?;
                let kwargs = PyDict::new(py);
                kwargs.set_item("exc_info", e.value(py))?;
                logger.call_method(
                    "exception",
                    ("Error in modifying system. %s", e.value(py)),
                    Some(&kwargs),
                )?;
                Ok(py.None().into_bound(py))
            }
            Err(e) => Err(e),
        }
    }

    /// Stop a system: `{"name": <GUID>}` (scaled to 0, everything else kept). Returns
    /// the response dict.
    fn stop<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.call_method1("request", ("stop", request))
    }

    /// Resume a stopped system: `{"name": <GUID>}`. Returns the response dict.
    fn resume<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.call_method1("request", ("resume", request))
    }

    /// Record activity of a system now: `{"name": <GUID>}`. Returns the response dict.
    fn touch<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.call_method1("request", ("touch", request))
    }
}

/// Adds `TychoClient` to `tycho._native`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TychoClient>()
}
