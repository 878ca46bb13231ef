//! Tycho: an API, compiler and executor for cloud-native distributed systems.
//!
//! A docker-compose subset plus settings is parsed into a system model ([`model`]),
//! rendered through Jinja-compatible templates ([`render`]) into Kubernetes objects
//! ([`compile`]). The Python package `tycho` is a thin layer over this crate.

pub mod cli;
pub mod compile;
pub mod config;
pub mod error;
pub mod kube;
pub mod model;
pub mod names;
pub mod pyfmt;
pub mod render;
pub mod yaml;

#[cfg(feature = "python")]
mod python;
#[cfg(feature = "python")]
mod python_kube;

pub use error::{Error, ErrorKind, Result};
