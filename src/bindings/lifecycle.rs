//! Keeping tycho's own threads out of the interpreter while it exits.
//!
//! The runtime's threads (`crate::runtime`: tokio workers and its blocking pool) are not
//! Python threads, yet some of them enter the interpreter: the asyncio bridge runs Python
//! callables there and resolves asyncio futures from there (pyo3-async-runtimes), and the
//! `log` bridge (pyo3-log) hands records of any thread to Python's `logging`. A thread
//! that holds or takes a Python thread state while `Py_FinalizeEx` runs crashes the
//! process (CPython aborts with "PyGILState_Release: thread state ... must be current",
//! or the thread is torn down under Rust frames: SIGSEGV).
//!
//! So every entry of such a thread goes through [`enter`], which counts it, and a
//! function registered with Python's `atexit` at import ([`close`]) runs before the
//! interpreter starts finalizing: it refuses entries from then on and waits (without the
//! GIL) until the entries in progress have left, up to [`EXIT_WAIT`] — as Python's own
//! exit waits for its executor threads. After it, a refused bridge job leaves its
//! awaitable unresolved (nobody awaits it any more), and a refused log record is
//! dropped. A forked child starts with nothing entered and the gate open.
//!
//! The `log` bridge itself is installed here too ([`bridge_logging`]), and [`run`] is the
//! GIL-free call of every executor operation, which refreshes the bridge's levels first.

use pyo3::prelude::*;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long the exit waits for bridge jobs and log records still in Python.
pub const EXIT_WAIT: Duration = Duration::from_secs(120);

struct Gate {
    pid: u32,
    closed: bool,
    inside: usize,
}

static GATE: Mutex<Gate> = Mutex::new(Gate {
    pid: 0,
    closed: false,
    inside: 0,
});
static LEFT: Condvar = Condvar::new();

fn gate() -> std::sync::MutexGuard<'static, Gate> {
    let mut g = GATE.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if g.pid != pid {
        // First use, or a forked child: the parent's entries are not running here.
        *g = Gate {
            pid,
            closed: false,
            inside: 0,
        };
    }
    g
}

/// One thread's stay in the interpreter; leaving is dropping it.
pub struct Entry(());

impl Drop for Entry {
    fn drop(&mut self) {
        let mut g = gate();
        g.inside = g.inside.saturating_sub(1);
        if g.inside == 0 {
            LEFT.notify_all();
        }
    }
}

/// Permission for a non-Python thread to enter the interpreter (hold the [`Entry`]
/// until it has fully left: the GIL released and its thread state gone); None once
/// the interpreter is exiting.
pub fn enter() -> Option<Entry> {
    let mut g = gate();
    if g.closed {
        return None;
    }
    g.inside += 1;
    Some(Entry(()))
}

/// Closes the gate and waits for the entries in progress (Python's `atexit` calls it).
#[pyfunction]
fn close(py: Python<'_>) {
    gate().closed = true;
    py.detach(|| {
        let deadline = Instant::now() + EXIT_WAIT;
        let mut g = gate();
        while g.inside > 0 {
            let now = Instant::now();
            if now >= deadline {
                eprintln!(
                    "tycho: {} call(s) still running at exit after {EXIT_WAIT:?}; exiting anyway",
                    g.inside
                );
                return;
            }
            g = LEFT
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    });
}

/// A `log` logger that lets records of non-Python threads reach Python's `logging`
/// only while the interpreter may be entered.
pub struct GatedLogger<L>(pub L);

impl<L: log::Log> log::Log for GatedLogger<L> {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        match enter() {
            Some(_entry) => self.0.enabled(metadata),
            None => false,
        }
    }

    fn log(&self, record: &log::Record) {
        if let Some(_entry) = enter() {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        if let Some(_entry) = enter() {
            self.0.flush();
        }
    }
}

/// Registers [`close`] with Python's `atexit` (at import, so it runs after the exit
/// functions registered later, which may still use tycho).
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let close = wrap_pyfunction!(close, m)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (close,))?;
    Ok(())
}

/// The handle that makes pyo3-log read Python's logging levels again (see [`run`]).
static LOG_RESET: std::sync::OnceLock<pyo3_log::ResetHandle> = std::sync::OnceLock::new();

/// Bridges `log` records to Python's `logging` through pyo3-log, once per process:
/// targets `tycho.kube`, `tycho.docker`, `tycho.cull` and Rust paths under `tycho` at
/// Debug and up, other crates Warn and up (Python's levels decide from there). Records of
/// the runtime's threads go through [`GatedLogger`].
pub fn bridge_logging(py: Python<'_>) -> PyResult<()> {
    if LOG_RESET.get().is_none() {
        let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::LoggersAndLevels)?
            .filter(log::LevelFilter::Warn)
            .filter_target("tycho".to_string(), log::LevelFilter::Debug)
            // pyo3-log matches targets by `::` segments: name dotted ones too.
            .filter_target(
                crate::exec::kube::LOG_TARGET.to_string(),
                log::LevelFilter::Debug,
            )
            .filter_target(
                crate::exec::docker::LOG_TARGET.to_string(),
                log::LevelFilter::Debug,
            )
            .filter_target(
                crate::exec::cull::LOG_TARGET.to_string(),
                log::LevelFilter::Debug,
            )
            // kube-rs reports every failed request at ERROR (through tracing's log
            // bridge), retried ones included; tycho.kube logs them with context instead.
            .filter_target("kube_client".to_string(), log::LevelFilter::Off);
        // Another logger may already be installed (then records go there). Records of
        // the runtime's threads reach Python only while it is not exiting.
        let handle = logger.reset_handle();
        if log::set_boxed_logger(Box::new(GatedLogger(logger))).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
            let _ = LOG_RESET.set(handle);
        }
    }
    Ok(())
}

/// Runs `f` without the GIL, catching panics (`crate::bindings::run`), after making
/// pyo3-log read Python's logging levels again (it caches them), so a level set since
/// the last call is honoured. The operations of the executors run through here.
pub fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> crate::Result<T> + Send) -> PyResult<T> {
    if let Some(handle) = LOG_RESET.get() {
        handle.reset();
    }
    crate::bindings::run(py, f)
}
