//! Python bindings (`tycho._native`): the core's entry points as functions taking and
//! returning plain dicts and lists, one file per area ([`compile`]: the compiler, the
//! model's rules, templates and YAML; [`kube`], [`registry`], [`docker`], [`stopcull`]: stop, resume, touch, cull) and the
//! conversions and error mapping in [`convert`]; the classes of `tycho.client` in
//! [`results`] (`TychoService`, `TychoStatus`, `TychoSystem`) and [`client`]
//! (`TychoClient`), [`context`] (`TychoContext`'s operations), logging to their loggers in
//! [`pylog`]; [`lifecycle`] keeps the runtime's
//! threads out of the interpreter while it exits. Errors become `tycho.exceptions`
//! classes; a Rust panic is caught and raised as `TychoException`, never as a crash.

use pyo3::prelude::*;

mod client;
mod compile;
mod context;
mod convert;
mod docker;
mod error;
mod kube;
mod lifecycle;
mod plain;
mod pylog;
mod registry;
mod results;
mod stopcull;

pub(crate) use convert::{config_value, from_py, run, to_py, to_pyerr, PlainWalk, Trace};

/// The process's metrics in the OpenMetrics text format (`tycho.metrics()`).
#[pyfunction]
fn metrics_text() -> String {
    crate::metrics::text()
}

/// The original's name of the backplane `name` names (`docker` is `docker-compose`);
/// None when it names none (`tycho.factory`).
#[pyfunction]
fn backplane_name(name: &str) -> Option<&'static str> {
    crate::exec::backplane::Backplane::parse(name)
        .ok()
        .map(crate::exec::backplane::Backplane::name)
}

/// The native core of the `tycho` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("DEFAULT_CONFIG", crate::config::DEFAULT_CONFIG)?;
    lifecycle::init(m)?;
    compile::init(m)?;
    kube::init(m)?;
    docker::init(m)?;
    registry::init(m)?;
    stopcull::init(m)?;
    results::init(m)?;
    client::init(m)?;
    context::init(m)?;
    m.add_function(wrap_pyfunction!(metrics_text, m)?)?;
    m.add_function(wrap_pyfunction!(backplane_name, m)?)?;
    m.add(
        "BACKPLANES",
        pyo3::types::PyTuple::new(m.py(), crate::exec::backplane::NAMES)?,
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
