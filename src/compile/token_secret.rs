//! The principal's part of a container's environment and the per-system token Secret.
//!
//! Order (as HeLx appstore's vendored tycho writes it): after `USER` come `ACCESS_TOKEN`
//! and then the `extra_container_env` entries ([`ContainerEnv::head`]); after `HOST` the
//! principal's fields ([`ContainerEnv::principal`]), of which only strings, numbers and
//! booleans become variables (None, lists and mappings are left out).
//!
//! The tokens (`access_token`, `refresh_token` of the principal) are delivered as the
//! `access_token_env` setting says ([`AccessTokenEnv`]): by `valueFrom.secretKeyRef`
//! into a Secret created with the system (`secret`, the default), as literal values
//! (`literal`), or not at all (`off`). The Secret is the only object that carries them.

use crate::config::AccessTokenEnv;
use crate::model::System;
use crate::text::pyfmt::py_str;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// The principal's fields that are credentials (never literal in `secret` mode).
pub const TOKEN_FIELDS: [&str; 2] = ["access_token", "refresh_token"];
/// The variable every container gets the access token in.
pub const ACCESS_TOKEN_VAR: &str = "ACCESS_TOKEN";
/// The placeholder `tycho render` shows instead of a token.
pub const REDACTED: &str = "<redacted>";

/// One environment variable: a literal `value` or a reference into a Secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvEntry {
    /// Variable name.
    pub name: String,
    /// Literal value (None when read from a Secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `{"name": secret, "key": key}` for `valueFrom.secretKeyRef`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
}

/// A key of a Secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
    /// The key in its data.
    pub key: String,
}

/// The template context `container_env` of pod.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ContainerEnv {
    /// `ACCESS_TOKEN`, then the `extra_container_env` entries (right after `USER`).
    pub head: Vec<EnvEntry>,
    /// The principal's scalar fields (after `HOST`).
    pub principal: Vec<EnvEntry>,
}

/// Name of the system's token Secret: `<app>-<guid>-tokens`.
pub fn secret_name(system: &System) -> String {
    format!("{}-tokens", system.name)
}

fn token_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(_) => Some(py_str(v)),
        _ => None,
    }
}

/// The principal's tokens that have a value: `(field, value)`.
pub fn tokens(system: &System) -> Vec<(String, String)> {
    TOKEN_FIELDS
        .iter()
        .filter_map(|field| {
            system
                .system_env
                .get(*field)
                .and_then(token_text)
                .map(|t| (field.to_string(), t))
        })
        .collect()
}

fn literal(name: &str, value: String) -> EnvEntry {
    EnvEntry {
        name: name.to_string(),
        value: Some(value),
        secret: None,
    }
}

fn by_ref(name: &str, secret: &str, key: &str) -> EnvEntry {
    EnvEntry {
        name: name.to_string(),
        value: None,
        secret: Some(SecretRef {
            name: secret.to_string(),
            key: key.to_string(),
        }),
    }
}

/// The principal's variables of every container of `system` under `mode`.
pub fn container_env(system: &System, mode: AccessTokenEnv) -> ContainerEnv {
    container_env_of(&system.name, &system.system_env, &system.extra_env, mode)
}

/// [`container_env`] from the three parts of the system it reads: its `name` (which
/// names the token Secret), its principal (`system_env`) and its `extra_env` pairs.
pub fn container_env_of(
    name: &str,
    system_env: &Map<String, Value>,
    extra_env: &[Vec<String>],
    mode: AccessTokenEnv,
) -> ContainerEnv {
    let secret = format!("{name}-tokens");
    let mut head = Vec::new();
    if let Some(token) = system_env.get("access_token").and_then(token_text) {
        match mode {
            AccessTokenEnv::Secret => head.push(by_ref(ACCESS_TOKEN_VAR, &secret, "access_token")),
            AccessTokenEnv::Literal => head.push(literal(ACCESS_TOKEN_VAR, token)),
            AccessTokenEnv::Off => {}
        }
    }
    for pair in extra_env {
        head.push(literal(
            pair.first().map(String::as_str).unwrap_or_default(),
            pair.get(1).cloned().unwrap_or_default(),
        ));
    }
    let mut principal = Vec::new();
    for (key, value) in system_env {
        if matches!(value, Value::Null | Value::Array(_) | Value::Object(_)) {
            continue;
        }
        if TOKEN_FIELDS.contains(&key.as_str()) {
            match (mode, token_text(value)) {
                (AccessTokenEnv::Off, _) => continue,
                (AccessTokenEnv::Secret, Some(_)) => {
                    principal.push(by_ref(key, &secret, key));
                    continue;
                }
                _ => {}
            }
        }
        principal.push(literal(key, py_str(value)));
    }
    ContainerEnv { head, principal }
}

/// The system's token Secret (`secret` mode and a principal with a token), labelled
/// like the system's other objects and, given the Deployment's uid, owned by it.
pub fn secret_object(
    system: &System,
    mode: AccessTokenEnv,
    deployment_uid: Option<&str>,
) -> Option<Value> {
    if mode != AccessTokenEnv::Secret {
        return None;
    }
    let tokens = tokens(system);
    if tokens.is_empty() {
        return None;
    }
    let mut data = Map::new();
    for (key, value) in tokens {
        let encoded = serde_json::to_value(k8s_openapi::ByteString(value.into_bytes()))
            .unwrap_or(Value::Null);
        data.insert(key, encoded);
    }
    let name = secret_name(system);
    let mut metadata = json!({
        "name": name,
        "labels": {
            "username": crate::text::names::username_label(&system.username),
            "executor": "tycho",
            "tycho-app": system.name,
            "tycho-guid": system.identifier,
        },
    });
    if let Some(uid) = deployment_uid {
        metadata["ownerReferences"] = json!([{
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "controller": true,
            "name": system.name,
            "uid": uid,
        }]);
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": data,
    }))
}

/// The Secret with every value replaced by [`REDACTED`] (as `stringData`, so the
/// object stays valid), for display.
pub fn redacted(secret: &Value) -> Value {
    let mut out = secret.clone();
    if let Some(map) = out.as_object_mut() {
        let keys: Vec<String> = map
            .get("data")
            .and_then(Value::as_object)
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        map.shift_remove("data");
        let placeholder: Map<String, Value> = keys
            .into_iter()
            .map(|k| (k, Value::String(REDACTED.into())))
            .collect();
        map.insert("stringData".into(), Value::Object(placeholder));
    }
    out
}

/// The texts that must never appear in a log line or an error: each token, plain and
/// base64-encoded (as a Secret's data carries it). Very short tokens are left out
/// (replacing them would garble every message without protecting anything).
pub fn sensitive_texts(system: &System) -> Vec<String> {
    let mut out = Vec::new();
    for (_, token) in tokens(system) {
        if token.chars().count() < 4 {
            continue;
        }
        if let Ok(Value::String(b64)) =
            serde_json::to_value(k8s_openapi::ByteString(token.clone().into_bytes()))
        {
            out.push(b64);
        }
        out.push(token);
    }
    out
}

/// `text` with every occurrence of each of `secrets` replaced by [`REDACTED`].
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(principal: Value) -> System {
        let request = json!({
            "name": "app",
            "principal": principal.to_string(),
            "system": {"services": {"app": {"image": "busybox", "ports": ["80"]}}},
        });
        crate::compile::parse_system(
            crate::config::default_config(),
            &request,
            Some("0123456789abcdef0123456789abcdef".into()),
        )
        .expect("parses")
    }

    #[test]
    fn secret_mode_references_the_secret_and_drops_non_scalars() {
        let s = system(json!({"username": "jdoe", "access_token": "tok-123456",
            "refresh_token": null, "groups": ["a"], "extra_container_env": {"GRADER_API_URL": "http://g"}}));
        let env = container_env(&s, AccessTokenEnv::Secret);
        let secret = secret_name(&s);
        assert_eq!(env.head[0], by_ref("ACCESS_TOKEN", &secret, "access_token"));
        assert_eq!(env.head[1], literal("GRADER_API_URL", "http://g".into()));
        let names: Vec<&str> = env.principal.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["username", "access_token"]);
        assert!(env.principal[1].value.is_none());
        let obj = secret_object(&s, AccessTokenEnv::Secret, Some("uid-1")).expect("secret");
        assert_eq!(obj["data"]["access_token"], "dG9rLTEyMzQ1Ng==");
        assert_eq!(obj["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        let text = serde_json::to_string(&env).unwrap();
        assert!(!text.contains("tok-123456"));
    }

    #[test]
    fn literal_and_off_modes() {
        let s = system(json!({"username": "jdoe", "access_token": "tok-123456"}));
        let lit = container_env(&s, AccessTokenEnv::Literal);
        assert_eq!(lit.head[0].value.as_deref(), Some("tok-123456"));
        assert!(secret_object(&s, AccessTokenEnv::Literal, None).is_none());
        let off = container_env(&s, AccessTokenEnv::Off);
        assert!(off.head.is_empty());
        assert_eq!(off.principal.len(), 1);
        let none = system(json!({"username": "jdoe", "access_token": ""}));
        assert!(container_env(&none, AccessTokenEnv::Secret).head.is_empty());
        assert!(secret_object(&none, AccessTokenEnv::Secret, None).is_none());
    }

    #[test]
    fn redaction() {
        let s = system(json!({"username": "jdoe", "access_token": "tok-123456"}));
        let texts = sensitive_texts(&s);
        assert_eq!(
            redact("x tok-123456 dG9rLTEyMzQ1Ng== y", &texts),
            "x <redacted> <redacted> y"
        );
        let shown = redacted(&secret_object(&s, AccessTokenEnv::Secret, None).unwrap());
        assert_eq!(shown["stringData"]["access_token"], REDACTED);
        assert!(shown.get("data").is_none());
    }
}
