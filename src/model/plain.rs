//! A [`System`] back from its plain form (`tycho.model.System.to_dict()`, or the output of
//! `parse_system`), for the executors and the compile of a system built elsewhere.

use super::System;
use crate::error::{Error, Result};
use serde_json::{json, Map, Value};

/// Rebuilds a [`System`] from its plain form (`tycho.model.System.to_dict()`, or the
/// output of `parse_system`). A hand-built `tycho.model.System` may lack probe,
/// identity, command and limits attributes; they default to none.
pub fn system_from_value(value: &Value) -> Result<System> {
    let mut value = value.clone();
    let fill = |map: &mut Map<String, Value>, keys: &[&str], empty: Value| {
        for key in keys {
            if map.get(*key).is_none_or(Value::is_null) {
                map.insert(key.to_string(), empty.clone());
            }
        }
    };
    if let Some(map) = value.as_object_mut() {
        fill(map, &["volumes", "extra_env"], json!([]));
        fill(
            map,
            &[
                "system_env",
                "annotations",
                "security_context",
                "init_security_context",
                "services",
            ],
            json!({}),
        );
    }
    if let Some(Value::Array(containers)) = value.get_mut("containers") {
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            fill(c, &["volumes", "ports", "expose", "env"], json!([]));
            for key in [
                "liveness_probe",
                "readiness_probe",
                "identity",
                "depends_on",
                "command",
            ] {
                c.entry(key).or_insert(Value::Null);
            }
            for key in ["limits", "requests"] {
                if c.get(key).is_none_or(Value::is_null) {
                    c.insert(
                        key.into(),
                        json!({"cpus": null, "gpus": null, "memory": null, "ephemeralStorage": null}),
                    );
                }
            }
        }
    }
    serde_json::from_value(value).map_err(|e| {
        Error::input(format!(
            "the system to start is not a valid tycho system model: {e}"
        ))
    })
}
