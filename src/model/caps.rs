//! The caps on the size of a system ([`ModelCaps`]: services per compose document,
//! ports per service), checked on the compose document before anything is built from
//! it, so a request over a cap costs no more than reading it. The Python API, the
//! command line (exit 1) and `tycho api` (HTTP 400, before a start is taken on) refuse
//! with the same message, naming the cap and its variable.

use super::ModelCaps;
use crate::error::{Error, Result};
use serde_json::Value;

/// Refuses a compose document with more services than `caps.services`, or a service
/// with more `ports` and `expose` entries than `caps.ports`. A document of another
/// shape passes: the builder names what is wrong with it.
pub fn check(compose: &Value, caps: &ModelCaps) -> Result<()> {
    let Some(services) = compose.get("services").and_then(Value::as_object) else {
        return Ok(());
    };
    if services.len() > caps.services {
        return Err(Error::input(format!(
            "the compose document defines {} services, more than the {} allowed (TYCHO_MAX_SERVICES)",
            services.len(),
            caps.services
        ))
        .at("system.services"));
    }
    for (name, spec) in services {
        let count = |field: &str| {
            spec.get(field)
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        };
        let ports = count("ports") + count("expose");
        if ports > caps.ports {
            let field = if count("ports") > caps.ports {
                "ports"
            } else {
                "expose"
            };
            return Err(Error::input(format!(
                "service '{}': {ports} ports (ports and expose), more than the {} allowed (TYCHO_MAX_PORTS)",
                crate::limits::echo(name),
                caps.ports
            ))
            .at(format!("system.services.{name}.{field}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn services_and_ports_over_the_caps_are_named() {
        let caps = ModelCaps {
            services: 2,
            ports: 3,
        };
        let ok = json!({"services": {"a": {"ports": ["1", "2"], "expose": [3]}, "b": {}}});
        assert!(check(&ok, &caps).is_ok());
        let e = check(&json!({"services": {"a": {}, "b": {}, "c": {}}}), &caps).unwrap_err();
        assert!(
            e.message
                .contains("3 services, more than the 2 allowed (TYCHO_MAX_SERVICES)"),
            "{e}"
        );
        assert_eq!(e.field.as_deref(), Some("system.services"));
        let e = check(
            &json!({"services": {"a": {"ports": [1, 2], "expose": [3, 4]}}}),
            &caps,
        )
        .unwrap_err();
        assert!(e.message.contains("service 'a': 4 ports (ports and expose), more than the 3 allowed (TYCHO_MAX_PORTS)"), "{e}");
        assert_eq!(e.field.as_deref(), Some("system.services.a.expose"));
        let e = check(&json!({"services": {"a": {"ports": [1, 2, 3, 4]}}}), &caps).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("system.services.a.ports"));
        // Other shapes are the builder's to refuse.
        assert!(check(&json!({"services": []}), &caps).is_ok());
        assert!(check(&json!([]), &caps).is_ok());
    }
}
