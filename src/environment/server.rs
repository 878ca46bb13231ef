//! Settings of the `tycho api` server: limits, timeouts, access token, `/metrics` access.
//!
//! Read from the process environment by [`super::var`] and friends only. The values are
//! kept as text: `tycho api`'s flags win over them, and a flag's checks apply to the
//! variable too (src/limits/http.rs, src/cli.rs).
//!
//! | variable | flag | what |
//! | --- | --- | --- |
//! | `TYCHO_API_TOKEN` | | the bearer token clients must send |
//! | `TYCHO_API_HEADER_TIMEOUT` | `--header-timeout` | seconds to send a request head |
//! | `TYCHO_API_IDLE_TIMEOUT` | `--idle-timeout` | seconds a body or an unread answer may stall |
//! | `TYCHO_API_MAX_CONNECTIONS` | `--max-connections` | connections served at once |
//! | `TYCHO_API_MAX_CONNECTIONS_PER_PEER` | `--max-connections-per-peer` | connections of one client address at once |
//! | `TYCHO_API_WORKERS` | `--workers` | requests compiled at once |
//! | `TYCHO_API_MAX_STARTS` | `--max-starts` | starts in progress at once |
//! | `TYCHO_API_MEMORY_BUDGET` | `--memory-budget` | memory of bodies in flight and compilations |
//! | `TYCHO_API_METRICS` | `--metrics` | who may read `/metrics`: `open`, `token` or `off` |
//! | `TYCHO_API_EVENTS_TIMEOUT` | `--events-timeout` | seconds an event stream lasts at most |
//! | `TYCHO_API_MAX_EVENT_STREAMS` | `--max-event-streams` | event streams open at once |

/// The server's variables, as set (None: unset).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerEnv {
    /// `TYCHO_API_TOKEN`.
    pub token: Option<String>,
    /// `TYCHO_API_HEADER_TIMEOUT`.
    pub header_timeout: Option<String>,
    /// `TYCHO_API_IDLE_TIMEOUT`.
    pub idle_timeout: Option<String>,
    /// `TYCHO_API_MAX_CONNECTIONS`.
    pub max_connections: Option<String>,
    /// `TYCHO_API_MAX_CONNECTIONS_PER_PEER`.
    pub max_connections_per_peer: Option<String>,
    /// `TYCHO_API_WORKERS`.
    pub workers: Option<String>,
    /// `TYCHO_API_MAX_STARTS`.
    pub max_starts: Option<String>,
    /// `TYCHO_API_MEMORY_BUDGET`.
    pub memory_budget: Option<String>,
    /// `TYCHO_API_METRICS`.
    pub metrics: Option<String>,
    /// `TYCHO_API_EVENTS_TIMEOUT`.
    pub events_timeout: Option<String>,
    /// `TYCHO_API_MAX_EVENT_STREAMS`.
    pub max_event_streams: Option<String>,
}

impl ServerEnv {
    /// The variables of this process.
    pub fn from_env() -> ServerEnv {
        ServerEnv {
            token: super::var("TYCHO_API_TOKEN"),
            header_timeout: super::var("TYCHO_API_HEADER_TIMEOUT"),
            idle_timeout: super::var("TYCHO_API_IDLE_TIMEOUT"),
            max_connections: super::var("TYCHO_API_MAX_CONNECTIONS"),
            max_connections_per_peer: super::var("TYCHO_API_MAX_CONNECTIONS_PER_PEER"),
            workers: super::var("TYCHO_API_WORKERS"),
            max_starts: super::var("TYCHO_API_MAX_STARTS"),
            memory_budget: super::var("TYCHO_API_MEMORY_BUDGET"),
            metrics: super::var("TYCHO_API_METRICS"),
            events_timeout: super::var("TYCHO_API_EVENTS_TIMEOUT"),
            max_event_streams: super::var("TYCHO_API_MAX_EVENT_STREAMS"),
        }
    }
}
