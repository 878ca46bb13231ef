//! The process environment, read in one place.
//!
//! Every environment variable tycho honours is read by a function of this module tree,
//! into a typed struct per area ([`cli`], [`model`], [`kube`], [`server`], [`registry`],
//! [`docker`], [`resources`], [`templates`], and the access-token mode in [`access_token_env`]). Everything else takes those structs as arguments, so the rules that use
//! a setting are pure functions and can be tested without touching the process
//! environment. Nothing in tycho writes the environment (`std::env::set_var` is unsound
//! with other threads, and Python code can run beside us).
//!
//! A struct is read at the entry point of an operation (a compile, a start, a server
//! start), so a variable changed between two calls of the Python API takes effect on the
//! next call, as it did in the original.

use std::time::Duration;

pub mod cli;
pub mod docker;
pub mod kube;
pub mod model;
pub mod registry;
pub mod resources;
pub mod server;
pub mod templates;

/// The value of `name`, if set and valid UTF-8. The one place tycho reads the environment.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `TYCHO_ACCESS_TOKEN_ENV` when set and not blank: it overrides the configuration's
/// `tycho.compute.system.access_token_env` (`crate::config::access_token_env`).
pub fn access_token_env() -> Option<String> {
    var("TYCHO_ACCESS_TOKEN_ENV").filter(|s| !s.trim().is_empty())
}

/// `TYCHO_POD_SECURITY` when set and not blank: it overrides the configuration's
/// `tycho.policy.pod_security` (`crate::compile::policy::pod_security_level`).
pub fn pod_security() -> Option<String> {
    var("TYCHO_POD_SECURITY").filter(|s| !s.trim().is_empty())
}

/// The value of `name`, or `default` when it is unset.
pub fn var_or(name: &str, default: &str) -> String {
    var(name).unwrap_or_else(|| default.to_string())
}

/// A positive, finite number of seconds from `name`; `default` when unset or invalid.
pub fn seconds(name: &str, default: f64) -> Duration {
    seconds_from(var(name).as_deref(), default)
}

/// [`seconds`] of a variable's text: a positive, finite number of at most 10^9 s (about
/// 31 years; `Duration::from_secs_f64` panics beyond its range), else `default`.
fn seconds_from(text: Option<&str>, default: f64) -> Duration {
    let value = text
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= 1e9)
        .unwrap_or(default);
    Duration::from_secs_f64(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_falls_back_on_invalid_values() {
        assert_eq!(
            seconds("TYCHO_TEST_SURELY_UNSET_VARIABLE", 1.5),
            Duration::from_millis(1500)
        );
        for bad in ["1e30", "inf", "NaN", "-3", "0", "soon"] {
            assert_eq!(
                seconds_from(Some(bad), 2.0),
                Duration::from_secs(2),
                "{bad}"
            );
        }
        assert_eq!(
            seconds_from(Some(" 7.5 "), 2.0),
            Duration::from_millis(7500)
        );
    }
}
