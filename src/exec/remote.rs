//! A remote Tycho: the REST API of a `tycho api` server (or the original's) as the
//! executor of `TychoClient` when `REST_API=true` (`crate::bindings::client`).
//!
//! One request is one `POST {url}/{service}` of a JSON body, bounded by a timeout on the
//! whole exchange and by [`ANSWER_LIMIT`] on the answer. The outcome says what the
//! server did ([`Answer`]); the caller words it for its users.

use serde_json::Value;
use std::time::Duration;

/// The most bytes of an answer read (a bigger one is refused as [`Answer::Unreadable`]).
pub const ANSWER_LIMIT: u64 = 64 << 20;

/// The most bytes of a refusal's body read for its JSON error.
pub const REFUSAL_LIMIT: u64 = 1 << 20;

/// What a remote Tycho made of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 200 with a JSON body: the response (`{"status", "result", "message"}`).
    Json(Value),
    /// 400 with the JSON error response of the request's fault (`{"status": "error",
    /// "message", ...}`): a policy refusal, a bad body.
    Refused(Value),
    /// Any other HTTP status (or a 400 without a JSON error body).
    Status(u16),
    /// The server could not be reached (the reason).
    Unreachable(String),
    /// 200, but the body is not JSON or is too big (its head).
    Unreadable(String),
}

/// POSTs `body` (JSON text) to `url` and reads the answer, within `timeout`.
pub fn post(url: &str, body: Vec<u8>, timeout: Duration) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("tycho-client/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .send(&body[..]);
    let mut response = match response {
        Ok(r) => r,
        Err(e) => return Answer::Unreachable(e.to_string()),
    };
    let status = response.status().as_u16();
    if status != 200 && status != 400 {
        return Answer::Status(status);
    }
    let limit = if status == 200 {
        ANSWER_LIMIT
    } else {
        REFUSAL_LIMIT
    };
    let text = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_string();
    if status == 400 {
        return match text
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            Some(body) if is_error_response(&body) => Answer::Refused(body),
            _ => Answer::Status(400),
        };
    }
    match text {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(value) => Answer::Json(value),
            Err(_) => Answer::Unreadable(text.chars().take(200).collect()),
        },
        Err(e) => Answer::Unreadable(e.to_string()),
    }
}

/// Whether `body` is an error response (`status` is `error` and a `message` is given).
fn is_error_response(body: &Value) -> bool {
    body.get("status").and_then(Value::as_str) == Some("error") && body.get("message").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_an_error_response_with_a_message() {
        let refusal = serde_json::json!({"status": "error", "message": "no", "result": {}});
        assert!(is_error_response(&refusal));
        assert!(!is_error_response(&serde_json::json!({"status": "error"})));
        assert!(!is_error_response(
            &serde_json::json!({"status": "success", "message": "ok"})
        ));
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let answer = post(
            &format!("http://127.0.0.1:{port}/system/status"),
            b"{}".to_vec(),
            Duration::from_secs(5),
        );
        assert!(matches!(answer, Answer::Unreachable(_)), "{answer:?}");
    }
}
