//! Records on the Python face's own loggers (`tycho.client`, `tycho.context`: the
//! original's names, whose handlers and levels appstore configures) from native code,
//! formatted lazily by `logging` and made only when the logger is enabled for the level.

use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

/// `logging.DEBUG`.
pub(crate) const DEBUG: u8 = 10;
/// `logging.INFO`.
pub(crate) const INFO: u8 = 20;
/// `logging.ERROR`.
pub(crate) const ERROR: u8 = 40;

/// `logging.getLogger(logger).log(level, format, *args)` when enabled for `level`.
pub(crate) fn log<'py>(
    py: Python<'py>,
    logger: &str,
    level: u8,
    format: &str,
    args: &[Bound<'py, PyAny>],
) -> PyResult<()> {
    let logger = py
        .import("logging")?
        .getattr("getLogger")?
        .call1((logger,))?;
    if logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
        let mut all = vec![
            level.into_pyobject(py)?.into_any(),
            PyString::new(py, format).into_any(),
        ];
        all.extend(args.iter().cloned());
        logger.call_method1("log", PyTuple::new(py, all)?)?;
    }
    Ok(())
}
