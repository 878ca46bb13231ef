//! Fault injection: faults registered through `/__emulator/faults`, matched
//! by method and path regex, counted, and fired as a delay, an error Status
//! or a dropped connection.

use super::{App, DropConnection, RespBody};
use crate::store::{reason_for, status_body};
use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use regex::Regex;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Debug)]
pub(super) struct Fault {
    pub(super) id: u64,
    pub(super) method: Option<String>,
    pub(super) path_regex: Regex,
    pub(super) nth: u64,
    pub(super) times: u64,
    pub(super) every: bool,
    pub(super) action: Value,
    pub(super) seen: u64,
    pub(super) fired: u64,
}

impl Fault {
    pub(super) fn describe(&self) -> Value {
        json!({
            "id": self.id, "method": self.method, "path_regex": self.path_regex.as_str(),
            "nth": self.nth, "times": self.times, "every": self.every, "action": self.action,
            "seen": self.seen, "fired": self.fired,
        })
    }
}

impl App {
    /// Count the request against every matching fault; run delays; return a
    /// terminal action (error status or dropped connection) if one fires.
    pub(super) async fn apply_faults(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<Option<Response<RespBody>>, DropConnection> {
        let mut firing = Vec::new();
        {
            let mut faults = self.faults.lock().unwrap();
            for f in faults.iter_mut() {
                if let Some(m) = &f.method {
                    if m != "*" && !m.eq_ignore_ascii_case(method.as_str()) {
                        continue;
                    }
                }
                if !f.path_regex.is_match(path) {
                    continue;
                }
                f.seen += 1;
                let fires = f.every || (f.seen >= f.nth && f.seen < f.nth + f.times);
                if fires {
                    f.fired += 1;
                    firing.push(f.action.clone());
                }
            }
        }
        let mut terminal = None;
        for action in firing {
            if let Some(ms) = action.get("delay_ms").and_then(Value::as_u64) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if terminal.is_none()
                && (action.get("drop").and_then(Value::as_bool) == Some(true)
                    || action.get("status").is_some())
            {
                terminal = Some(action);
            }
        }
        let Some(action) = terminal else {
            return Ok(None);
        };
        if action.get("drop").and_then(Value::as_bool) == Some(true) {
            return Err(DropConnection);
        }
        let code = action.get("status").and_then(Value::as_u64).unwrap_or(500) as u16;
        let reason = action
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or(reason_for(code))
            .to_string();
        let message = action
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("injected fault: {code} {reason}"));
        let mut body = status_body(code, &reason, &message);
        let mut builder = Response::builder()
            .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(ra) = action.get("retry_after").and_then(Value::as_u64) {
            builder = builder.header(header::RETRY_AFTER, ra.to_string());
            body["details"] = json!({"retryAfterSeconds": ra});
        }
        Ok(Some(
            builder
                .body(Full::new(Bytes::from(body.to_string())).boxed())
                .expect("response"),
        ))
    }

    pub(super) fn add_fault(&self, input: &Value) -> Result<u64, String> {
        let path_regex = input
            .get("path_regex")
            .and_then(Value::as_str)
            .unwrap_or(".*");
        let path_regex = Regex::new(path_regex).map_err(|e| format!("bad path_regex: {e}"))?;
        let action = input
            .get("action")
            .cloned()
            .unwrap_or_else(|| json!({"status": 500}));
        if !action.is_object() {
            return Err("action must be an object".into());
        }
        let id = self.next_fault_id.fetch_add(1, Ordering::SeqCst);
        self.faults.lock().unwrap().push(Fault {
            id,
            method: input
                .get("method")
                .and_then(Value::as_str)
                .map(str::to_uppercase),
            path_regex,
            nth: input.get("nth").and_then(Value::as_u64).unwrap_or(1).max(1),
            times: input
                .get("times")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1),
            every: input.get("every").and_then(Value::as_bool).unwrap_or(false),
            action,
            seen: 0,
            fired: 0,
        });
        Ok(id)
    }
}
