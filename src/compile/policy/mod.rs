//! The policy layer: what a system may be, checked on its compiled objects before
//! anything is created, on every path (the Python API, `tycho up/render`, the REST
//! server) and both backplanes.
//!
//! Settings (`tycho.policy` in the configuration):
//! - `pod_security: privileged | baseline | restricted` — the Kubernetes Pod Security
//!   Standards level the pod must meet ([`pod_security`]); default `baseline`;
//!   `TYCHO_POD_SECURITY` overrides it, `tycho render --pod-security` too;
//! - `max: {cpus, memory, gpus, ephemeralStorage}` — ceilings per system ([`ceilings`]);
//! - `enforce_count: true` — the registry's per-app `count` limits a user's running
//!   instances ([`enforce_count`]; checked by the Kubernetes executor, `crate::exec::kube`).
//!
//! A refusal is an error of kind [`crate::error::ErrorKind::Policy`] (`StartException`
//! in Python, HTTP 400 from `tycho api`, exit code 1 from the CLI).

pub mod ceilings;
pub mod pod_security;

use crate::error::{Error, Result};
pub use pod_security::Level;
use serde_json::Value;

/// The configuration key of the pod security level.
pub const POD_SECURITY_SETTING: &str = "tycho.policy.pod_security";

/// The pod security level in force: `TYCHO_POD_SECURITY` when set, else
/// `tycho.policy.pod_security`, else `baseline`.
pub fn pod_security_level(config: &Value) -> Result<Level> {
    level_with(config, crate::environment::pod_security())
}

/// [`pod_security_level`] with `TYCHO_POD_SECURITY`'s value given.
pub fn level_with(config: &Value, from_env: Option<String>) -> Result<Level> {
    let (raw, source) = match from_env {
        Some(v) => (v, "TYCHO_POD_SECURITY"),
        None => match crate::config::lookup(config, &["tycho", "policy", "pod_security"]) {
            None | Some(Value::Null) => return Ok(Level::Baseline),
            Some(Value::String(s)) => (s.clone(), POD_SECURITY_SETTING),
            Some(other) => (other.to_string(), POD_SECURITY_SETTING),
        },
    };
    Level::parse(&raw).ok_or_else(|| {
        Error::config(format!(
            "{source} must be one of privileged, baseline, restricted (got {})",
            crate::limits::echo(&format!("{raw:?}"))
        ))
    })
}

/// The configuration with the pod security level set to `level` (what
/// `tycho render --pod-security LEVEL` compiles with).
pub fn with_level(config: &Value, level: Level) -> Value {
    let mut config = config.clone();
    if !config.is_object() {
        config = Value::Object(Default::default());
    }
    let tycho = entry(&mut config, "tycho");
    let policy = entry(tycho, "policy");
    policy["pod_security"] = Value::String(level.as_str().into());
    config
}

fn entry<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    let map = v.as_object_mut().expect("a mapping");
    let slot = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Default::default()));
    if !slot.is_object() {
        *slot = Value::Object(Default::default());
    }
    slot
}

/// `tycho.policy.enforce_count`: the registry's per-app `count` limits a user's running
/// instances of the app (off by default, as the original does not enforce it). True for
/// `true` or the strings "true"/"yes"/"1".
pub fn enforce_count(config: &Value) -> bool {
    match crate::config::lookup(config, &["tycho", "policy", "enforce_count"]) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1"),
        _ => false,
    }
}

/// Checks a rendered Deployment (or Pod) against the policy of `config`: the pod
/// security level, then the resource ceilings.
pub fn check(config: &Value, object: &Value) -> Result<()> {
    let Some((pod, annotations)) = pod_security::pod_of(object) else {
        return Ok(());
    };
    pod_security::check(pod_security_level(config)?, pod, annotations)?;
    if let Some(max) = crate::config::lookup(config, &["tycho", "policy", "max"]) {
        ceilings::check(max, pod)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_level_comes_from_the_environment_then_the_config_then_baseline() {
        let config = json!({"tycho": {"policy": {"pod_security": "restricted"}}});
        assert_eq!(level_with(&json!({}), None).unwrap(), Level::Baseline);
        assert_eq!(level_with(&config, None).unwrap(), Level::Restricted);
        assert_eq!(
            level_with(&config, Some("privileged".into())).unwrap(),
            Level::Privileged
        );
        let e =
            level_with(&json!({"tycho": {"policy": {"pod_security": "lax"}}}), None).unwrap_err();
        assert_eq!(
            e.message,
            "tycho.policy.pod_security must be one of privileged, baseline, restricted (got \"lax\")"
        );
        assert_eq!(
            level_with(&with_level(&json!({}), Level::Privileged), None).unwrap(),
            Level::Privileged
        );
    }

    #[test]
    fn a_deployment_is_checked_through_its_pod_template() {
        let deployment = json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "x", "securityContext": {"privileged": true}}]}}}});
        let e = check(&json!({}), &deployment).unwrap_err();
        assert!(e.message.contains("Privileged Containers"), "{}", e.message);
        assert!(check(&with_level(&json!({}), Level::Privileged), &deployment).is_ok());
    }
}
