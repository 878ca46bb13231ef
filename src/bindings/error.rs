//! Core errors as `tycho.exceptions` instances: the class by the error's kind, with the
//! field at fault, and a render error's template and line, as attributes.

use crate::error::{Error, ErrorKind};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

fn exception_class(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Start | ErrorKind::Policy => "StartException",
        ErrorKind::Delete => "DeleteException",
        ErrorKind::Modify => "ModifyException",
        ErrorKind::Context => "ContextException",
        // Internal (a bug), Input, Template, Config, Kube.
        _ => "TychoException",
    }
}

/// Converts a core error into the matching `tycho.exceptions` instance, with the field
/// at fault as `exc.field` and a render error's template and line as `exc.template` and
/// `exc.line` (None when not known).
pub(crate) fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let class = exception_class(e.kind);
    let made = py
        .import("tycho.exceptions")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((e.message.clone(),)))
        .and_then(|exc| {
            exc.setattr("field", e.field.clone())?;
            exc.setattr("template", e.template.clone())?;
            exc.setattr("line", e.line)?;
            Ok(exc)
        });
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) => PyRuntimeError::new_err(e.message),
    }
}
