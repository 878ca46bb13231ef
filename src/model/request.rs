//! The start request (`POST /system/start` body, `TychoContext.start`'s request): read
//! and checked field by field before anything is built from it.

use super::{truthy, LOG_TARGET};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// A start request (`POST /system/start` body).
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// App name.
    pub name: String,
    /// Principal (parsed from its JSON string).
    pub principal: Map<String, Value>,
    /// Service account (null when not given explicitly as a string).
    pub serviceaccount: Value,
    /// Settings (`.env`), or None when the request sets it to null.
    pub env: Option<Map<String, Value>>,
    /// The compose document.
    pub system: Value,
    /// Services: container name → {port, clients}.
    pub services: Map<String, Value>,
    /// The registry's `count` of the app: how many instances a user may run, enforced
    /// under `tycho.policy.enforce_count` (not in the original's requests).
    pub count: Option<u64>,
}

impl StartRequest {
    /// Reads a request object, naming the field at fault on error (its parts copied:
    /// [`Self::from_value`] takes them over instead).
    pub fn from_json(request: &Value) -> Result<Self> {
        if !request.is_object() {
            return Err(Error::input("start request must be a JSON object"));
        }
        Self::from_value(request.clone())
    }

    /// Reads a request object, taking its parts over (no copy of the compose document
    /// or the settings), naming the field at fault on error.
    // Long because: one case per field of a start request, each naming the field at fault.
    pub fn from_value(request: Value) -> Result<Self> {
        let Value::Object(mut obj) = request else {
            return Err(Error::input("start request must be a JSON object"));
        };
        let name = match obj.shift_remove("name") {
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'name' must be a string, got {other}"
                )))
            }
            None => return Err(Error::input("request field 'name' is required")),
        };
        let principal = match obj.shift_remove("principal") {
            Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(Error::input(
                        "request field 'principal' must be a JSON object encoded as a string",
                    )
                    .at("principal"))
                }
                Err(e) => {
                    return Err(Error::input(format!(
                        "request field 'principal' is not valid JSON: {e}"
                    ))
                    .at("principal"))
                }
            },
            Some(Value::Object(m)) => m,
            Some(Value::Null) | None => return Err(Error::input(
                "request field 'principal' is required (a JSON string with at least a username)",
            )
            .at("principal")),
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'principal' must be a JSON string, got {other}"
                ))
                .at("principal"))
            }
        };
        let serviceaccount = match obj.shift_remove("serviceaccount") {
            None => Value::String("default".into()),
            Some(v @ (Value::String(_) | Value::Null)) => v,
            // The original's template tests the value's truth: a false one means none.
            Some(v) if !truthy(&v) => {
                log::warn!(target: LOG_TARGET, "request field 'serviceaccount' is {v}, not a string: no service account is used");
                Value::Null
            }
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'serviceaccount' must be a string, got {other}"
                )))
            }
        };
        let env = match obj.shift_remove("env") {
            None => Some(Map::new()),
            Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'env' must be an object of settings, got {other}"
                )))
            }
        };
        let system = match obj.shift_remove("system") {
            Some(v @ Value::Object(_)) => v,
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'system' must be a compose document (object), got {other}"
                )))
            }
            None => {
                return Err(Error::input(
                    "request field 'system' (the compose document) is required",
                ))
            }
        };
        let services = match obj.shift_remove("services") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'services' must be an object, got {other}"
                )))
            }
        };
        let count = match obj.get("count") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(other) => {
                return Err(Error::input(format!(
                    "request field 'count' must be a whole number of instances, got {}",
                    crate::limits::echo(&other.to_string())
                ))
                .at("count"))
            }
        };
        Ok(StartRequest {
            name,
            principal,
            serviceaccount,
            env,
            system,
            services,
            count,
        })
    }
}

/// A modify request of the API (`tycho-guid`, `labels`, `cpu`, `memory`) in the
/// executor's form (`guid`, `labels`, `resources`, `patch`): `ModifySystem.parse_modify`
/// calls this rule (`tycho._native.modify_model`). A null or absent `cpu`/`memory` is
/// left out of `resources`, null or absent `labels` are `{}`; `patch` says whether
/// anything is to change (resources, or labels that are not empty).
pub fn modify_request(request: &Value) -> Value {
    let mut resources = Map::new();
    for key in ["cpu", "memory"] {
        if let Some(v) = request.get(key).filter(|v| !v.is_null()) {
            resources.insert(key.into(), v.clone());
        }
    }
    let labels = request
        .get("labels")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    let some_labels = match &labels {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    };
    serde_json::json!({
        "guid": request.get("tycho-guid").cloned().unwrap_or(Value::Null),
        "labels": labels,
        "resources": resources,
        "patch": some_labels || !resources.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_modify_request_in_the_executors_form() {
        let full = modify_request(&json!({
            "tycho-guid": "g1", "labels": {"name": "x"}, "cpu": "1", "memory": "2G"
        }));
        assert_eq!(
            full,
            json!({"guid": "g1", "labels": {"name": "x"},
                   "resources": {"cpu": "1", "memory": "2G"}, "patch": true})
        );
        let nothing = modify_request(&json!({"tycho-guid": "g1", "labels": null, "cpu": null}));
        assert_eq!(
            nothing,
            json!({"guid": "g1", "labels": {}, "resources": {}, "patch": false})
        );
        let cpu_only = modify_request(&json!({"cpu": 2}));
        assert_eq!(cpu_only["guid"], Value::Null);
        assert_eq!(cpu_only["resources"], json!({"cpu": 2}));
        assert_eq!(cpu_only["patch"], json!(true));
    }
}
