//! The one error type of the core: a kind (which maps to a `tycho.exceptions` class in
//! Python, an HTTP status in the server and an exit code in the CLI), a message that
//! names what was wrong, and, when known, the field at fault (`services.web.ports[0]`),
//! the template and line a render error happened at, and the error that caused it
//! (kept whole, as [`std::error::Error::source`]).
//!
//! Errors are made with the constructors ([`Error::new`], [`Error::input`], ...) and
//! completed with the builder methods [`Error::at`], [`Error::caused_by`] and
//! [`Error::in_template`]. Code decides on the kind and the fields, never on the text of
//! the message.

use std::fmt;
use std::sync::Arc;

/// What went wrong, coarse enough to pick an exception class or HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request or compose document is invalid (HTTP 400, `TychoException`).
    Input,
    /// A template could not be found, compiled or rendered.
    Template,
    /// Configuration could not be read.
    Config,
    /// Starting a system failed (`StartException`).
    Start,
    /// Deleting a system failed (`DeleteException`).
    Delete,
    /// Modifying a system failed (`ModifyException`).
    Modify,
    /// The app registry could not be loaded or used (`ContextException`).
    Context,
    /// The system breaks the policy (`tycho.policy`: pod security level, resource
    /// ceilings): refused before anything is created (`StartException`, HTTP 400).
    Policy,
    /// Talking to the Kubernetes API failed outside of the operations above.
    Kube,
    /// A bug in tycho: a panic caught at a boundary, a task that did not complete
    /// (`TychoException`, with a message saying so).
    Internal,
}

/// The error that caused another, shared so [`Error`] stays cheap to clone.
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An error with a message naming the service, field and value involved.
#[derive(Debug, Clone)]
pub struct Error {
    /// Category of the error.
    pub kind: ErrorKind,
    /// Human readable message.
    pub message: String,
    /// The field at fault, as a path into the input (`services.web.ports[0]`), if one is.
    pub field: Option<String>,
    /// The template a render error happened in.
    pub template: Option<String>,
    /// The line of [`Error::template`] it happened at (1-based).
    pub line: Option<usize>,
    source: Option<Source>,
}

/// Errors are equal when kind, message, field and template location are (the source is
/// not compared).
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.message == other.message
            && self.field == other.field
            && self.template == other.template
            && self.line == other.line
    }
}

impl Eq for Error {}

impl Error {
    /// Builds an error of `kind`.
    ///
    /// A message longer than [`MESSAGE_LIMIT`] characters (a value nobody
    /// cut with [`echo`]) keeps its head and tail only.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: cut_message(message.into()),
            field: None,
            template: None,
            line: None,
            source: None,
        }
    }
    /// Invalid input (request, compose file, settings).
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Input, message)
    }
    /// Template lookup or rendering failure.
    pub fn template(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Template, message)
    }
    /// Configuration failure.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    /// A bug in tycho; the message says so and asks for a report.
    pub fn internal(what: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::Internal,
            format!("internal error in tycho (a bug, please report it): {what}"),
        )
    }
    /// The error with the field at fault (a path into the input, `services.web.ports[0]`).
    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = Some(echo(&field.into()));
        self
    }
    /// The error with the field at fault, unless one is set already.
    pub fn at_if_unset(self, field: impl Into<String>) -> Self {
        if self.field.is_some() {
            self
        } else {
            self.at(field)
        }
    }
    /// The error with its cause kept (returned by [`std::error::Error::source`]).
    pub fn caused_by(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(cause));
        self
    }
    /// The error with a cause already shared.
    pub fn caused_by_shared(mut self, cause: Source) -> Self {
        self.source = Some(cause);
        self
    }
    /// The error located in template `name`, at `line` when known.
    pub fn in_template(mut self, name: impl Into<String>, line: Option<usize>) -> Self {
        self.template = Some(name.into());
        self.line = line;
        self
    }
    /// The error with `prefix: ` before its message (field, location and cause kept): how
    /// a caller adds what it was doing.
    pub fn prefixed(mut self, prefix: impl fmt::Display) -> Self {
        self.message = cut_message(format!("{prefix}: {}", self.message));
        self
    }
    /// The error as another kind (the same message, field, location and cause).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
    /// The cause, shared.
    pub fn cause(&self) -> Option<&Source> {
        self.source.as_ref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `text` followed by the causes of `e` (its `source()` chain), each once, joined with
/// `": "` — how transport errors of the Kubernetes and Docker clients are reported.
pub fn with_causes(mut text: String, e: &dyn std::error::Error) -> String {
    let mut source = e.source();
    while let Some(s) = source {
        let piece = s.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = s.source();
    }
    text
}

/// The message of a panic payload (`panic!` with a string or a format), else empty.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

// ---- How much of a value an error message echoes (re-exported by `crate::limits`, the
// table of every bound; defined here so the error type needs nothing above it).

/// Most characters of a value echoed in an error message or a log line.
pub const ECHO_LIMIT: usize = 200;

/// `text` cut to [`ECHO_LIMIT`] characters, saying how long it was when cut.
pub fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_LIMIT) {
        None => text.to_string(),
        Some((cut, _)) => format!(
            "{}… ({} characters in all)",
            &text[..cut],
            text.chars().count()
        ),
    }
}

/// Longest error message kept whole.
pub const MESSAGE_LIMIT: usize = 1000;

/// `message` whole when short, else its first and last parts around a note of the cut.
pub fn cut_message(message: String) -> String {
    let n = message.chars().count();
    if n <= MESSAGE_LIMIT {
        return message;
    }
    let head: String = message.chars().take(ECHO_LIMIT * 2).collect();
    let tail: String = message.chars().skip(n - ECHO_LIMIT).collect();
    format!("{head}… ({} characters cut) …{tail}", n - ECHO_LIMIT * 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn builders_keep_field_location_and_cause() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::input("bad port")
            .at("services.web.ports[0]")
            .caused_by(io);
        assert_eq!(e.field.as_deref(), Some("services.web.ports[0]"));
        assert_eq!(e.source().unwrap().to_string(), "disk on fire");
        assert_eq!(e.to_string(), "bad port");
        let kept = e.clone().at_if_unset("other");
        assert_eq!(kept.field.as_deref(), Some("services.web.ports[0]"));
        let t = Error::template("boom").in_template("pod.yaml", Some(3));
        assert_eq!((t.template.as_deref(), t.line), (Some("pod.yaml"), Some(3)));
        let i = Error::internal("index out of bounds");
        assert_eq!(i.kind, ErrorKind::Internal);
        assert!(i.message.contains("a bug"), "{}", i.message);
    }

    #[test]
    fn long_fields_are_cut() {
        let e = Error::input("x").at("a".repeat(10_000));
        assert!(e.field.unwrap().chars().count() < 300);
    }
}
