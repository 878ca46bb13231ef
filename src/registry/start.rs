//! The start request of a registry app: the one builder behind `TychoContext.start`
//! (`tycho._native.registry_start_request`) and `tycho up/render --registry`.
//!
//! From the compiled app, its rendered spec and the text of the `.env` beside it, the
//! request appstore sends: the settings (the `.env` plus the app's registry `env`), the
//! app's `services` (port as text, no clients), `serviceAccount`, `securityContext`,
//! `ext`, `conn_string`, `proxy-rewrite` (`proxy-rewrite-rule` enables it) and
//! `gitea-integration`, the resource request (made literal, the spec's
//! `ephemeralStorage` kept), the context's and app's `placement` and `gpu_resource`
//! ([`super::placement`]), the principal as JSON text (as Python's
//! `json.dumps(indent=4)` writes it) and the registry's `count`.

use super::model::{context_error, settings as registry_settings};
use super::placement;
use crate::error::Result;
use crate::text::pyfmt::truthy;
use serde_json::{json, Map, Value};

/// Which app of which compiled registry is started.
#[derive(Debug, Clone, Copy)]
pub struct StartApp<'a> {
    /// The registry document (`app-registry.yaml`).
    pub registry: &'a Value,
    /// The registry context (product).
    pub product: &'a str,
    /// The app id.
    pub app_id: &'a str,
    /// The compiled app (`TychoContext.apps[app_id]`).
    pub app: &'a Map<String, Value>,
}

/// Who starts it: the principal of the request.
#[derive(Debug, Clone, Default)]
pub struct StartPrincipal {
    /// The user name.
    pub username: Value,
    /// The OAuth access token (null for none).
    pub access_token: Value,
    /// The OAuth refresh token (null for none).
    pub refresh_token: Value,
    /// The host name appstore was reached by.
    pub host: Value,
    /// Extra environment variables for every container: in the principal only when
    /// given (not empty), so the request is the original's otherwise.
    pub extra_container_env: Value,
}

/// The field of the error of a spec without the app's service (`tycho.context` raises
/// it as the KeyError the original raised).
pub const NO_SERVICE_FIELD: &str = "spec.services";

impl StartApp<'_> {
    /// The app's spec URL (`spec` of the compiled app).
    pub fn spec_url(&self) -> &str {
        self.app
            .get("spec")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The URL of the `.env` beside the app's spec.
    pub fn settings_url(&self) -> String {
        super::spec::settings_url(self.spec_url())
    }

    /// The spec `text` (fetched from the app's spec URL) rendered with the registry's
    /// `settings`.
    pub fn render_spec(&self, text: &str) -> Result<Value> {
        super::spec::render_spec(
            self.app_id,
            self.spec_url(),
            text,
            &registry_settings(self.registry),
        )
    }
}

/// The Python type name of a JSON value (for messages that name what was given).
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// The registry's `services` of the app: `{name: {"port": str(port), "clients": []}}`.
fn services(app: &Map<String, Value>) -> Map<String, Value> {
    let Some(Value::Object(s)) = app.get("services") else {
        return Map::new();
    };
    s.iter()
        .map(|(k, v)| {
            let port = crate::text::pyfmt::py_str(v);
            (k.clone(), json!({"port": port, "clients": []}))
        })
        .collect()
}

/// The principal as the JSON text of the request.
fn principal_text(principal: &StartPrincipal) -> String {
    let mut out = Map::new();
    out.insert("username".into(), principal.username.clone());
    out.insert("access_token".into(), principal.access_token.clone());
    out.insert("refresh_token".into(), principal.refresh_token.clone());
    out.insert("host".into(), principal.host.clone());
    if truthy(&principal.extra_container_env) {
        out.insert(
            "extra_container_env".into(),
            principal.extra_container_env.clone(),
        );
    }
    crate::text::pyfmt::json_dumps(&Value::Object(out), Some(4))
}

/// The resource request made literal (its values are data in the compose templating
/// pass), with the spec's own `ephemeralStorage` (limits and reservations) kept: the
/// UI does not set it.
fn resource_request(request: Option<Value>, service: &Map<String, Value>) -> Result<Value> {
    let mut request = match request {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => crate::render::literal_value(v),
        Some(other) => {
            return Err(context_error(format!(
                "resource_request must be a mapping, got {}",
                py_type(&other)
            ))
            .at("resource_request"))
        }
    };
    let spec_resources = service
        .get("deploy")
        .and_then(|d| d.get("resources"))
        .and_then(Value::as_object);
    for kind in ["limits", "reservations"] {
        let Some(storage) = spec_resources
            .and_then(|r| r.get(kind))
            .and_then(|a| a.get("ephemeralStorage"))
        else {
            continue;
        };
        let resources = request
            .as_object_mut()
            .map(|r| r.entry("deploy").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
            .map(|d| d.entry("resources").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut);
        if let Some(resources) = resources {
            let amounts = resources.entry(kind).or_insert_with(|| json!({}));
            if let Value::Object(amounts) = amounts {
                amounts.insert("ephemeralStorage".into(), storage.clone());
            }
        }
    }
    Ok(request)
}

/// The start request of `which`: `spec` is its rendered spec ([`StartApp::render_spec`]),
/// `settings` the text of the `.env` beside it ("" for none), `resources` the
/// resource request (`{"deploy": {"resources": {...}}}`; None: the spec's own).
// Long because: the request appstore sends, built field by field in the original's order.
pub fn start_request(
    which: &StartApp<'_>,
    mut spec: Value,
    settings: &str,
    resources: Option<Value>,
    principal: &StartPrincipal,
) -> Result<Value> {
    let app = which.app;
    let app_id = which.app_id;
    let mut env = crate::text::dotenv::parse_env(settings);
    if let Some(Value::Object(extra)) = app.get("env") {
        for (k, v) in extra {
            env.insert(k.clone(), v.clone());
        }
    }
    let Some(Value::Object(service)) = spec
        .get_mut("services")
        .and_then(|s| s.get_mut(app_id))
        .filter(|s| s.is_object())
    else {
        return Err(context_error(format!(
            "app {app_id}: its spec {} has no service named {app_id}",
            which.spec_url()
        ))
        .at(NO_SERVICE_FIELD));
    };
    // The spec's own deploy (placement, GPU devices): the resource request replaces it.
    let spec_deploy = service.get("deploy").cloned();
    service.insert("ext".into(), app.get("ext").cloned().unwrap_or(Value::Null));
    let request_resources = resource_request(resources, service)?;
    if let Value::Object(request_resources) = request_resources {
        for (k, v) in request_resources {
            service.insert(k, v);
        }
    }
    service.insert(
        "conn_string".into(),
        app.get("conn_string").cloned().unwrap_or_else(|| json!("")),
    );
    let mut proxy_rewrite = app
        .get("proxy-rewrite")
        .cloned()
        .unwrap_or_else(|| json!({"enabled": false, "target": null}));
    if app.get("proxy-rewrite-rule").is_some_and(truthy) {
        if let Value::Object(p) = &mut proxy_rewrite {
            p.insert("enabled".into(), json!(true));
        }
    }
    service.insert("proxy_rewrite".into(), proxy_rewrite);
    service.insert(
        "gitea_integration".into(),
        app.get("gitea-integration")
            .cloned()
            .unwrap_or(json!(false)),
    );
    // The app's activity probe (culling; not the original's): onto the Deployment.
    if let Some(activity) = app.get("activity").filter(|v| !v.is_null()) {
        service.insert("activity".into(), activity.clone());
    }
    if let Value::Object(spec) = &mut spec {
        spec.insert(
            "security_context".into(),
            app.get("securityContext")
                .cloned()
                .unwrap_or_else(|| json!({})),
        );
    }
    let fields = placement::start_fields(
        which.registry,
        which.product,
        app_id,
        &Value::Object(app.clone()),
    )?;
    placement::finish_spec(&mut spec, app_id, spec_deploy.as_ref(), &fields);
    let mut request = json!({
        "name": app_id,
        "serviceaccount": app.get("serviceAccount").cloned().unwrap_or(Value::Null),
        "env": env,
        "system": spec,
        "principal": principal_text(principal),
        "services": services(app),
    });
    if let Some(count) = app.get("count").filter(|c| c.as_u64().is_some()) {
        // The registry's limit, for tycho.policy.enforce_count (not in the original's request).
        request["count"] = count.clone();
    }
    Ok(request)
}

/// The resource request `tycho up/render --registry` sends: the spec's own
/// `deploy.resources` (what appstore sends when the user keeps the defaults); None when
/// the spec has none.
pub fn default_resources(which: &StartApp<'_>, spec: &Value) -> Option<Value> {
    let resources = spec
        .get("services")?
        .get(which.app_id)?
        .get("deploy")?
        .get("resources")?;
    Some(json!({"deploy": {"resources": resources}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> Map<String, Value> {
        json!({
            "spec": "http://r/app/docker-compose.yaml",
            "services": {"app": 8888},
            "env": {"B": "2"},
            "proxy-rewrite-rule": true,
            "count": 2,
            "securityContext": {"fsGroup": 0},
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn the_request_is_the_one_appstore_sends() {
        let registry = json!({"common": {"apps": {}}});
        let app = app();
        let which = StartApp {
            registry: &registry,
            product: "common",
            app_id: "app",
            app: &app,
        };
        let spec = json!({"services": {"app": {"image": "i", "deploy": {"resources": {
            "limits": {"cpus": "1", "ephemeralStorage": "3G"}}}}}});
        let principal = StartPrincipal {
            username: json!("jdoe"),
            host: json!("h"),
            ..Default::default()
        };
        let resources = json!({"deploy": {"resources": {"limits": {"cpus": "{{ x }}"}}}});
        let request =
            start_request(&which, spec, "A=1\r\nB=1\n", Some(resources), &principal).unwrap();
        assert_eq!(request["env"], json!({"A": "1\r", "B": "2"}));
        assert_eq!(
            request["services"],
            json!({"app": {"port": "8888", "clients": []}})
        );
        assert_eq!(request["count"], json!(2));
        let service = &request["system"]["services"]["app"];
        assert_eq!(
            service["deploy"]["resources"]["limits"]["ephemeralStorage"],
            "3G"
        );
        assert_ne!(service["deploy"]["resources"]["limits"]["cpus"], "{{ x }}");
        assert_eq!(
            service["proxy_rewrite"],
            json!({"enabled": true, "target": null})
        );
        assert_eq!(request["system"]["security_context"], json!({"fsGroup": 0}));
        let text = request["principal"].as_str().unwrap();
        assert!(text.starts_with("{\n    \"username\": \"jdoe\""), "{text}");
        assert!(!text.contains("extra_container_env"));
    }

    #[test]
    fn a_spec_without_the_service_names_it() {
        let registry = json!({});
        let app = app();
        let which = StartApp {
            registry: &registry,
            product: "common",
            app_id: "app",
            app: &app,
        };
        let e = start_request(
            &which,
            json!({"services": {}}),
            "",
            None,
            &StartPrincipal::default(),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some(NO_SERVICE_FIELD));
        assert!(e.message.contains("no service named app"), "{}", e.message);
    }
}
