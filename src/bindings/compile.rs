//! Python bindings of the compiler (compile, parse, render, YAML, the CLI) and of the
//! model's rules, each written once in the core and called by both languages: the
//! volume and CIDR rules of the model constructors, the environment defaults
//! `tycho.model.System` reads, the request schema check of the REST server, the
//! registry's deep merge, `parse_env` and the namespace rule.

use crate::bindings::{config_value, from_py, run, to_py, to_pyerr};
use crate::compile::{self, CompileOptions};
use crate::environment::{var, var_or};
use crate::error::Error;
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
    m.add_function(wrap_pyfunction!(model_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(validate_request, m)?)?;
    m.add_function(wrap_pyfunction!(deep_merge, m)?)?;
    m.add_function(wrap_pyfunction!(parse_env, m)?)?;
    m.add_function(wrap_pyfunction!(environment_namespace, m)?)?;
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
        compile::compile(&config, &request, &options).map(|c| c.objects())
    })?;
    to_py(py, &Value::Array(objects))
}

/// Parses a start request into the system model (a dict with the original's attribute names).
/// With `source_text`, the dict also holds `source_text`: the model as YAML
/// (`System.source_text`).
#[pyfunction]
#[pyo3(signature = (request, identifier=None, config=None, source_text=false))]
fn parse_system<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    identifier: Option<String>,
    config: Option<&Bound<'py, PyAny>>,
    source_text: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let request = from_py(request, "request")?;
    let config = config_value(config)?;
    let system = run(py, || {
        let s = compile::parse_system(&config, &request, identifier)?;
        let mut value = serde_json::to_value(&s).map_err(|e| Error::input(e.to_string()))?;
        if source_text {
            let text = crate::yaml::dump_all(std::slice::from_ref(&value));
            if let Some(map) = value.as_object_mut() {
                map.insert("source_text".into(), Value::String(text));
            }
        }
        Ok(value)
    })?;
    to_py(py, &system)
}

/// The plain form of a `tycho.model` object graph, built in one native pass (what
/// `tycho.tycho_utils.to_plain` gives, without its Python recursion): objects whose
/// exact type is a key of `skip` become their public instance attributes less the
/// names in `skip[type]` (the model classes' `to_dict`); dicts with string keys, lists
/// and tuples are walked; anything else goes through `to_plain` (`fallback`).
struct ModelWalk<'a, 'py> {
    skip: &'a Bound<'py, PyDict>,
    fallback: &'a Bound<'py, PyAny>,
}

impl<'py> ModelWalk<'_, 'py> {
    fn generic(&self, obj: &Bound<'py, PyAny>) -> PyResult<Value> {
        from_py(&self.fallback.call1((obj,))?, "system")
    }

    fn walk(&self, obj: &Bound<'py, PyAny>, depth: usize) -> PyResult<Value> {
        use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
        if depth > crate::limits::MAX_DEPTH {
            // A cycle, or a very deep value: to_plain cuts cycles, from_py names depth.
            return self.generic(obj);
        }
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
            if let Some(n) = serde_json::Number::from_f64(f.value()) {
                return Ok(Value::Number(n));
            }
            return from_py(obj, "system"); // NaN, infinity: from_py names the field
        }
        if obj.is_instance_of::<PyInt>() {
            if let Ok(i) = obj.extract::<i64>() {
                return Ok(Value::from(i));
            }
            return from_py(obj, "system");
        }
        if let Ok(d) = obj.cast::<PyDict>() {
            let mut map = Map::new();
            for (k, v) in d.iter() {
                let Ok(k) = k.cast::<PyString>() else {
                    return self.generic(obj);
                };
                map.insert(k.to_cow()?.into_owned(), self.walk(&v, depth + 1)?);
            }
            return Ok(Value::Object(map));
        }
        if let Ok(l) = obj.cast::<PyList>() {
            return l.iter().map(|v| self.walk(&v, depth + 1)).collect();
        }
        if let Ok(t) = obj.cast::<PyTuple>() {
            return t.iter().map(|v| self.walk(&v, depth + 1)).collect();
        }
        if let Some(skip) = self.skip.get_item(obj.get_type())? {
            let attrs = obj.getattr(pyo3::intern!(obj.py(), "__dict__"))?;
            let Ok(attrs) = attrs.cast::<PyDict>() else {
                return self.generic(obj);
            };
            let mut map = Map::new();
            for (k, v) in attrs.iter() {
                let Ok(key) = k.cast::<PyString>() else {
                    continue;
                };
                let key = key.to_cow()?;
                if key.starts_with('_') || skip.contains(key.as_ref())? {
                    continue;
                }
                map.insert(key.into_owned(), self.walk(&v, depth + 1)?);
            }
            return Ok(Value::Object(map));
        }
        self.generic(obj)
    }
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

thread_local! {
    static LAST_SYSTEM: std::cell::RefCell<Option<LastSystem>> = const { std::cell::RefCell::new(None) };
}

/// Renders template `name` with `system` (a `tycho.model.System`, converted natively:
/// see [`ModelWalk`]) as `system` plus `context` (a dict, already plain).
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
    let walk = ModelWalk {
        skip,
        fallback: to_plain,
    };
    let system = walk.walk(system, 1)?;
    let context = from_py(context, "context")?;
    let config = config_value(config)?;
    let docs = run(py, || {
        let mode = crate::config::access_token_env(&config)?;
        let (converted, container_env) = LAST_SYSTEM.with(|last| -> crate::Result<_> {
            let mut last = last.borrow_mut();
            if let Some(l) = last
                .as_ref()
                .filter(|l| l.mode == mode && l.system == system)
            {
                return Ok((l.converted.clone(), l.container_env.clone()));
            }
            let mut parts = Map::new();
            parts.insert("system".into(), system.clone());
            let mut parts = Value::Object(parts);
            compile::add_container_env(&config, &mut parts)?;
            let env = parts
                .get("container_env")
                .map(|e| minijinja::Value::from(minijinja::value::Serde(e)))
                .unwrap_or_default();
            let converted = minijinja::Value::from(minijinja::value::Serde(&system));
            *last = Some(LastSystem {
                system,
                mode,
                converted: converted.clone(),
                container_env: env.clone(),
            });
            Ok((converted, env))
        })?;
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
        ctx.insert("system".into(), converted);
        if !container_env.is_undefined() && !ctx.contains_key("container_env") {
            ctx.insert("container_env".into(), container_env);
        }
        let paths = crate::config::template_paths(&config);
        crate::render::render(&paths, &name, minijinja::Value::from(ctx))
    })?;
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
    let docs = run(py, || crate::yaml::load_all(&text))?;
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
    run(py, || Ok(crate::yaml::dump_all(&list)))
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
    let pairs: &[(&str, &str, &str)] = &[
        ("dev_phase", "DEV_PHASE", "prod"),
        ("ambassador_id", "AMBASSADOR_ID", ""),
        (
            "enable_init_container",
            "TYCHO_APP_ENABLE_INIT_CONTAINER",
            "true",
        ),
        ("create_home_dirs", "CREATE_HOME_DIRS", "false"),
        ("stdnfs_pvc", "STDNFS_PVC", "stdnfs"),
        ("parent_dir", "PARENT_DIR", "home"),
        ("shared_dir", "SHARED_DIR", "shared"),
        (
            "init_image_repository",
            "TYCHO_APP_INIT_IMAGE_REPOSITORY",
            "busybox",
        ),
        ("init_image_tag", "TYCHO_APP_INIT_IMAGE_TAG", "latest"),
        ("init_cpus", "TYCHO_APP_INIT_CPUS", "250m"),
        ("init_memory", "TYCHO_APP_INIT_MEMORY", "250Mi"),
        (
            "gpu_resource_name",
            "TYCHO_APP_GPU_RESOURCE_NAME",
            "nvidia.com/gpu",
        ),
        ("nfsrods_host", "NFSRODS_HOST", ""),
        ("gitea_host", "GITEA_HOST", " "),
        ("gitea_user", "GITEA_USER", " "),
        ("gitea_service_name", "GITEA_SERVICE_NAME", " "),
        ("run_as_user", "TYCHO_APP_RUN_AS_USER", "0"),
        ("run_as_group", "TYCHO_APP_RUN_AS_GROUP", "0"),
        ("fs_group", "TYCHO_APP_FS_GROUP", "0"),
        ("init_run_as_user", "INIT_SC_RUN_AS_USER", "0"),
        ("init_run_as_group", "INIT_SC_RUN_AS_GROUP", "0"),
    ];
    let mut out = Map::new();
    for (key, name, default) in pairs {
        out.insert((*key).to_string(), Value::String(var_or(name, default)));
    }
    if let Some(Value::String(s)) = out.get_mut("create_home_dirs") {
        *s = s.to_lowercase();
    }
    out.insert("subpath_dir".into(), json!(var("SUBPATH_DIR")));
    out.insert("stdnfs_pvc_variable".into(), json!(var("STDNFS_PVC")));
    out.insert(
        "nfsrods_uid".into(),
        json!(var("NFSRODS_UID").filter(|s| !s.is_empty())),
    );
    out.insert("irods_enabled".into(), json!(var("IROD_HOST").is_some()));
    to_py(py, &Value::Object(out))
}

/// Checks `request` against component `component` of the API schema, as the REST
/// server does; raises TychoException `invalid <component>: <problems>`.
#[pyfunction]
fn validate_request(py: Python<'_>, component: String, request: &Bound<'_, PyAny>) -> PyResult<()> {
    let body = from_py(request, "request")?;
    match crate::request_schema::validate(&component, &body) {
        Ok(()) => Ok(()),
        Err(problems) => {
            let all: Vec<String> = problems.iter().map(|p| p.describe()).collect();
            Err(to_pyerr(
                py,
                Error::input(format!("invalid {component}: {}", all.join("; "))),
            ))
        }
    }
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
    to_py(py, &Value::Object(crate::cli::parse_env(text)))
}

/// The namespace rule: `explicit`, else NAMESPACE (when `variable`), else the pod's
/// service-account namespace; None when none of them names one.
#[pyfunction]
#[pyo3(signature = (explicit=None, *, variable=true))]
fn environment_namespace(explicit: Option<String>, variable: bool) -> Option<String> {
    let from_variable = if variable { var("NAMESPACE") } else { None };
    crate::names::namespace_from(explicit.as_deref(), from_variable)
}
