//! Python bindings of the Kubernetes executor (`tycho._native.kube_*`).

use pyo3::prelude::*;

/// Registers the executor's functions on the native module.
pub fn init(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
