//! The server's resource limits: timeouts, connections (in all and per client address),
//! CPU workers, starts in progress, the memory budget of bodies and compilations, event
//! streams (how many at once, how long).
//! [`LimitArgs`] are the `tycho api` flags; each has an environment variable, read by
//! [`crate::environment::server::ServerEnv`] (a flag wins over its variable, the
//! variable over the default; the same checks apply to both).

use crate::environment::server::ServerEnv;
use crate::error::{Error, Result};
use std::time::Duration;

/// How much a `tycho api` process takes on at once, and how long it waits for clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// A connection must send a complete request head within this time of connecting or
    /// of its previous answer (so it is also how long an idle keep-alive connection stays).
    pub header_timeout: Duration,
    /// A request body must arrive, and an answer that the client does not read must move,
    /// within this time; else the connection is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Connections of one client address (IPv6: one /64) at once; one more closes that
    /// address's longest-waiting connection that has no request in progress, or is
    /// refused when every one has.
    pub max_connections_per_peer: usize,
    /// Requests compiled at once (the CPU worker pool, `crate::offload`); 0: the number
    /// of CPUs.
    pub workers: usize,
    /// Starts in progress at once (compiling, waiting to compile, or on the cluster);
    /// one more is answered 503.
    pub max_starts: usize,
    /// Bytes that request bodies being read and the compilations of starts may take at
    /// once (`crate::server::budget`); a request that would go over is answered 503.
    pub memory_budget: u64,
    /// The longest an event stream (`GET /system/events`) lasts; a client's `timeout`
    /// may shorten it.
    pub events_timeout: Duration,
    /// Event streams open at once; one more is answered 503.
    pub max_event_streams: usize,
}

/// File descriptors kept for everything but client connections (the Kubernetes client,
/// logs, the runtime).
const FD_RESERVE: u64 = 64;

/// The soft limit of open files (Linux; None elsewhere or when unknown).
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The default connection limit: 1024, less when the open-files limit is lower (so
/// accepting never runs out of descriptors).
pub fn default_max_connections() -> usize {
    let cap = 1024u64;
    let n = match open_files_limit() {
        Some(limit) => limit.saturating_sub(FD_RESERVE).clamp(8, cap),
        None => cap,
    };
    n as usize
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
            max_connections_per_peer: 256,
            workers: 0,
            max_starts: 64,
            memory_budget: 512 << 20,
            events_timeout: Duration::from_secs(600),
            max_event_streams: 128,
        }
    }
}

/// The `tycho api` flags of [`Limits`] (flattened into the command's arguments).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LimitArgs {
    /// Seconds a client has to send a request head (after connecting, or between
    /// requests on a kept-alive connection) before it is disconnected. Default 10
    /// [env: TYCHO_API_HEADER_TIMEOUT].
    #[arg(long, value_name = "S")]
    pub header_timeout: Option<f64>,
    /// Seconds a request body may take to arrive, and an unread answer may stall,
    /// before the connection is closed. Default 30 [env: TYCHO_API_IDLE_TIMEOUT].
    #[arg(long, value_name = "S")]
    pub idle_timeout: Option<f64>,
    /// Connections served at once (more wait to be accepted). Default 1024, or less
    /// when the open-files limit is lower [env: TYCHO_API_MAX_CONNECTIONS].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Connections of one client address (IPv6: one /64) at once; one more closes its
    /// oldest connection that waits for a request, or is refused. Default 256
    /// [env: TYCHO_API_MAX_CONNECTIONS_PER_PEER].
    #[arg(long, value_name = "N")]
    pub max_connections_per_peer: Option<usize>,
    /// Requests compiled at once, off the threads that answer clients. Default: the
    /// number of CPUs [env: TYCHO_API_WORKERS].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Starts in progress at once; one more is answered 503. Default 64
    /// [env: TYCHO_API_MAX_STARTS].
    #[arg(long, value_name = "N")]
    pub max_starts: Option<usize>,
    /// Memory that request bodies in flight and the compilations of starts may take at
    /// once (bytes, or with a unit: 512Mi, 1G); a request that would go over is answered
    /// 503 with Retry-After. Default 512Mi [env: TYCHO_API_MEMORY_BUDGET].
    #[arg(long, value_name = "SIZE")]
    pub memory_budget: Option<String>,
    /// Seconds an event stream (GET /system/events) lasts at most; a client's
    /// `timeout` may shorten it. Default 600 [env: TYCHO_API_EVENTS_TIMEOUT].
    #[arg(long, value_name = "S")]
    pub events_timeout: Option<f64>,
    /// Event streams open at once; one more is answered 503. Default 128
    /// [env: TYCHO_API_MAX_EVENT_STREAMS].
    #[arg(long, value_name = "N")]
    pub max_event_streams: Option<usize>,
}

/// The flag's value, else its variable's (parsed as `T`), else None.
fn given<T: std::str::FromStr>(
    flag: Option<T>,
    var: &str,
    text: Option<&str>,
    what: &str,
) -> Result<Option<T>> {
    if flag.is_some() {
        return Ok(flag);
    }
    match text {
        None => Ok(None),
        Some(t) => t.trim().parse::<T>().map(Some).map_err(|_| {
            Error::input(format!(
                "{var} must be {what}, got {}",
                crate::limits::echo(&format!("{t:?}"))
            ))
            .at(var)
        }),
    }
}

fn seconds(flag: &str, value: Option<f64>, default: Duration) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(Error::input(format!(
            "--{flag} must be a positive number of seconds (at most 86400), got {s}"
        ))
        .at(format!("--{flag}"))),
    }
}

/// The smallest memory budget: one start of a full-size body must fit.
pub const MIN_MEMORY_BUDGET: u64 = 64 << 20;

/// The memory budget from the flag, else its variable, else `default`: a size of at
/// least [`MIN_MEMORY_BUDGET`]; the error names the flag or the variable given.
fn size(flag: Option<&str>, var: &str, text: Option<&str>, default: u64) -> Result<u64> {
    let (value, source) = match (flag, text) {
        (Some(f), _) => (f, "--memory-budget"),
        (None, Some(t)) => (t, var),
        (None, None) => return Ok(default),
    };
    match crate::limits::parse_size(value) {
        Some(n) if n >= MIN_MEMORY_BUDGET => Ok(n),
        _ => Err(Error::input(format!(
            "{source} must be a size of at least 64Mi (bytes, or with a unit: 512Mi, 1G), got {}",
            crate::limits::echo(&format!("{value:?}"))
        ))
        .at(source)),
    }
}

fn count(flag: &str, value: Option<usize>, default: usize) -> Result<usize> {
    match value {
        None => Ok(default),
        Some(n) if n >= 1 => Ok(n),
        Some(n) => Err(
            Error::input(format!("--{flag} must be at least 1, got {n}")).at(format!("--{flag}")),
        ),
    }
}

impl LimitArgs {
    /// The limits these flags describe, the variables of `env` standing in for flags
    /// not given, defaults for the rest.
    pub fn limits(&self, env: &ServerEnv) -> Result<Limits> {
        let d = Limits::default();
        let secs = "a number of seconds";
        let n = "a whole number";
        let header = given(
            self.header_timeout,
            "TYCHO_API_HEADER_TIMEOUT",
            env.header_timeout.as_deref(),
            secs,
        )?;
        let idle = given(
            self.idle_timeout,
            "TYCHO_API_IDLE_TIMEOUT",
            env.idle_timeout.as_deref(),
            secs,
        )?;
        let connections = given(
            self.max_connections,
            "TYCHO_API_MAX_CONNECTIONS",
            env.max_connections.as_deref(),
            n,
        )?;
        let per_peer = given(
            self.max_connections_per_peer,
            "TYCHO_API_MAX_CONNECTIONS_PER_PEER",
            env.max_connections_per_peer.as_deref(),
            n,
        )?;
        let workers = given(self.workers, "TYCHO_API_WORKERS", env.workers.as_deref(), n)?;
        let starts = given(
            self.max_starts,
            "TYCHO_API_MAX_STARTS",
            env.max_starts.as_deref(),
            n,
        )?;
        let events_timeout = given(
            self.events_timeout,
            "TYCHO_API_EVENTS_TIMEOUT",
            env.events_timeout.as_deref(),
            secs,
        )?;
        let streams = given(
            self.max_event_streams,
            "TYCHO_API_MAX_EVENT_STREAMS",
            env.max_event_streams.as_deref(),
            n,
        )?;
        Ok(Limits {
            events_timeout: seconds("events-timeout", events_timeout, d.events_timeout)?,
            max_event_streams: count("max-event-streams", streams, d.max_event_streams)?,
            header_timeout: seconds("header-timeout", header, d.header_timeout)?,
            idle_timeout: seconds("idle-timeout", idle, d.idle_timeout)?,
            max_connections: count("max-connections", connections, d.max_connections)?,
            max_connections_per_peer: count(
                "max-connections-per-peer",
                per_peer,
                d.max_connections_per_peer,
            )?,
            // 0: the number of CPUs (decided by the pool).
            workers: count("workers", workers, 0)?,
            max_starts: count("max-starts", starts, d.max_starts)?,
            memory_budget: size(
                self.memory_budget.as_deref(),
                "TYCHO_API_MEMORY_BUDGET",
                env.memory_budget.as_deref(),
                d.memory_budget,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values() {
        let l = LimitArgs::default().limits(&ServerEnv::default()).unwrap();
        assert_eq!(l, Limits::default());
        assert!(l.max_connections >= 8 && l.max_connections <= 1024);
        let bad = LimitArgs {
            header_timeout: Some(f64::NAN),
            ..LimitArgs::default()
        };
        assert!(bad
            .limits(&ServerEnv::default())
            .unwrap_err()
            .message
            .contains("--header-timeout"));
        let bad = LimitArgs {
            max_starts: Some(0),
            ..LimitArgs::default()
        };
        assert!(bad
            .limits(&ServerEnv::default())
            .unwrap_err()
            .message
            .contains("--max-starts"));
        let set = LimitArgs {
            header_timeout: Some(0.5),
            workers: Some(3),
            ..LimitArgs::default()
        };
        let l = set.limits(&ServerEnv::default()).unwrap();
        assert_eq!(l.header_timeout, Duration::from_millis(500));
        assert_eq!(l.workers, 3);
        let env = ServerEnv {
            header_timeout: Some("2".into()),
            workers: Some("x".into()),
            ..ServerEnv::default()
        };
        // A flag stands in for a bad variable; without the flag, the variable is refused.
        assert_eq!(set.limits(&env).unwrap().workers, 3);
        let e = LimitArgs::default().limits(&env).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("TYCHO_API_WORKERS"), "{e}");
        assert!(e.message.contains("\"x\""), "{e}");
        let env = ServerEnv {
            header_timeout: Some("2".into()),
            ..ServerEnv::default()
        };
        // The flag wins over the variable; the variable over the default.
        assert_eq!(
            set.limits(&env).unwrap().header_timeout,
            Duration::from_millis(500)
        );
        let l = LimitArgs::default().limits(&env).unwrap();
        assert_eq!(l.header_timeout, Duration::from_secs(2));
    }

    #[test]
    fn per_peer_connections_and_memory_budget() {
        let d = LimitArgs::default().limits(&ServerEnv::default()).unwrap();
        assert_eq!(d.max_connections_per_peer, 256);
        assert_eq!(d.memory_budget, 512 << 20);
        let set = LimitArgs {
            max_connections_per_peer: Some(8),
            memory_budget: Some("1G".into()),
            ..LimitArgs::default()
        };
        let l = set.limits(&ServerEnv::default()).unwrap();
        assert_eq!((l.max_connections_per_peer, l.memory_budget), (8, 1 << 30));
        let env = ServerEnv {
            max_connections_per_peer: Some("3".into()),
            memory_budget: Some("100Mi".into()),
            ..ServerEnv::default()
        };
        let l = LimitArgs::default().limits(&env).unwrap();
        assert_eq!(
            (l.max_connections_per_peer, l.memory_budget),
            (3, 100 << 20)
        );
        for bad in ["lots", "1Mi", "0"] {
            let args = LimitArgs {
                memory_budget: Some(bad.into()),
                ..LimitArgs::default()
            };
            let e = args.limits(&ServerEnv::default()).unwrap_err();
            assert!(
                e.message
                    .contains("--memory-budget must be a size of at least 64Mi"),
                "{e}"
            );
        }
        let env = ServerEnv {
            memory_budget: Some("huge".into()),
            ..ServerEnv::default()
        };
        let e = LimitArgs::default().limits(&env).unwrap_err();
        assert!(e.message.contains("TYCHO_API_MEMORY_BUDGET"), "{e}");
        let bad = LimitArgs {
            max_connections_per_peer: Some(0),
            ..LimitArgs::default()
        };
        assert!(bad
            .limits(&ServerEnv::default())
            .unwrap_err()
            .message
            .contains("--max-connections-per-peer"));
    }
}
