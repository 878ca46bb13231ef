//! The result types of `tycho.client`, native: [`TychoService`] (a running service: a
//! status row or a started container), [`TychoStatus`] (a status response) and
//! [`TychoSystem`] (a start response). `tycho.client` exports them as they are, so a
//! status read in process goes from the executor's rows to these objects without a
//! Python dict in between ([`TychoStatus::from_rows`]), while the original's
//! constructors (`TychoStatus(**response)`, `TychoService(**row)`) keep working on dicts.
//!
//! Constructor signatures, attributes and `repr` are tycho-api 1.17.3's. The types are
//! subclassable and carry a `__dict__`, so callers may add attributes to instances.
//! Numbers in `get_utilization` go through Python's own `float`, `int` and `round`, so
//! odd quantities fail (or not) exactly as before.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde_json::{Map, Value};

/// A running service endpoint (a status row or a started container). Its attributes
/// live in the instance's `__dict__`, set by `__init__` in the original's order, so
/// `vars(service)` is the original's.
#[pyclass(subclass, dict, module = "tycho.client")]
pub struct TychoService;

/// `float(text)` of Python (its exact rules and its ValueError).
fn py_float(py: Python<'_>, text: &str) -> PyResult<f64> {
    py.get_type::<pyo3::types::PyFloat>()
        .call1((text,))?
        .extract()
}

/// Millicores of a cpu limit: `250m` is 250, `0.5` is 500 (Python's round, half to even).
fn millicores<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let text = value.str()?.to_string();
    let text = text.trim();
    let builtins = py.import("builtins")?;
    if let Some(number) = text.strip_suffix('m') {
        return builtins.getattr("int")?.call1((py_float(py, number)?,));
    }
    builtins
        .getattr("round")?
        .call1((py_float(py, text)? * 1000.0,))
}

/// Bytes of a quantity; binary suffixes read as decimal (`1Gi` is 1e9), as tycho-api
/// 1.17.3 did.
fn bytes(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    let text = value.str()?.to_string().trim().replace('i', "");
    let Some(last) = text.chars().last() else {
        return Ok(0.0);
    };
    let exponent = match last.to_ascii_uppercase() {
        'K' => 3,
        'M' => 6,
        'G' => 9,
        'T' => 12,
        'P' => 15,
        'E' => 18,
        _ => return py_float(py, &text),
    };
    Ok(py_float(py, &text[..text.len() - last.len_utf8()])? * 10f64.powi(exponent))
}

/// `str(x)` of a Python float: `1.5`, `0.0`, `1e-05`.
fn float_text(py: Python<'_>, x: f64) -> PyResult<String> {
    Ok(pyo3::types::PyFloat::new(py, x).str()?.to_string())
}

/// Totals over the containers' resource limits (see `TychoService.get_utilization`).
fn utilization_totals<'py>(
    py: Python<'py>,
    utilization: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let mut cpu = pyo3::types::PyInt::new(py, 0).into_any();
    let mut gpu = pyo3::types::PyInt::new(py, 0).into_any();
    let mut memory = 0.0f64;
    let mut storage: Option<f64> = None;
    if utilization.is_truthy()? {
        for item in utilization.call_method0("items")?.try_iter()? {
            let (_container, limits): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?.extract()?;
            let Ok(limits) = limits.cast::<PyDict>() else {
                continue;
            };
            if let Some(v) = limits.get_item("cpu")?.filter(|v| !v.is_none()) {
                cpu = cpu.add(millicores(py, &v)?)?;
            }
            for (key, value) in limits.iter() {
                let nvidia = key.str()?.to_string().contains("nvidia");
                if nvidia && !value.is_none() {
                    let count = py.get_type::<pyo3::types::PyInt>().call1((value,))?;
                    gpu = gpu.add(count.mul(1000)?)?;
                }
            }
            if let Some(v) = limits.get_item("memory")?.filter(|v| !v.is_none()) {
                memory += bytes(py, &v)?;
            }
            for key in ["ephemeral-storage", "ephemeralStorage"] {
                if let Some(v) = limits.get_item(key)?.filter(|v| !v.is_none()) {
                    storage = Some(storage.unwrap_or(0.0) + bytes(py, &v)?);
                    break;
                }
            }
        }
    }
    let total = PyDict::new(py);
    total.set_item("gpu", gpu)?;
    total.set_item("cpu", cpu)?;
    total.set_item("memory", float_text(py, memory / 1e9)?)?;
    match storage {
        Some(s) => total.set_item("ephemeralStorage", float_text(py, s / 1e9)?)?,
        None => total.set_item("ephemeralStorage", 0)?,
    }
    Ok(total)
}

/// An optional constructor argument: given (any object, None included) or left out, so
/// `TychoService(..., username=None)` keeps None as the original did.
pub(crate) enum Given {
    /// Left out: the original's default applies.
    Missing,
    /// Given by the caller.
    Value(Py<PyAny>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Given {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Given::Value(obj.to_owned().unbind()))
    }
}

impl Given {
    /// The value given, else `default()`.
    pub(crate) fn or(self, default: impl FnOnce() -> Py<PyAny>) -> Py<PyAny> {
        match self {
            Given::Value(v) => v,
            Given::Missing => default(),
        }
    }
}

impl From<Option<Py<PyAny>>> for Given {
    fn from(value: Option<Py<PyAny>>) -> Self {
        value.map_or(Given::Missing, Given::Value)
    }
}

/// Sets a service's attributes, in the original's order (`total_util` from the
/// instance's own `get_utilization`, so a subclass's override is asked).
#[allow(clippy::too_many_arguments)]
fn init_service<'py>(
    slf: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
    app_id: &Bound<'py, PyAny>,
    ip_address: &Bound<'py, PyAny>,
    port: &Bound<'py, PyAny>,
    sid: Given,
    creation_time: Given,
    username: Given,
    utilization: Given,
    conn_string: Given,
    workspace_name: Given,
    is_ready: Given,
) -> PyResult<()> {
    let py = slf.py();
    let text = || PyString::new(py, "").into_any().unbind();
    let utilization = utilization.or(|| py.None());
    let utilization = if utilization.is_none(py) {
        PyDict::new(py).into_any().unbind()
    } else {
        utilization
    };
    slf.setattr("name", name)?;
    slf.setattr("app_id", app_id)?;
    slf.setattr("ip_address", ip_address)?;
    slf.setattr("port", port)?;
    slf.setattr("identifier", sid.or(|| py.None()))?;
    slf.setattr("creation_time", creation_time.or(|| py.None()))?;
    slf.setattr("username", username.or(text))?;
    slf.setattr("utilization", &utilization)?;
    let total = slf.call_method1("get_utilization", (&utilization,))?;
    slf.setattr("total_util", total)?;
    slf.setattr("conn_string", conn_string.or(text))?;
    slf.setattr("workspace_name", workspace_name.or(text))?;
    let not_ready = || {
        pyo3::types::PyBool::new(py, false)
            .to_owned()
            .into_any()
            .unbind()
    };
    slf.setattr("is_ready", is_ready.or(not_ready))?;
    Ok(())
}

#[pymethods]
impl TychoService {
    /// The object; `__init__` sets its attributes.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs), text_signature = "(name, app_id, ip_address, port, sid=None, creation_time=None, username='', utilization=None, conn_string='', workspace_name='', is_ready=False)")]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        TychoService
    }

    /// A service; `sid` becomes `identifier`, `total_util` is computed from `utilization`.
    #[pyo3(
        signature = (name, app_id, ip_address, port, sid=Given::Missing, creation_time=Given::Missing, username=Given::Missing, utilization=Given::Missing, conn_string=Given::Missing, workspace_name=Given::Missing, is_ready=Given::Missing)
    )]
    #[allow(clippy::too_many_arguments)]
    fn __init__(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        app_id: &Bound<'_, PyAny>,
        ip_address: &Bound<'_, PyAny>,
        port: &Bound<'_, PyAny>,
        sid: Given,
        creation_time: Given,
        username: Given,
        utilization: Given,
        conn_string: Given,
        workspace_name: Given,
        is_ready: Given,
    ) -> PyResult<()> {
        init_service(
            slf.as_any(),
            name,
            app_id,
            ip_address,
            port,
            sid,
            creation_time,
            username,
            utilization,
            conn_string,
            workspace_name,
            is_ready,
        )
    }

    /// Why the system is not ready (`TychoContext.status` with `"reasons": True` fills
    /// it on the instance); None otherwise. Not a constructor argument, so rows keep the
    /// original's keys.
    #[classattr]
    fn reason() -> Option<String> {
        None
    }

    /// Whether a status row's address may be the minikube node's (a class attribute).
    #[classattr]
    fn try_minikube() -> bool {
        true
    }

    /// Totals over the containers' resource limits.
    ///
    /// `cpu` in millicores (int), `gpu` as 1000 per GPU of any `*nvidia*` resource (as
    /// tycho-api 1.17.3 counted), `memory` in GB as a string (`"1.5"`; binary suffixes
    /// read as decimal, as before), `ephemeralStorage` in GB as a string when any
    /// container limits it, else `0`. Containers without limits (None) and limits
    /// without a cpu or memory entry add nothing — tycho-api 1.17.3 raised on those.
    #[pyo3(signature = (utilization))]
    fn get_utilization<'py>(
        &self,
        py: Python<'py>,
        utilization: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        match utilization {
            Some(u) => utilization_totals(py, &u),
            None => utilization_totals(py, &PyDict::new(py).into_any()),
        }
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let s = |key: &str| -> PyResult<String> { Ok(slf.getattr(key)?.str()?.to_string()) };
        Ok(format!(
            "name: {} ip: {} port: {} user:{} id: {} time: {} util: {}",
            s("name")?,
            s("ip_address")?,
            s("port")?,
            s("username")?,
            s("identifier")?,
            s("creation_time")?,
            s("utilization")?
        ))
    }
}

/// The constructor arguments of [`TychoService`], by name (a status row's keys).
const SERVICE_FIELDS: [&str; 11] = [
    "name",
    "app_id",
    "ip_address",
    "port",
    "sid",
    "creation_time",
    "username",
    "utilization",
    "conn_string",
    "workspace_name",
    "is_ready",
];

impl TychoService {
    /// The service of one status row of the executor (an object with the constructor's
    /// keys, and `reason` where asked for), built without a Python dict of the row.
    fn from_row<'py>(
        py: Python<'py>,
        row: &Map<String, Value>,
    ) -> PyResult<Bound<'py, TychoService>> {
        if let Some(key) = row
            .keys()
            .find(|k| *k != "reason" && !SERVICE_FIELDS.contains(&k.as_str()))
        {
            return Err(PyTypeError::new_err(format!(
                "TychoService.__init__() got an unexpected keyword argument '{key}'"
            )));
        }
        let field = |key: &str| -> PyResult<Option<Bound<'py, PyAny>>> {
            row.get(key)
                .map(|v| crate::bindings::to_py(py, v))
                .transpose()
        };
        let given = |key: &str| -> PyResult<Given> {
            field(key).map(|v| Given::from(v.map(Bound::unbind)))
        };
        let required = |key: &str| -> PyResult<Bound<'py, PyAny>> {
            field(key)?.ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "TychoService.__init__() missing 1 required positional argument: '{key}'"
                ))
            })
        };
        let service = Bound::new(py, TychoService)?;
        init_service(
            service.as_any(),
            &required("name")?,
            &required("app_id")?,
            &required("ip_address")?,
            &required("port")?,
            given("sid")?,
            given("creation_time")?,
            given("username")?,
            given("utilization")?,
            given("conn_string")?,
            given("workspace_name")?,
            given("is_ready")?,
        )?;
        if let Some(reason) = row.get("reason").filter(|r| !r.is_null()) {
            service.setattr("reason", crate::bindings::to_py(py, reason)?)?;
        }
        Ok(service)
    }
}

/// A response to a status request; `services` holds one [`TychoService`] per row.
/// Attributes (`status`, `services`, `message`) live in the instance's `__dict__`.
#[pyclass(subclass, dict, module = "tycho.client")]
pub struct TychoStatus;

/// The services of a status response's rows: `TychoService(**row)` each (`reason`
/// moved from the row to the service).
fn services_of_rows<'py>(
    py: Python<'py>,
    result: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let services = PyList::empty(py);
    let Ok(rows) = result.cast::<PyList>() else {
        return Ok(services);
    };
    let class = py.get_type::<TychoService>();
    for row in rows.iter() {
        let kwargs = PyDict::new(py);
        match row.cast::<PyDict>() {
            Ok(d) => kwargs.update(d.as_mapping())?,
            Err(_) => kwargs.update(row.cast::<pyo3::types::PyMapping>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "TychoService() argument after ** must be a mapping, not {}",
                    row.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?)?,
        }
        // `reason` comes only with the opt-in `"reasons": true` of our server.
        let reason = kwargs.get_item("reason")?;
        if reason.is_some() {
            kwargs.del_item("reason")?;
        }
        let service = class.call((), Some(&kwargs))?;
        if let Some(reason) = reason.filter(|r| !r.is_none()) {
            service.setattr("reason", reason)?;
        }
        services.append(service)?;
    }
    Ok(services)
}

#[pymethods]
impl TychoStatus {
    /// The object; `__init__` sets its attributes.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs), text_signature = "(status, result, message)")]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        TychoStatus
    }

    /// A status from a response's `status`, `result` (the rows; anything but a list
    /// gives no services) and `message`.
    fn __init__(
        slf: &Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        result: &Bound<'_, PyAny>,
        message: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        slf.setattr("status", status)?;
        slf.setattr("services", services_of_rows(slf.py(), result)?)?;
        slf.setattr("message", message)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let texts = PyList::empty(py);
        for s in slf.getattr("services")?.try_iter()? {
            texts.append(s?.str()?)?;
        }
        Ok(format!(
            "status: {} svcs: {} msg: {}",
            slf.getattr("status")?.str()?,
            texts.str()?,
            slf.getattr("message")?.str()?
        ))
    }
}

impl TychoStatus {
    /// A successful status of the executor's `rows`, each row straight into a
    /// [`TychoService`] (no Python dict of it is made).
    pub(crate) fn from_rows<'py>(
        py: Python<'py>,
        rows: &[Value],
        message: &str,
    ) -> PyResult<Bound<'py, TychoStatus>> {
        let services = PyList::empty(py);
        for row in rows {
            let Value::Object(row) = row else {
                return Err(PyTypeError::new_err(
                    "TychoService() argument after ** must be a mapping",
                ));
            };
            services.append(TychoService::from_row(py, row)?)?;
        }
        let status = Bound::new(py, TychoStatus)?;
        status.setattr("status", "success")?;
        status.setattr("services", services)?;
        status.setattr("message", message)?;
        Ok(status)
    }
}

/// A started system. `__init__` raises `StartException` (a `TychoException`) when the
/// start response is an error. Attributes live in the instance's `__dict__`.
#[pyclass(subclass, dict, module = "tycho.client")]
pub struct TychoSystem;

/// The port of a started container's endpoint: `port-1`, else the first entry that is
/// not `ip_address` (the entry is keyed by the Service port's name).
fn endpoint_port<'py>(endpoint: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let port = endpoint.call_method1("get", ("port-1",))?;
    if !port.is_none() {
        return Ok(port);
    }
    for pair in endpoint.call_method0("items")?.try_iter()? {
        let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = pair?.extract()?;
        if !k.eq("ip_address")? {
            return Ok(v);
        }
    }
    Ok(port)
}

#[pymethods]
impl TychoSystem {
    /// The object; `__init__` sets its attributes.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs), text_signature = "(status, result, message)")]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        TychoSystem
    }

    /// A started system from a start response's `status`, `result`
    /// (`{"name", "sid", "containers": {container: {"ip_address", <port name>: port}},
    /// "conn_string"}`) and `message`.
    fn __init__(
        slf: &Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        result: &Bound<'_, PyAny>,
        message: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        slf.setattr("status", status)?;
        if status.eq("error")? {
            let text = format!(
                "status:{} result:{} message:{}",
                status.str()?,
                result.str()?,
                message.str()?
            );
            let class = py.import("tycho.exceptions")?.getattr("StartException")?;
            return Err(PyErr::from_value(class.call1((text,))?));
        }
        let name = result.get_item("name")?;
        slf.setattr("name", &name)?;
        slf.setattr("identifier", result.get_item("sid")?)?;
        let services = PyList::empty(py);
        let containers = result.call_method1("get", ("containers",))?;
        if containers.is_truthy()? {
            let class = py.get_type::<TychoService>();
            for item in containers.call_method0("items")?.try_iter()? {
                let (container, endpoint): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                    item?.extract()?;
                let kwargs = PyDict::new(py);
                kwargs.set_item("name", container)?;
                kwargs.set_item("app_id", &name)?;
                kwargs.set_item("ip_address", endpoint.call_method1("get", ("ip_address",))?)?;
                kwargs.set_item("port", endpoint_port(&endpoint)?)?;
                services.append(class.call((), Some(&kwargs))?)?;
            }
        }
        slf.setattr("services", services)?;
        slf.setattr(
            "conn_string",
            result.call_method1("get", ("conn_string", ""))?,
        )?;
        slf.setattr("message", message)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Ok(format!(
            "name: {} sid: {} services: {}",
            slf.getattr("name")?.str()?,
            slf.getattr("identifier")?.str()?,
            slf.getattr("services")?.repr()?
        ))
    }
}

/// Adds the result types to `tycho._native`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TychoService>()?;
    m.add_class::<TychoStatus>()?;
    m.add_class::<TychoSystem>()?;
    Ok(())
}
