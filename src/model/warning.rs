//! Warnings about compose input that is accepted but not (fully) turned into Kubernetes
//! fields: one per service and key, naming what happens instead.
//!
//! The builder collects them in [`Warnings`]; the entry points log them on the Python
//! logger `tycho.model` ([`log_all`]), the CLI prints them as `tycho: warning: ...`, and
//! in strict mode ([`Warnings::into_result`]) the first one is an error instead.

use crate::error::{Error, Result};
use serde::Serialize;

/// One warning: the service (empty for the compose document itself), the key (a dotted
/// path below the service, e.g. `deploy.replicas`) and what happens instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Warning {
    /// Compose service name; empty for a top-level key of the document or a setting.
    pub service: String,
    /// The key, dotted below the service (`restart`, `deploy.replicas`).
    pub key: String,
    /// What happens instead, e.g. `is ignored: Deployments always restart`.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = crate::limits::echo(&self.key);
        if self.service.is_empty() {
            write!(f, "compose document: '{key}' {}", self.message)
        } else {
            let service = crate::limits::echo(&self.service);
            write!(f, "service '{service}': '{key}' {}", self.message)
        }
    }
}

/// The warnings of one build, each (service, key, message) once, in the order found.
#[derive(Debug, Default)]
pub struct Warnings(Vec<Warning>);

impl Warnings {
    /// Adds a warning unless the same one is already there.
    pub fn push(&mut self, service: &str, key: &str, message: impl Into<String>) {
        let w = Warning {
            service: service.to_string(),
            key: key.to_string(),
            message: message.into(),
        };
        if !self.0.contains(&w) {
            self.0.push(w);
        }
    }

    /// The warnings found so far.
    pub fn as_slice(&self) -> &[Warning] {
        &self.0
    }

    /// The warnings, in the order found.
    pub fn into_vec(self) -> Vec<Warning> {
        self.0
    }
}

/// In strict mode (`--strict`, `tycho.compute.system.strict`), the first warning as an
/// input error; otherwise nothing.
pub fn check_strict(warnings: &[Warning], strict: bool) -> Result<()> {
    match warnings.first() {
        Some(first) if strict => Err(Error::input(format!("{first} (strict mode)"))),
        _ => Ok(()),
    }
}

/// Logs every warning at WARNING on `tycho.model` (the Python logger through pyo3-log).
pub fn log_all(warnings: &[Warning]) {
    for w in warnings {
        log::warn!(target: super::LOG_TARGET, "{w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_service_key_and_outcome() {
        let mut w = Warnings::default();
        w.push("web", "restart", "is ignored: Deployments always restart");
        w.push("web", "restart", "is ignored: Deployments always restart");
        w.push("", "networks", "is ignored: x");
        assert_eq!(w.as_slice().len(), 2);
        assert_eq!(
            w.as_slice()[0].to_string(),
            "service 'web': 'restart' is ignored: Deployments always restart"
        );
        assert_eq!(
            w.as_slice()[1].to_string(),
            "compose document: 'networks' is ignored: x"
        );
        let all = w.into_vec();
        assert!(check_strict(&all, false).is_ok());
        let err = check_strict(&all, true).unwrap_err();
        assert!(err.message.starts_with("service 'web': 'restart'"));
    }
}
