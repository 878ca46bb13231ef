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
use pyo3::types::{PyDict, PyList, PyString};
use serde_json::{Map, Value};

/// A running service endpoint (a status row or a started container).
#[pyclass(subclass, dict, module = "tycho.client")]
pub struct TychoService {
    /// The container (or, in a status row, the system's) name.
    #[pyo3(get, set)]
    name: Py<PyAny>,
    /// The app's system name (`<app>-<guid>`).
    #[pyo3(get, set)]
    app_id: Py<PyAny>,
    /// The address the service is reached at.
    #[pyo3(get, set)]
    ip_address: Py<PyAny>,
    /// The port the service is reached at.
    #[pyo3(get, set)]
    port: Py<PyAny>,
    /// The system's GUID (the constructor's `sid`).
    #[pyo3(get, set)]
    identifier: Py<PyAny>,
    /// When the system was created.
    #[pyo3(get, set)]
    creation_time: Py<PyAny>,
    /// The owner.
    #[pyo3(get, set)]
    username: Py<PyAny>,
    /// Resource limits by container.
    #[pyo3(get, set)]
    utilization: Py<PyAny>,
    /// Totals over `utilization` (see `get_utilization`).
    #[pyo3(get, set)]
    total_util: Py<PyAny>,
    /// The connection string of the app.
    #[pyo3(get, set)]
    conn_string: Py<PyAny>,
    /// The workspace name of the app.
    #[pyo3(get, set)]
    workspace_name: Py<PyAny>,
    /// Whether every replica is ready.
    #[pyo3(get, set)]
    is_ready: Py<PyAny>,
    /// Why the system is not ready (`TychoContext.status` with `"reasons": True` fills
    /// it); None otherwise. Not a constructor argument, so rows keep the original's keys.
    #[pyo3(get, set)]
    reason: Py<PyAny>,
}

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

#[pymethods]
impl TychoService {
    /// A service; `sid` becomes `identifier`, `total_util` is computed from `utilization`.
    #[new]
    #[pyo3(
        signature = (name, app_id, ip_address, port, sid=Given::Missing, creation_time=Given::Missing, username=Given::Missing, utilization=Given::Missing, conn_string=Given::Missing, workspace_name=Given::Missing, is_ready=Given::Missing),
        text_signature = "(name, app_id, ip_address, port, sid=None, creation_time=None, username='', utilization=None, conn_string='', workspace_name='', is_ready=False)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: Py<PyAny>,
        app_id: Py<PyAny>,
        ip_address: Py<PyAny>,
        port: Py<PyAny>,
        sid: Given,
        creation_time: Given,
        username: Given,
        utilization: Given,
        conn_string: Given,
        workspace_name: Given,
        is_ready: Given,
    ) -> PyResult<Self> {
        let text = || PyString::new(py, "").into_any().unbind();
        let utilization = utilization.or(|| py.None());
        let utilization = if utilization.is_none(py) {
            PyDict::new(py).into_any().unbind()
        } else {
            utilization
        };
        let total_util = utilization_totals(py, utilization.bind(py))?
            .into_any()
            .unbind();
        Ok(TychoService {
            name,
            app_id,
            ip_address,
            port,
            identifier: sid.or(|| py.None()),
            creation_time: creation_time.or(|| py.None()),
            username: username.or(text),
            utilization,
            total_util,
            conn_string: conn_string.or(text),
            workspace_name: workspace_name.or(text),
            is_ready: is_ready.or(|| {
                pyo3::types::PyBool::new(py, false)
                    .to_owned()
                    .into_any()
                    .unbind()
            }),
            reason: py.None(),
        })
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

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let s = |v: &Py<PyAny>| -> PyResult<String> { Ok(v.bind(py).str()?.to_string()) };
        Ok(format!(
            "name: {} ip: {} port: {} user:{} id: {} time: {} util: {}",
            s(&self.name)?,
            s(&self.ip_address)?,
            s(&self.port)?,
            s(&self.username)?,
            s(&self.identifier)?,
            s(&self.creation_time)?,
            s(&self.utilization)?
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
    fn from_row(py: Python<'_>, row: &Map<String, Value>) -> PyResult<Self> {
        if let Some(key) = row
            .keys()
            .find(|k| *k != "reason" && !SERVICE_FIELDS.contains(&k.as_str()))
        {
            return Err(PyTypeError::new_err(format!(
                "TychoService.__init__() got an unexpected keyword argument '{key}'"
            )));
        }
        let field = |key: &str| -> PyResult<Option<Py<PyAny>>> {
            row.get(key)
                .map(|v| crate::bindings::to_py(py, v).map(Bound::unbind))
                .transpose()
        };
        let given = |key: &str| -> PyResult<Given> { field(key).map(Given::from) };
        let required = |key: &str| -> PyResult<Py<PyAny>> {
            field(key)?.ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "TychoService.__init__() missing 1 required positional argument: '{key}'"
                ))
            })
        };
        let mut service = TychoService::new(
            py,
            required("name")?,
            required("app_id")?,
            required("ip_address")?,
            required("port")?,
            given("sid")?,
            given("creation_time")?,
            given("username")?,
            given("utilization")?,
            given("conn_string")?,
            given("workspace_name")?,
            given("is_ready")?,
        )?;
        if let Some(reason) = row.get("reason").filter(|r| !r.is_null()) {
            service.reason = crate::bindings::to_py(py, reason)?.unbind();
        }
        Ok(service)
    }
}

/// A response to a status request; `services` holds one [`TychoService`] per row.
#[pyclass(subclass, dict, module = "tycho.client")]
pub struct TychoStatus {
    /// `success` or `error`.
    #[pyo3(get, set)]
    status: Py<PyAny>,
    /// One TychoService per row.
    #[pyo3(get, set)]
    services: Py<PyAny>,
    /// The response's message.
    #[pyo3(get, set)]
    message: Py<PyAny>,
}

#[pymethods]
impl TychoStatus {
    /// A status from a response's `status`, `result` (the rows; anything but a list
    /// gives no services) and `message`.
    #[new]
    fn new(
        py: Python<'_>,
        status: Py<PyAny>,
        result: &Bound<'_, PyAny>,
        message: Py<PyAny>,
    ) -> PyResult<Self> {
        let services = PyList::empty(py);
        if let Ok(rows) = result.cast::<PyList>() {
            let class = py.get_type::<TychoService>();
            for row in rows.iter() {
                let reason = match row.cast::<PyDict>() {
                    Ok(d) => d.get_item("reason")?,
                    Err(_) => None,
                };
                let kwargs = PyDict::new(py);
                match row.cast::<PyDict>() {
                    Ok(d) => kwargs.update(d.as_mapping())?,
                    Err(_) => {
                        kwargs.update(row.cast::<pyo3::types::PyMapping>().map_err(|_| {
                            PyTypeError::new_err(format!(
                                "TychoService() argument after ** must be a mapping, not {}",
                                row.get_type()
                                    .name()
                                    .map(|n| n.to_string())
                                    .unwrap_or_default()
                            ))
                        })?)?
                    }
                }
                if kwargs.contains("reason")? {
                    kwargs.del_item("reason")?;
                }
                let service = class.call((), Some(&kwargs))?;
                if let Some(reason) = reason.filter(|r| !r.is_none()) {
                    service.setattr("reason", reason)?;
                }
                services.append(service)?;
            }
        }
        Ok(TychoStatus {
            status,
            services: services.into_any().unbind(),
            message,
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let texts = PyList::empty(py);
        for s in self.services.bind(py).try_iter()? {
            texts.append(s?.str()?)?;
        }
        Ok(format!(
            "status: {} svcs: {} msg: {}",
            self.status.bind(py).str()?,
            texts.str()?,
            self.message.bind(py).str()?
        ))
    }
}

impl TychoStatus {
    /// A successful status of the executor's `rows`, each row straight into a
    /// [`TychoService`] (no Python dict of it is made).
    pub(crate) fn from_rows(py: Python<'_>, rows: &[Value], message: &str) -> PyResult<Self> {
        let services = PyList::empty(py);
        for row in rows {
            let Value::Object(row) = row else {
                return Err(PyTypeError::new_err(
                    "TychoService() argument after ** must be a mapping",
                ));
            };
            services.append(Py::new(py, TychoService::from_row(py, row)?)?)?;
        }
        Ok(TychoStatus {
            status: PyString::new(py, "success").into_any().unbind(),
            services: services.into_any().unbind(),
            message: PyString::new(py, message).into_any().unbind(),
        })
    }
}

/// A started system. The constructor raises `StartException` (a `TychoException`) when
/// the start response is an error.
#[pyclass(subclass, dict, module = "tycho.client")]
pub struct TychoSystem {
    /// The response's status.
    #[pyo3(get, set)]
    status: Py<PyAny>,
    /// The system's name (`<app>-<guid>`).
    #[pyo3(get, set)]
    name: Py<PyAny>,
    /// The system's GUID.
    #[pyo3(get, set)]
    identifier: Py<PyAny>,
    /// One TychoService per container with an endpoint.
    #[pyo3(get, set)]
    services: Py<PyAny>,
    /// The app's connection string.
    #[pyo3(get, set)]
    conn_string: Py<PyAny>,
    /// The response's message.
    #[pyo3(get, set)]
    message: Py<PyAny>,
}

#[pymethods]
impl TychoSystem {
    /// A started system from a start response's `status`, `result`
    /// (`{"name", "sid", "containers": {container: {"ip_address", <port name>: port}},
    /// "conn_string"}`) and `message`.
    #[new]
    fn new(
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        result: &Bound<'_, PyAny>,
        message: Py<PyAny>,
    ) -> PyResult<Self> {
        if status.eq("error")? {
            let text = format!(
                "status:{} result:{} message:{}",
                status.str()?,
                result.str()?,
                message.bind(py).str()?
            );
            let class = py.import("tycho.exceptions")?.getattr("StartException")?;
            return Err(PyErr::from_value(class.call1((text,))?));
        }
        let name = result.get_item("name")?;
        let identifier = result.get_item("sid")?;
        let services = PyList::empty(py);
        let containers = result.call_method1("get", ("containers",))?;
        if containers.is_truthy()? {
            let class = py.get_type::<TychoService>();
            for item in containers.call_method0("items")?.try_iter()? {
                let (container, endpoint): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                    item?.extract()?;
                let mut port = endpoint.call_method1("get", ("port-1",))?;
                if port.is_none() {
                    // Keyed by the Service port's name: take the first one.
                    for pair in endpoint.call_method0("items")?.try_iter()? {
                        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
                        if !k.eq("ip_address")? {
                            port = v;
                            break;
                        }
                    }
                }
                let kwargs = PyDict::new(py);
                kwargs.set_item("name", container)?;
                kwargs.set_item("app_id", &name)?;
                kwargs.set_item("ip_address", endpoint.call_method1("get", ("ip_address",))?)?;
                kwargs.set_item("port", port)?;
                services.append(class.call((), Some(&kwargs))?)?;
            }
        }
        let conn_string = result.call_method1("get", ("conn_string", ""))?;
        Ok(TychoSystem {
            status: status.clone().unbind(),
            name: name.unbind(),
            identifier: identifier.unbind(),
            services: services.into_any().unbind(),
            conn_string: conn_string.unbind(),
            message,
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "name: {} sid: {} services: {}",
            self.name.bind(py).str()?,
            self.identifier.bind(py).str()?,
            self.services.bind(py).repr()?
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
