//! CPU-bound work (parsing, templating, compiling) off the async worker threads.
//!
//! A job runs on tokio's blocking thread pool, behind one process-wide semaphore, so at
//! most [`workers`] jobs compute at once (the others wait their turn) and the async
//! workers stay free for I/O: a server keeps answering `/healthz` and other clients
//! while big or hostile requests compile. The number of workers is set once per
//! process ([`set_workers`], `tycho api --workers`); by default it is the number of CPUs.

use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// The pool of this process: made on first use, and again in a child after `fork()`
/// (permits held by the parent's threads would never be returned in the child).
struct Pool {
    pid: u32,
    permits: Arc<Semaphore>,
    workers: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);
static CONFIGURED: AtomicUsize = AtomicUsize::new(0);

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// The semaphore and size of this process's pool.
fn pool() -> (Arc<Semaphore>, usize) {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if pool.as_ref().is_none_or(|p| p.pid != pid) {
        let workers = match CONFIGURED.load(Ordering::SeqCst) {
            0 => default_workers(),
            n => n,
        };
        *pool = Some(Pool {
            pid,
            permits: Arc::new(Semaphore::new(workers)),
            workers,
        });
    }
    let p = pool.as_ref().expect("set above");
    (p.permits.clone(), p.workers)
}

/// Sets the number of jobs that may compute at once (0: the number of CPUs). Takes
/// effect only before the first job of the process; returns whether it did.
pub fn set_workers(workers: usize) -> bool {
    let pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    if pool.as_ref().is_some_and(|p| p.pid == std::process::id()) {
        return false;
    }
    CONFIGURED.store(workers, Ordering::SeqCst);
    true
}

/// The number of jobs that may compute at once.
pub fn workers() -> usize {
    pool().1
}

/// Runs `job` on the blocking pool once a worker is free and returns its result. Must be
/// called on a tokio runtime. A panic in `job` becomes an [`ErrorKind::Internal`] error
/// naming `what`; it never unwinds into the caller. `_kind` (the caller's kind) is no
/// longer used: the job's own errors carry theirs.
pub async fn run<T, F>(_kind: ErrorKind, what: &str, job: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (permits, _) = pool();
    let permit = permits
        .acquire_owned()
        .await
        .map_err(|_| Error::internal(format!("{what}: the worker pool is closed")))?;
    let handle = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job()
    });
    handle.await.map_err(|e| {
        let cause = if e.is_panic() {
            "it panicked"
        } else {
            "it was cancelled"
        };
        Error::internal(format!("{what} did not complete ({cause})"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_off_the_async_thread_and_panics_are_errors() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let here = std::thread::current().id();
            let there = run(ErrorKind::Input, "a job", || std::thread::current().id())
                .await
                .unwrap();
            assert_ne!(here, there);
            let e = run(ErrorKind::Input, "a bad job", || -> u8 { panic!("boom") })
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Internal);
            assert!(
                e.message.contains("a bad job did not complete"),
                "{}",
                e.message
            );
            // The panicking job gave its worker back: the pool still runs jobs.
            for _ in 0..workers() + 1 {
                assert_eq!(run(ErrorKind::Input, "next", || 7).await.unwrap(), 7);
            }
        });
    }

    #[test]
    fn at_most_workers_jobs_compute_at_once() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let n = workers();
            let tasks: Vec<_> = (0..n * 3)
                .map(|_| {
                    let running = running.clone();
                    let peak = peak.clone();
                    tokio::spawn(run(ErrorKind::Input, "sleep", move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    }))
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
            assert!(peak.load(Ordering::SeqCst) <= n);
            assert!(peak.load(Ordering::SeqCst) >= 1);
        });
    }
}
