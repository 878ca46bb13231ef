//! Python bindings of the compiler (compile, parse, render, YAML, the CLI) and of the
//! model's rules, each written once in the core and called by both languages: the
//! volume and CIDR rules of the model constructors, the environment defaults
//! `tycho.model.System` reads, the request schema check of the REST server, the
//! registry's deep merge, `parse_env` and the namespace rule.

use crate::bindings::{config_value, from_py, run, to_py, to_pyerr, PlainWalk, Trace};
use crate::compile::{self, CompileOptions};
use crate::environment::var;
use crate::error::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{json, Map, Value};

/// Registers the compiler's and the rules' functions on the native module.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(compile_request, m)?)?;
    m.add_function(wrap_pyfunction!(parse_system, m)?)?;
    m.add_function(wrap_pyfunction!(render_template, m)?)?;
    m.add_function(wrap_pyfunction!(render_model, m)?)?;
    m.add_function(wrap_pyfunction!(render_string, m)?)?;
    m.add_function(wrap_pyfunction!(yaml_load_all, m)?)?;
    m.add_function(wrap_pyfunction!(template_literal, m)?)?;
    m.add_function(wrap_pyfunction!(yaml_dump_all, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(model_volumes, m)?)?;
    m.add_function(wrap_pyfunction!(client_network, m)?)?;
    m.add_function(wrap_pyfunction!(username_label, m)?)?;
    m.add_function(wrap_pyfunction!(model_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(validate_request, m)?)?;
    m.add_function(wrap_pyfunction!(deep_merge, m)?)?;
    m.add_function(wrap_pyfunction!(parse_env, m)?)?;
    m.add_function(wrap_pyfunction!(environment_namespace, m)?)?;
    m.add_function(wrap_pyfunction!(environment_python, m)?)?;
    m.add_function(wrap_pyfunction!(to_plain, m)?)?;
    Ok(())
}

/// Compiles a start request into its Kubernetes objects (Deployment, NetworkPolicy, Services).
#[pyfunction]
#[pyo3(signature = (request, ambassador=false, identifier=None, deployment_uid=None, config=None, missing_claims=None, secret_env=None))]
#[allow(clippy::too_many_arguments)]
fn compile_request<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    ambassador: bool,
    identifier: Option<String>,
    deployment_uid: Option<String>,
    config: Option<&Bound<'py, PyAny>>,
    missing_claims: Option<Vec<String>>,
    secret_env: Option<Vec<(String, String)>>,
) -> PyResult<Bound<'py, PyAny>> {
    let request = from_py(request, "request")?;
    let config = config_value(config)?;
    let options = CompileOptions {
        ambassador,
        identifier,
        deployment_uid,
        missing_claims: missing_claims.unwrap_or_default(),
        secret_env: secret_env.unwrap_or_default(),
        ..Default::default()
    };
    let objects = run(py, || {
        compile::compile_owned(&config, request, &options).map(compile::Compiled::into_objects)
    })?;
    to_py(py, &Value::Array(objects))
}

/// Parses a start request into the system model (a dict with the original's attribute names).
/// With `to_plain` (`tycho.tycho_utils.to_plain`), the request
/// may hold any values that function takes (see [`PlainWalk`]).
#[pyfunction]
#[pyo3(signature = (request, identifier=None, config=None, to_plain=None))]
fn parse_system<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    identifier: Option<String>,
    config: Option<&Bound<'py, PyAny>>,
    to_plain: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let request = PlainWalk {
        skip: None,
        to_plain,
    }
    .convert(request, "request")?;
    let config = config_value(config)?;
    let system = run(py, || compile::parse_system(&config, &request, identifier))?;
    // Straight from the model (no serde_json::Value in between): the same dict.
    pythonize::pythonize(py, &system).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// The system last rendered on this thread by [`render_model`], converted for the
/// templates: a system rendered with several templates in a row (pod.yaml, then
/// service.yaml per service) is converted and its container variables made once.
struct LastSystem {
    system: Value,
    mode: crate::config::AccessTokenEnv,
    converted: minijinja::Value,
    container_env: minijinja::Value,
}

impl LastSystem {
    /// `system` made ready for the templates under `config` (container variables in `mode`).
    fn new(
        config: &Value,
        system: Value,
        mode: crate::config::AccessTokenEnv,
    ) -> crate::Result<Self> {
        // The system lent to the context (not copied) and taken back after.
        let mut parts = Map::new();
        parts.insert("system".into(), system);
        let mut parts = Value::Object(parts);
        compile::add_container_env(config, &mut parts)?;
        let container_env = parts
            .get("container_env")
            .map(|e| minijinja::Value::from(minijinja::value::Serde(e)))
            .unwrap_or_default();
        let system = parts.get_mut("system").map(Value::take).unwrap_or_default();
        let converted = minijinja::Value::from(minijinja::value::Serde(&system));
        Ok(LastSystem {
            system,
            mode,
            converted,
            container_env,
        })
    }
}

thread_local! {
    /// The last system rendered on this thread, with the trace of its Python objects
    /// ([`crate::bindings::convert::Trace`]; `None` when part of it went through
    /// `to_plain`): the next render of the same, unchanged objects skips the conversion.
    static LAST_SYSTEM: std::cell::RefCell<Option<(Option<Trace>, LastSystem)>> =
        const { std::cell::RefCell::new(None) };
}

/// Renders template `name` with `system` (a `tycho.model.System`, converted natively:
/// see [`PlainWalk`]) as `system` plus `context` (a dict of values `to_plain` takes).
/// The system's conversion is kept for the next call on this thread: when that call
/// gets the same objects, unchanged ([`PlainWalk::unchanged`]), it is not converted again.
#[pyfunction]
#[pyo3(signature = (name, system, context, skip, to_plain, config=None))]
fn render_model<'py>(
    py: Python<'py>,
    name: String,
    system: &Bound<'py, PyAny>,
    context: &Bound<'py, PyAny>,
    skip: &Bound<'py, PyDict>,
    to_plain: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let walk = PlainWalk {
        skip: Some(skip),
        to_plain: Some(to_plain),
    };
    // Taken out while Python runs (a key's `__eq__` may render again on this thread).
    let last = LAST_SYSTEM.with(|l| l.borrow_mut().take());
    let (trace, system) = match last {
        Some((Some(trace), last)) if walk.unchanged(system, &trace).unwrap_or(false) => {
            (Some(trace), Ok(last))
        }
        _ => {
            let mut trace = Some(Vec::new());
            let value = walk.convert_traced(system, "system", &mut trace)?;
            (trace, Err(value))
        }
    };
    let context = walk.convert(context, "context")?;
    let config = config_value(config)?;
    let (docs, last) = run(py, || {
        let mode = crate::config::access_token_env(&config)?;
        let last = match system {
            Ok(last) if last.mode == mode => last,
            Ok(last) => LastSystem::new(&config, last.system, mode)?,
            Err(value) => LastSystem::new(&config, value, mode)?,
        };
        let mut ctx: std::collections::BTreeMap<String, minijinja::Value> = context
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    minijinja::Value::from(minijinja::value::Serde(v)),
                )
            })
            .collect();
        ctx.insert("system".into(), last.converted.clone());
        if !last.container_env.is_undefined() && !ctx.contains_key("container_env") {
            ctx.insert("container_env".into(), last.container_env.clone());
        }
        let paths = crate::config::template_paths(&config);
        let docs = crate::render::render(&paths, &name, minijinja::Value::from(ctx))?;
        Ok((docs, last))
    })?;
    LAST_SYSTEM.with(|l| *l.borrow_mut() = Some((trace, last)));
    to_py(py, &Value::Array(docs))
}

/// Renders template `name` with `context` (a dict) and returns the YAML documents.
#[pyfunction]
#[pyo3(signature = (name, context, config=None))]
fn render_template<'py>(
    py: Python<'py>,
    name: String,
    context: &Bound<'py, PyAny>,
    config: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut context = from_py(context, "context")?;
    let config = config_value(config)?;
    let docs = run(py, || {
        compile::add_container_env(&config, &mut context)?;
        let paths = crate::config::template_paths(&config);
        crate::render::render(
            &paths,
            &name,
            minijinja::Value::from(minijinja::value::Serde(&context)),
        )
    })?;
    to_py(py, &Value::Array(docs))
}

/// Renders template text with a context, printing values as Python does.
#[pyfunction]
fn render_string(py: Python<'_>, source: String, context: &Bound<'_, PyAny>) -> PyResult<String> {
    let context = from_py(context, "context")?;
    run(py, || crate::render::render_string(&source, &context))
}

/// `value` with every string that holds template syntax made to render as itself
/// (user input merged into a compose document stays data).
#[pyfunction]
fn template_literal<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let v = from_py(value, "value")?;
    to_py(py, &crate::render::literal_value(v))
}

/// Reads YAML text the way PyYAML's safe_load_all does.
#[pyfunction]
fn yaml_load_all<'py>(py: Python<'py>, text: String) -> PyResult<Bound<'py, PyAny>> {
    let docs = run(py, || crate::text::yaml::load_all(&text))?;
    to_py(py, &Value::Array(docs))
}

/// Writes documents as YAML.
#[pyfunction]
fn yaml_dump_all(py: Python<'_>, docs: &Bound<'_, PyAny>) -> PyResult<String> {
    let docs = from_py(docs, "documents")?;
    let list = match docs {
        Value::Array(a) => a,
        other => vec![other],
    };
    run(py, || Ok(crate::text::yaml::dump_all(&list)))
}

/// Runs the `tycho` command line with `argv` (program name first); returns the exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> PyResult<i32> {
    run(py, || Ok(crate::cli::run(argv)))
}

/// The volume mounts of `containers` (pairs of container name and `pvc://` specs) as the
/// model's volume dicts; a bad spec raises TychoException naming container and spec.
#[pyfunction]
fn model_volumes<'py>(
    py: Python<'py>,
    containers: Vec<(String, Vec<String>)>,
) -> PyResult<Bound<'py, PyAny>> {
    let volumes = crate::model::volumes_of(
        containers
            .iter()
            .map(|(name, specs)| (name.as_str(), specs.as_slice())),
    )
    .map_err(|e| to_pyerr(py, e))?;
    let value =
        serde_json::to_value(&volumes).map_err(|e| to_pyerr(py, Error::input(e.to_string())))?;
    to_py(py, &value)
}

/// The `username` label of `username`: itself when it is a valid label value, else its
/// slug (`crate::text::names::username_label`).
#[pyfunction]
fn username_label(username: &str) -> String {
    crate::text::names::username_label(username).into_owned()
}

/// A service client (CIDR or single address) in its normal form; a bad one raises
/// TychoException naming the service and the value.
#[pyfunction]
fn client_network(py: Python<'_>, service: String, client: &Bound<'_, PyAny>) -> PyResult<String> {
    let value = from_py(client, "client")?;
    crate::model::client_network(&service, &value).map_err(|e| to_pyerr(py, e))
}

/// The environment switches of the model the Python constructors use, with the
/// original's defaults (a small accessor until the model switches struct lands:
/// `subpath_dir` and `nfsrods_uid` are None when unset).
#[pyfunction]
fn model_defaults<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
    let s = crate::environment::model::ModelSwitches::from_env();
    let out = json!({
        "dev_phase": s.dev_phase,
        "ambassador_id": s.ambassador_id,
        "enable_init_container": s.enable_init_container,
        // The init container's reading: unset is "false".
        "create_home_dirs": s.create_home_dirs_text(),
        "stdnfs_pvc": s.stdnfs_pvc_or_default(),
        "parent_dir": s.parent_dir,
        "shared_dir": s.shared_dir,
        "init_image_repository": s.init_image_repository,
        "init_image_tag": s.init_image_tag,
        "init_cpus": s.init_cpus,
        "init_memory": s.init_memory,
        "gpu_resource_name": s.gpu_resource_name,
        "nfsrods_host": s.nfsrods_host,
        "gitea_host": s.gitea_host,
        "gitea_user": s.gitea_user,
        "gitea_service_name": s.gitea_service_name,
        "run_as_user": s.run_as_user,
        "run_as_group": s.run_as_group,
        "fs_group": s.fs_group,
        "init_run_as_user": s.init_run_as_user,
        "init_run_as_group": s.init_run_as_group,
        "subpath_dir": s.subpath_dir,
        "stdnfs_pvc_variable": s.stdnfs_pvc,
        "nfsrods_uid": s.nfsrods_uid,
        "irods_enabled": s.irods_enabled,
        // The rules of the model's builder, for the Python constructors.
        "nfsrods_security_context": s.nfsrods_security_context(),
        "nfsrods_host_if_enabled": s.nfsrods_host_if_enabled(),
    });
    to_py(py, &out)
}

/// Checks `request` against component `component` of the API schema, as the REST
/// server does; raises TychoException `invalid <component>: <problems>`.
#[pyfunction]
fn validate_request(py: Python<'_>, component: String, request: &Bound<'_, PyAny>) -> PyResult<()> {
    let body = from_py(request, "request")?;
    checked(&component, &body).map_err(|e| to_pyerr(py, e))
}

/// The check of [`validate_request`]: `invalid <component>: <problems>`.
pub(crate) fn checked(component: &str, body: &Value) -> crate::Result<()> {
    crate::model::schema::validate(component, body).map_err(|problems| {
        let all: Vec<String> = problems.iter().map(|p| p.describe()).collect();
        Error::input(format!("invalid {component}: {}", all.join("; ")))
    })
}

/// The registry's merge of app-defaults and mixins: `addition` merged into `base` (dicts
/// key by key; anything else replaced); returns the merged value.
#[pyfunction]
fn deep_merge<'py>(
    py: Python<'py>,
    base: &Bound<'py, PyAny>,
    addition: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let base = from_py(base, "base")?;
    let addition = from_py(addition, "addition")?;
    to_py(py, &crate::registry::grok::deep_merge(base, addition))
}

/// `{VAR: value}` from `VAR=value` lines (the CLI's rule; CRLF keeps its `\r`, as the
/// original).
#[pyfunction]
fn parse_env<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    to_py(py, &Value::Object(crate::text::dotenv::parse_env(text)))
}

/// The namespace rule: `explicit`, else NAMESPACE (when `variable`), else the pod's
/// service-account namespace; None when none of them names one.
#[pyfunction]
#[pyo3(signature = (explicit=None, *, variable=true))]
fn environment_namespace(explicit: Option<String>, variable: bool) -> Option<String> {
    let from_variable = if variable { var("NAMESPACE") } else { None };
    crate::text::names::namespace_from(explicit.as_deref(), from_variable)
}

/// The Python face's settings from the environment (`crate::environment::python`):
/// `{"tycho_url", "registry_cache_seconds", "on_minikube"}`.
#[pyfunction]
fn environment_python<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let env = crate::environment::python::PythonEnv::from_env();
    let out = PyDict::new(py);
    out.set_item("tycho_url", env.tycho_url)?;
    out.set_item("registry_cache_seconds", env.registry_cache_seconds)?;
    out.set_item("on_minikube", env.on_minikube)?;
    Ok(out)
}

/// `value` as plain dicts, lists and scalars (`tycho.tycho_utils.to_plain`; see
/// `crate::bindings::plain`); `what` names it in errors.
#[pyfunction]
#[pyo3(signature = (value, what="value"))]
fn to_plain<'py>(value: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyAny>> {
    super::plain::to_plain(value, what)
}
