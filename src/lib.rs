//! Tycho: an API, compiler and executor for cloud-native distributed systems.
//!
//! A docker-compose subset plus settings is parsed into a system model ([`model`]),
//! rendered through Jinja-compatible templates ([`render`]) into Kubernetes objects
//! ([`compile`]). The Python package `tycho` is a thin layer over this crate.

pub mod backplane;
pub mod cli;
pub mod compile;
pub mod config;
pub mod default_limits;
pub mod docker;
pub mod environment;
pub mod error;
pub mod kube;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod names;
pub mod offload;
pub mod policy;
pub mod pyfmt;
pub mod registry;
pub mod render;
pub mod request_schema;
pub mod runtime;
pub mod server;
pub mod settings;
pub mod template_guard;
pub mod token_env;
pub mod yaml;

#[cfg(feature = "python")]
mod bindings;

pub use error::{Error, ErrorKind, Result};

/// mimalloc: the compile path allocates many small strings and maps.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Unit tests: mimalloc, counting what each thread holds ([`test_alloc::live`]).
#[cfg(test)]
#[global_allocator]
static GLOBAL: test_alloc::Counting = test_alloc::Counting;

/// The unit tests' allocator: mimalloc, with a count of the bytes each thread has
/// allocated and not freed, so a test can measure what a structure it builds holds.
#[cfg(test)]
pub(crate) mod test_alloc {
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
    }

    fn add(delta: isize) {
        // During the thread's teardown the count is gone: nothing to count then.
        let _ = LIVE.try_with(|c| c.set(c.get() + delta));
    }

    fn size(layout: Layout) -> isize {
        isize::try_from(layout.size()).unwrap_or(isize::MAX)
    }

    /// Bytes allocated and not freed by this thread (frees of its allocations on
    /// other threads are not seen).
    pub(crate) fn live() -> isize {
        LIVE.with(Cell::get)
    }

    /// mimalloc, counted.
    pub(crate) struct Counting;

    // SAFETY: every call is passed to mimalloc unchanged; only a thread-local number
    // (which never allocates) is updated besides.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract is mimalloc's.
            let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
            if !p.is_null() {
                add(size(layout));
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract is mimalloc's.
            let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
            if !p.is_null() {
                add(size(layout));
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract is mimalloc's.
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
            add(-size(layout));
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller's contract is mimalloc's.
            let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                add(isize::try_from(new_size).unwrap_or(isize::MAX) - size(layout));
            }
            p
        }
    }
}
