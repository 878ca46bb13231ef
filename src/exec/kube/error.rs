//! Typed errors of the Kubernetes executor.
//!
//! A [`KubeError`] carries what went wrong as data — the API server's reason and HTTP
//! code, or the transport failure and the API server's URL, and how many attempts were
//! made — beside the message users see. Control flow inside `kube/` matches on
//! [`Cause`], never on message text. At the edge of an operation it becomes a
//! [`crate::error::Error`] of the operation's kind (`StartException`, `DeleteException`,
//! ...), with the same message as before.

use crate::error::{Error, ErrorKind};
use std::fmt;

/// Why a Kubernetes call or operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The API server answered with a failure `Status`.
    Api {
        /// The Status's `reason` (`AlreadyExists`, `Forbidden`, ...), possibly empty.
        reason: String,
        /// The HTTP status code.
        code: u16,
    },
    /// No answer from the API server: connecting, sending or reading failed.
    Transport {
        /// The API server's URL.
        url: String,
        /// The connection was refused (nothing listens there).
        refused: bool,
    },
    /// No usable configuration (kubeconfig, in-cluster settings).
    Config,
    /// What tycho would send is invalid (a rendered object, a name, a setting).
    Invalid,
    /// The system breaks the policy (`tycho.policy`): refused before any object is made.
    Policy,
    /// The object the operation works on no longer exists.
    Gone,
    /// A delete of the system overtook the operation.
    Overtaken,
    /// The operation's time budget ran out.
    Timeout,
}

/// An error of the executor: the cause as data and the message users see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeError {
    /// What went wrong.
    pub cause: Cause,
    /// The message (names the call, the object and the server's answer).
    pub message: String,
    /// Attempts made for the call (1 when it was not retried).
    pub attempts: u32,
}

impl KubeError {
    /// An error with `cause` and `message`, after one attempt.
    pub fn new(cause: Cause, message: impl Into<String>) -> KubeError {
        KubeError {
            cause,
            message: message.into(),
            attempts: 1,
        }
    }

    /// Invalid input or rendered object.
    pub fn invalid(message: impl Into<String>) -> KubeError {
        KubeError::new(Cause::Invalid, message)
    }

    /// A failure of kube-rs after `attempts` attempts, described as [`super::describe`]
    /// does (the API server's URL named for transport failures).
    pub fn from_kube(e: &kube::Error, attempts: u32) -> KubeError {
        let cause = match e {
            kube::Error::Api(s) => Cause::Api {
                reason: s.reason.clone(),
                code: s.code,
            },
            _ => Cause::Transport {
                url: super::client::api_url(),
                refused: super::retry::refused(e),
            },
        };
        let mut message = super::describe(e);
        if attempts > 1 {
            message.push_str(&format!(" ({attempts} attempts)"));
        }
        KubeError {
            cause,
            message,
            attempts,
        }
    }

    /// The same error with `context` before its message (`cannot create Service "x": ...`).
    #[must_use]
    pub fn context(mut self, context: impl fmt::Display) -> KubeError {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The HTTP code of an API server answer (None without one).
    pub fn code(&self) -> Option<u16> {
        match &self.cause {
            Cause::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The API server's reason (None without an answer).
    pub fn reason(&self) -> Option<&str> {
        match &self.cause {
            Cause::Api { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The API server answered 404.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// Worth another try, or the outcome of a write is unknown: 429, 5xx, no answer.
    pub fn transient(&self) -> bool {
        match &self.cause {
            Cause::Api { code, .. } => *code == 429 || *code >= 500,
            Cause::Transport { .. } | Cause::Timeout => true,
            _ => false,
        }
    }

    /// The error as the core's error of `kind` (the message unchanged); a policy
    /// refusal stays one ([`ErrorKind::Policy`]).
    pub fn into_error(self, kind: ErrorKind) -> Error {
        let kind = if self.cause == Cause::Policy {
            ErrorKind::Policy
        } else {
            kind
        };
        Error::new(kind, self.message)
    }
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for KubeError {}

/// Joins the problems of calls made together in one line: calls that failed for the same
/// reason are named together once (`cannot delete pods, services labelled x: <reason>`),
/// not repeated for each.
pub(crate) fn summarise(problems: &[(String, KubeError)]) -> String {
    // (verb+objects, reason) pairs keep their first order.
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for (what, e) in problems {
        match groups.iter_mut().find(|(reason, _)| *reason == e.message) {
            Some((_, whats)) => whats.push(what),
            None => groups.push((e.message.clone(), vec![what])),
        }
    }
    groups
        .iter()
        .map(|(reason, whats)| format!("{}: {reason}", join_whats(whats)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `cannot delete pods labelled x`, `cannot delete services labelled x` →
/// `cannot delete pods, services labelled x` (a common prefix and suffix said once).
fn join_whats(whats: &[&str]) -> String {
    if whats.len() == 1 {
        return whats[0].to_string();
    }
    let split = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    let words: Vec<Vec<String>> = whats.iter().map(|w| split(w)).collect();
    let shortest = words.iter().map(Vec::len).min().unwrap_or(0);
    let prefix = (0..shortest)
        .take_while(|&i| words.iter().all(|w| w[i] == words[0][i]))
        .count();
    let suffix = (0..shortest - prefix)
        .take_while(|&i| {
            words
                .iter()
                .all(|w| w[w.len() - 1 - i] == words[0][words[0].len() - 1 - i])
        })
        .count();
    if prefix + suffix == 0 {
        return whats.join(", ");
    }
    let middles: Vec<String> = words
        .iter()
        .map(|w| w[prefix..w.len() - suffix].join(" "))
        .collect();
    let head = words[0][..prefix].join(" ");
    let tail = words[0][words[0].len() - suffix..].join(" ");
    [head, middles.join(", "), tail]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_carry_reason_and_code() {
        let e = kube::Error::Api(Box::new(
            kube::core::Status::failure("secrets is forbidden", "Forbidden").with_code(403),
        ));
        let e = KubeError::from_kube(&e, 1).context("cannot create Secret \"a-env\"");
        assert_eq!(e.code(), Some(403));
        assert_eq!(e.reason(), Some("Forbidden"));
        assert!(!e.transient());
        assert_eq!(
            e.message,
            "cannot create Secret \"a-env\": Forbidden (HTTP 403): secrets is forbidden"
        );
        assert_eq!(
            e.into_error(ErrorKind::Start).message,
            "cannot create Secret \"a-env\": Forbidden (HTTP 403): secrets is forbidden"
        );
    }

    #[test]
    fn the_same_reason_is_said_once() {
        let reason = KubeError::new(
            Cause::Transport {
                url: "https://k:6443".into(),
                refused: true,
            },
            "connection to the Kubernetes API at https://k:6443 failed: refused (5 attempts)",
        );
        let other = KubeError::new(
            Cause::Api {
                reason: "Forbidden".into(),
                code: 403,
            },
            "Forbidden (HTTP 403)",
        );
        let problems = vec![
            (
                "cannot delete pods labelled tycho-guid=g".to_string(),
                reason.clone(),
            ),
            (
                "cannot delete services labelled tycho-guid=g".to_string(),
                reason.clone(),
            ),
            (
                "cannot delete secrets labelled tycho-guid=g".to_string(),
                other,
            ),
            (
                "cannot delete secrets labelled tycho-guid=g".to_string(),
                reason,
            ),
        ];
        assert_eq!(
            summarise(&problems),
            "cannot delete pods, services, secrets labelled tycho-guid=g: connection to the Kubernetes API at https://k:6443 failed: refused (5 attempts); cannot delete secrets labelled tycho-guid=g: Forbidden (HTTP 403)"
        );
    }
}
