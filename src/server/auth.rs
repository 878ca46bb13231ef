//! Bearer-token authentication (when `TYCHO_API_TOKEN` is set) and the bind-address rule.

use super::response::error_response;
use crate::error::{Error, Result};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Paths answered without a token: probes (kubelets send none) and the API description
/// (and `/metrics` unless `--metrics token`, see [`super::MetricsAccess`]).
pub const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/openapi.json"];

/// What [`require_token`] checks against.
#[derive(Clone, Debug)]
pub struct AuthState {
    /// The configured token (None: every path is open).
    pub token: Option<Arc<str>>,
    /// Paths answered without a token.
    pub open_paths: Arc<[&'static str]>,
}

/// Compares `given` with `expected` in time that depends only on `expected`'s length.
pub fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    let same_len = given.len() == expected.len();
    // With a different length, compare `expected` with itself so the work is the same.
    let other = if same_len { given } else { expected };
    let equal: bool = expected.ct_eq(other).into();
    equal & same_len
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(value: &HeaderValue) -> Option<&[u8]> {
    let raw = value.as_bytes();
    let (scheme, rest) = raw.split_at(raw.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Middleware: with a configured token, every path but the open ones needs it.
pub async fn require_token(
    State(auth): State<AuthState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = auth.token else {
        return next.run(request).await;
    };
    if auth.open_paths.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(bearer);
    let (ok, message) = match given {
        None => (
            false,
            "missing bearer token (Authorization: Bearer <token>)",
        ),
        Some(t) if token_matches(t, expected.as_bytes()) => (true, ""),
        Some(_) => (false, "invalid bearer token"),
    };
    if ok {
        return next.run(request).await;
    }
    let mut response = error_response(StatusCode::UNAUTHORIZED, message, None);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tycho\""),
    );
    response
}

/// Whether serving on `addrs` is allowed: every loopback address always; any other
/// address only with a token or `--insecure`. The refusal is an input error at `host`.
pub fn check_bind(addrs: &[SocketAddr], has_token: bool, insecure: bool) -> Result<()> {
    if has_token || insecure {
        return Ok(());
    }
    match addrs.iter().find(|a| !a.ip().is_loopback()) {
        None => Ok(()),
        Some(a) => Err(Error::input(format!(
            "refusing to serve on non-loopback address {a} without authentication: set TYCHO_API_TOKEN, or pass --insecure"
        ))
        .at("host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"secret2", b"secret"));
        assert!(!token_matches(b"", b"secret"));
    }

    #[test]
    fn bearer_header() {
        let v = HeaderValue::from_static("Bearer abc");
        assert_eq!(bearer(&v), Some(&b"abc"[..]));
        let v = HeaderValue::from_static("bearer  abc ");
        assert_eq!(bearer(&v), Some(&b"abc"[..]));
        assert_eq!(bearer(&HeaderValue::from_static("Basic abc")), None);
        assert_eq!(bearer(&HeaderValue::from_static("Bearer")), None);
        assert_eq!(bearer(&HeaderValue::from_static("Bearer ")), None);
    }

    #[test]
    fn bind_rule() {
        let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let lo6: SocketAddr = "[::1]:5000".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:5000".parse().unwrap();
        assert!(check_bind(&[lo, lo6], false, false).is_ok());
        let refused = check_bind(&[any], false, false).unwrap_err();
        assert_eq!(refused.kind, crate::error::ErrorKind::Input);
        assert_eq!(refused.field.as_deref(), Some("host"));
        assert!(refused
            .message
            .starts_with("refusing to serve on non-loopback address 0.0.0.0:5000"));
        assert!(check_bind(&[any], true, false).is_ok());
        assert!(check_bind(&[any], false, true).is_ok());
    }
}
