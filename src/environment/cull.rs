//! Settings of stop, resume, touch and culling (`crate::exec::cull`).
//!
//! | variable | flag | what |
//! | --- | --- | --- |
//! | `TYCHO_NOW` | `--now` (hidden) | the time culling and touch take as now (RFC 3339; tests) |
//! | `TYCHO_ACTIVITY_HOST` | `--activity-host` | the host activity probes reach instead of the system's Service |

/// The culling variables, as set (None: unset or blank).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CullEnv {
    /// `TYCHO_NOW`: the clock, for tests.
    pub now: Option<String>,
    /// `TYCHO_ACTIVITY_HOST`: where activity probes go (default: the Service's cluster name).
    pub activity_host: Option<String>,
}

impl CullEnv {
    /// The variables of this process.
    pub fn from_env() -> CullEnv {
        let set = |name: &str| super::var(name).filter(|v| !v.trim().is_empty());
        CullEnv {
            now: set("TYCHO_NOW"),
            activity_host: set("TYCHO_ACTIVITY_HOST"),
        }
    }
}

/// Now: `TYCHO_NOW` when set (the injected clock of tests; RFC 3339), else the system
/// clock. A `TYCHO_NOW` that is no time is an error naming it.
pub fn clock() -> crate::Result<chrono::DateTime<chrono::Utc>> {
    match CullEnv::from_env().now {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| {
                crate::Error::input(format!(
                    "TYCHO_NOW must be an RFC 3339 time (2026-01-02T03:04:05Z), got {:?}: {e}",
                    crate::limits::echo(&text)
                ))
                .at("TYCHO_NOW")
            }),
        None => Ok(chrono::Utc::now()),
    }
}
