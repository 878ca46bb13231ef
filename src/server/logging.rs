//! A small stderr logger for the `log` crate (`<UTC time> <LEVEL> <target>: <message>`,
//! the target dotted like the Python logger pyo3-log would use),
//! and the access-log middleware: one line per request with method, path, status and
//! duration — never bodies, query strings or headers (so never tokens).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::time::Instant;

struct StderrLogger {
    level: LevelFilter,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
            && (self.level >= LevelFilter::Debug || metadata.target().starts_with("tycho"))
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let line = format!(
            "{now} {:<5} {}: {}\n",
            record.level(),
            record.target().replace("::", "."),
            record.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the stderr logger (info, or debug with `debug`); later calls do nothing.
pub fn init(debug: bool) {
    let level = if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    if log::set_boxed_logger(Box::new(StderrLogger { level })).is_ok() {
        log::set_max_level(level);
    }
}

/// Middleware: logs `METHOD /path STATUS 1.2ms` at info (warn for 5xx) after each request.
pub async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = super::routes::loggable(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let level = if status.is_server_error() {
        Level::Warn
    } else {
        Level::Info
    };
    log::log!(target: crate::server::LOG_TARGET, level, "{method} {path} {} {ms:.1}ms", status.as_u16());
    response
}
