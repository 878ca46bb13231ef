//! Tycho: an API, compiler and executor for cloud-native distributed systems.
//!
//! A docker-compose subset plus settings is parsed into a system model ([`model`]),
//! rendered through Jinja-compatible templates ([`render`]) into Kubernetes objects
//! ([`compile`]). The Python package `tycho` is a thin layer over this crate.

pub mod cli;
pub mod compile;
pub mod config;
pub mod environment;
pub mod error;
pub mod exec;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod offload;
pub mod registry;
pub mod render;
pub mod runtime;
pub mod server;
pub mod text;

#[cfg(feature = "python")]
mod bindings;

pub use error::{Error, ErrorKind, Result};

/// mimalloc: the compile path allocates many small strings and maps.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(test)]
pub(crate) mod test_alloc;

/// The unit tests count what each thread allocates ([`test_alloc`]).
#[cfg(test)]
#[global_allocator]
static GLOBAL: test_alloc::Counting = test_alloc::Counting;
