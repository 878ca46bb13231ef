//! The one error type of the core: a kind (which maps to a `tycho.exceptions` class in
//! Python, an HTTP status in the server and an exit code in the CLI) and a message that
//! names what was wrong.

use std::fmt;

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
    /// Talking to the Kubernetes API failed outside of the operations above.
    Kube,
}

/// An error with a message naming the service, field and value involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Category of the error.
    pub kind: ErrorKind,
    /// Human readable message.
    pub message: String,
}

impl Error {
    /// Builds an error of `kind`.
    ///
    /// A message longer than [`crate::limits::MESSAGE_LIMIT`] characters (a value nobody
    /// cut with [`crate::limits::echo`]) keeps its head and tail only.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: crate::limits::cut_message(message.into()),
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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

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
