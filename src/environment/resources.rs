//! Default resource limits of containers whose compose service sets none, as the
//! environment gives them (`crate::exec::default_limits` combines them with the configuration's
//! `tycho.compute.system.default_limits.*`; the variable wins when it is set and not blank).
//!
//! | variable | configuration key |
//! | --- | --- |
//! | `TYCHO_APP_DEFAULT_CPUS` | `tycho.compute.system.default_limits.cpus` |
//! | `TYCHO_APP_DEFAULT_MEMORY` | `tycho.compute.system.default_limits.memory` |
//! | `TYCHO_APP_DEFAULT_PIDS` | `tycho.compute.system.default_limits.pids` |

/// The default limits of the environment, as read (trimmed; None when unset or blank).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultLimitsEnv {
    /// `TYCHO_APP_DEFAULT_CPUS`.
    pub cpus: Option<String>,
    /// `TYCHO_APP_DEFAULT_MEMORY`.
    pub memory: Option<String>,
    /// `TYCHO_APP_DEFAULT_PIDS`.
    pub pids: Option<String>,
}

fn set(name: &str) -> Option<String> {
    super::var(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl DefaultLimitsEnv {
    /// The default limits from the environment.
    pub fn from_env() -> DefaultLimitsEnv {
        DefaultLimitsEnv {
            cpus: set("TYCHO_APP_DEFAULT_CPUS"),
            memory: set("TYCHO_APP_DEFAULT_MEMORY"),
            pids: set("TYCHO_APP_DEFAULT_PIDS"),
        }
    }
}
