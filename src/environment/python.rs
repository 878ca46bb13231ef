//! Settings of the Python face (`tycho.context`, `tycho.config`) that come from the
//! environment, read here and handed to Python by `tycho._native.environment_python`.
//!
//! | variable | what |
//! | --- | --- |
//! | `TYCHO_URL` | the Tycho API a `TychoContext`'s client talks to (default `http://localhost:5000`) |
//! | `TYCHO_REGISTRY_CACHE_SECONDS` | seconds before a cached registry file is revalidated (default 60; not a number: 60) |
//! | `TYCHO_ON_MINIKUBE` | set: `tycho.config.Config` asks `minikube ip` for the cluster's address |
//! | `REST_API` | `true`: `TychoClient` posts to the REST API instead of calling in process (read at each request, as the original did: [`rest_api`]) |

/// Whether `REST_API` is `true` (exactly, as the original compared): `TychoClient`
/// (`crate::bindings::client`) then posts each request to the Tycho REST API. Read at
/// each request, so a change between two requests takes effect.
pub fn rest_api() -> bool {
    super::var("REST_API").as_deref() == Some("true")
}

/// `TYCHO_URL` when unset.
pub const DEFAULT_TYCHO_URL: &str = "http://localhost:5000";

/// `TYCHO_REGISTRY_CACHE_SECONDS` when unset or not a number.
pub const DEFAULT_REGISTRY_CACHE_SECONDS: f64 = 60.0;

/// The Python face's environment, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonEnv {
    /// `TYCHO_URL`.
    pub tycho_url: String,
    /// `TYCHO_REGISTRY_CACHE_SECONDS`.
    pub registry_cache_seconds: f64,
    /// `TYCHO_ON_MINIKUBE` is set (to anything).
    pub on_minikube: bool,
}

impl PythonEnv {
    /// The settings from the environment.
    pub fn from_env() -> PythonEnv {
        Self::from_lookup(super::var)
    }

    /// The settings from `lookup` (the environment's values by name).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> PythonEnv {
        PythonEnv {
            tycho_url: lookup("TYCHO_URL").unwrap_or_else(|| DEFAULT_TYCHO_URL.to_string()),
            // Python's float(): surrounding whitespace allowed, "inf" and "nan" too.
            registry_cache_seconds: lookup("TYCHO_REGISTRY_CACHE_SECONDS")
                .and_then(|v| python_float(v.trim()))
                .unwrap_or(DEFAULT_REGISTRY_CACHE_SECONDS),
            on_minikube: lookup("TYCHO_ON_MINIKUBE").is_some(),
        }
    }
}

/// Python's `float(text)` of a stripped text (digits with `_` between them,
/// `inf`/`infinity`/`nan` in any case); None where it raises ValueError.
fn python_float(text: &str) -> Option<f64> {
    let lower = text.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "inf" | "infinity" | "nan") {
        return lower.parse::<f64>().ok();
    }
    let bytes = text.as_bytes();
    let underscores_ok = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'_'
            || (i > 0
                && i + 1 < bytes.len()
                && bytes[i - 1].is_ascii_digit()
                && bytes[i + 1].is_ascii_digit())
    });
    if !underscores_ok || unsigned.is_empty() {
        return None;
    }
    text.replace('_', "").parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> PythonEnv {
        PythonEnv::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_and_values() {
        let unset = read(&[]);
        assert_eq!(unset.tycho_url, DEFAULT_TYCHO_URL);
        assert_eq!(unset.registry_cache_seconds, 60.0);
        assert!(!unset.on_minikube);
        let set = read(&[
            ("TYCHO_URL", "http://api:8099"),
            ("TYCHO_REGISTRY_CACHE_SECONDS", " 1_5.5 "),
            ("TYCHO_ON_MINIKUBE", ""),
        ]);
        assert_eq!(set.tycho_url, "http://api:8099");
        assert_eq!(set.registry_cache_seconds, 15.5);
        assert!(set.on_minikube);
        for bad in ["", "x", "1__0", "_1", "1_"] {
            assert_eq!(
                read(&[("TYCHO_REGISTRY_CACHE_SECONDS", bad)]).registry_cache_seconds,
                60.0,
                "{bad}"
            );
        }
        assert!(read(&[("TYCHO_REGISTRY_CACHE_SECONDS", "inf")])
            .registry_cache_seconds
            .is_infinite());
    }
}
