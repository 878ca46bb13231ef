//! `GET /openapi.json`: an OpenAPI 3.0 document of exactly the routes this server has,
//! with the request and response schemas of the embedded api-schema.

use crate::model::schema::api_schema;
use serde_json::{json, Map, Value};

/// The `/system/*` operations: path, operationId, request component, summary, 200 text.
pub const OPERATIONS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "/system/start",
        "start",
        "System",
        "Start a system from a docker-compose document.",
        "The outcome; result is {name, sid, containers, conn_string}, or {error} when status is \"error\".",
    ),
    (
        "/system/status",
        "status",
        "StatusRequest",
        "Status of one system (name = GUID), of a user's systems, or of all systems.",
        "The outcome; result is a list of status rows.",
    ),
    (
        "/system/delete",
        "delete",
        "DeleteRequest",
        "Delete a system and everything it created.",
        "The outcome; result is an empty object.",
    ),
    (
        "/system/modify",
        "modify",
        "ModifyRequest",
        "Change labels and cpu/memory of a running system.",
        "The outcome; result is {patches}.",
    ),
];

fn response_ref(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}
    })
}

fn probe(summary: &str, ok: &str, failing: Option<&str>) -> Value {
    let schema = json!({
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}, "message": {"type": "string"}}
    });
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": ok, "content": {"application/json": {"schema": schema}}}),
    );
    if let Some(text) = failing {
        responses.insert(
            "503".into(),
            json!({"description": text, "content": {"application/json": {"schema": schema}}}),
        );
    }
    json!({"get": {"summary": summary, "security": [], "responses": responses}})
}

/// Builds the document; `with_auth` adds the bearer scheme and 401 responses.
pub fn document(with_auth: bool) -> Value {
    let source = api_schema();
    let schemas = source
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut paths = Map::new();
    for (path, op, component, summary, ok) in OPERATIONS {
        let mut responses = Map::new();
        responses.insert("200".into(), response_ref(ok));
        responses.insert(
            "400".into(),
            response_ref("The body is not JSON or does not match the request schema; the message names the field."),
        );
        if with_auth {
            responses.insert("401".into(), response_ref("Missing or wrong bearer token."));
        }
        let start = *op == "start";
        if start {
            responses.insert(
                "400".into(),
                response_ref("The body is not JSON or does not match the request schema, or the system is over a cap (TYCHO_MAX_SERVICES services, TYCHO_MAX_PORTS ports per service); the message names the field or the cap."),
            );
        }
        responses.insert(
            "413".into(),
            response_ref(if start {
                "The body is larger than the limit (1 MiB), or compiling it would take more than the server's whole memory budget (--memory-budget)."
            } else {
                "The body is larger than the limit (1 MiB)."
            }),
        );
        let mut busy = response_ref(if start {
            "The server is busy: too many starts in progress (--max-starts), or requests in flight take its memory budget (--memory-budget). Retry after Retry-After seconds."
        } else {
            "The server is busy: requests in flight take its memory budget (--memory-budget). Retry after Retry-After seconds."
        });
        busy["headers"] = json!({"Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer"}
        }});
        responses.insert("503".into(), busy);
        responses.insert(
            "415".into(),
            response_ref("The body is not sent as application/json."),
        );
        responses.insert(
            "504".into(),
            response_ref("The operation did not finish within the request timeout."),
        );
        paths.insert(
            (*path).into(),
            json!({"post": {
                "summary": summary,
                "operationId": op,
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{component}")}}}
                },
                "responses": responses
            }}),
        );
    }
    paths.insert(
        "/healthz".into(),
        probe("Liveness: the process serves requests.", "Up.", None),
    );
    paths.insert(
        "/readyz".into(),
        probe(
            "Readiness: the Kubernetes API server answers.",
            "Ready.",
            Some("The Kubernetes API server does not answer."),
        ),
    );
    let mut components = json!({"schemas": schemas});
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Tycho",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Launch docker-compose described systems on Kubernetes, list them, change them and take them down. Every /system response is a Response object; operation failures are HTTP 200 with status \"error\" (as tycho-api 1.17.3 answers), bad requests are HTTP 4xx.",
            "license": {"name": "MIT"}
        },
        "paths": paths,
    });
    if with_auth {
        components["securitySchemes"] = json!({"bearerAuth": {"type": "http", "scheme": "bearer"}});
        doc["security"] = json!([{"bearerAuth": []}]);
    }
    doc["components"] = components;
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_references_resolve() {
        for auth in [false, true] {
            let doc = document(auth);
            let text = doc.to_string();
            for part in text.split("\"$ref\":\"#").skip(1) {
                let pointer = &part[..part.find('"').unwrap()];
                assert!(doc.pointer(pointer).is_some(), "{pointer}");
            }
            assert_eq!(doc["paths"].as_object().unwrap().len(), 6);
            assert_eq!(doc.get("security").is_some(), auth);
            let start = &doc["paths"]["/system/start"]["post"]["responses"];
            assert!(start["503"]["description"]
                .as_str()
                .unwrap()
                .contains("--memory-budget"));
            assert!(start["503"]["headers"]["Retry-After"].is_object());
            assert!(start["400"]["description"]
                .as_str()
                .unwrap()
                .contains("TYCHO_MAX_SERVICES"));
        }
    }
}
