//! The JSON error answer every part of the server sends (routes, auth, the event stream):
//! the original's `{status, result, message}` shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `{status, result, message}` with HTTP `code`; status "error", result `{"error": message}`
/// (plus `"field"` when one field is at fault).
pub fn error_response(code: StatusCode, message: &str, field: Option<&str>) -> Response {
    let mut result = json!({"error": message});
    if let Some(f) = field {
        result["field"] = json!(f);
    }
    (
        code,
        Json(json!({"status": "error", "result": result, "message": message})),
    )
        .into_response()
}
