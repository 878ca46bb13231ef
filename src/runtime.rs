//! The process's one tokio runtime, made again after `fork()`.
//!
//! The Kubernetes executor (its client and watch cache), the Docker backplane, the
//! asyncio bridge of the Python API, the REST server and `up --wait` all run on it, so a
//! client (and its connection pool and background tasks) made by one of them is usable
//! by all. It is made on first use. A forked child (gunicorn workers) must never use the
//! parent's runtime, whose threads it does not have: the parent's is left alone (leaked,
//! never dropped) and a new one is made. Everything that caches tasks or clients made on
//! the runtime keys them with [`generation`] and makes them again when it changes.

use crate::error::{Error, ErrorKind, Result};
use std::sync::Mutex;

struct Slot {
    pid: u32,
    runtime: &'static tokio::runtime::Runtime,
}

static RUNTIME: Mutex<Option<Slot>> = Mutex::new(None);

/// The process's runtime (made on first use, and again after a fork).
pub fn get(kind: ErrorKind) -> Result<&'static tokio::runtime::Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = slot.as_ref() {
        if s.pid == pid {
            return Ok(s.runtime);
        }
        // A forked child: the parent's runtime has no threads here. Never touch or drop it.
        log::debug!(target: "tycho.runtime", "process {pid} was forked from {}: new runtime", s.pid);
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        // the asyncio bridge runs Python calls on the blocking pool
        .max_blocking_threads(256)
        .thread_name("tycho")
        // Python code and the core run on these threads: not the 2 MiB default
        .thread_stack_size(crate::limits::THREAD_STACK)
        .enable_all()
        .build()
        .map_err(|e| Error::new(kind, format!("cannot start tycho's runtime: {e}")))?;
    let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
    *slot = Some(Slot { pid, runtime: rt });
    Ok(rt)
}

/// The process the runtime belongs to: what caches of runtime-bound things (clients,
/// watch tasks) compare to know they were inherited over `fork()`.
pub fn generation() -> u32 {
    std::process::id()
}

/// Runs `fut` to completion on the process's runtime (blocking the calling thread).
pub fn block_on<T>(
    kind: ErrorKind,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    get(kind)?.block_on(fut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_runtime_per_process() {
        let a = get(ErrorKind::Kube).unwrap() as *const _;
        let b = get(ErrorKind::Kube).unwrap() as *const _;
        assert_eq!(a, b);
        assert_eq!(block_on(ErrorKind::Kube, async { Ok(7) }).unwrap(), 7);
    }
}
