//! `GET /openapi.json`: an OpenAPI 3.0 document of exactly the routes this server has,
//! with the request and response schemas of the embedded api-schema (and the event
//! stream's, `GET /system/events`).

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
    (
        "/system/stop",
        "stop",
        "StopRequest",
        "Stop a system: scale it to 0, keeping its Services, token Secret, claims and NetworkPolicy (idempotent).",
        "The outcome; result is {name, deployments: {name: replicas}} (Docker: {name, containers}).",
    ),
    (
        "/system/resume",
        "resume",
        "ResumeRequest",
        "Resume a stopped system with the replica count it had (idempotent).",
        "The outcome; result is {name, deployments: {name: replicas}} (Docker: {name, containers}).",
    ),
    (
        "/system/touch",
        "touch",
        "TouchRequest",
        "Record activity of a system now (its last-activity annotation), for culling.",
        "The outcome; result is {name, deployments}.",
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

/// `GET /system/events`: Server-Sent Events of a system's (or a user's systems')
/// progress.
// Long because: one OpenAPI path object written out as a JSON literal.
fn events_path(with_auth: bool) -> Value {
    let progress = json!({
        "type": "object",
        "required": ["sid", "progress", "phase", "message", "ready", "failed"],
        "properties": {
            "sid": {"type": "string"},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "phase": {"type": "string", "enum": ["Pending", "Scheduling", "Pulling", "Starting", "Running", "Ready", "Failed", "Stopped", "Deleted"]},
            "message": {"type": "string"},
            "ready": {"type": "boolean"},
            "failed": {"type": "boolean"},
            "reason": {"type": "string", "nullable": true}
        }
    });
    let end = json!({
        "type": "object",
        "required": ["sid", "end"],
        "properties": {
            "sid": {"type": "string"},
            "end": {"type": "string", "enum": ["ready", "failed", "deleted", "timeout"]},
            "reason": {"type": "string", "nullable": true}
        }
    });
    let error = |text: &str| response_ref(text);
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "A stream of Server-Sent Events: `event: progress` with a Progress object as `data` at each change of phase, readiness, reason or message; one `event: end` with an End object per system, after which the stream ends (ready, failed, deleted, or the timeout); a comment line every 15 s of silence.",
            "content": {"text/event-stream": {"schema": {
                "type": "string",
                "description": "event: progress|end, then data: one JSON object (x-progress or x-end), then an empty line"
            }}},
            "x-progress": progress,
            "x-end": end
        }),
    );
    responses.insert(
        "400".into(),
        error("Neither or both of name and username, a name that is not a GUID, or a timeout that is not a positive number."),
    );
    if with_auth {
        responses.insert("401".into(), error("Missing or wrong bearer token."));
    }
    responses.insert(
        "404".into(),
        error("No system with that GUID, or the user has no systems."),
    );
    responses.insert(
        "502".into(),
        error("The Kubernetes API server could not be read."),
    );
    let mut busy = error(
        "The server is busy: too many event streams open (--max-event-streams). Retry after Retry-After seconds.",
    );
    busy["headers"] = json!({"Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"}
    }});
    responses.insert("503".into(), busy);
    // One exploded form object (`?name=G` or `?username=U`, and `timeout`): OpenAPI 3.0
    // says "exactly one of name and username" only of an object's properties.
    let label = "^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
    let query = json!({
        "name": "query",
        "in": "query",
        "required": true,
        "style": "form",
        "explode": true,
        "description": "name: the system's GUID; or username: follow every system of this user (those it has when the stream begins, at most 64); timeout: seconds the stream lasts at most (at most the server's --events-timeout, 600 by default).",
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": label, "maxLength": 63},
                "username": {"type": "string", "minLength": 1, "maxLength": 1024},
                "timeout": {"type": "number", "exclusiveMinimum": true, "minimum": 0, "maximum": 86400}
            },
            "additionalProperties": false,
            "oneOf": [
                {"required": ["name"], "not": {"required": ["username"]}},
                {"required": ["username"], "not": {"required": ["name"]}}
            ]
        }
    });
    json!({"get": {
        "summary": "Follow a system (name = GUID) or a user's systems until ready, failed, deleted or the timeout: progress events as Server-Sent Events.",
        "operationId": "events",
        "parameters": [query],
        "responses": responses
    }})
}

/// Builds the document; `with_auth` adds the bearer scheme and 401 responses.
// Long because: every operation's path item and responses (and the auth parts) built in one pass, as the served document reads.
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
    paths.insert("/system/events".into(), events_path(with_auth));
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
            assert_eq!(doc["paths"].as_object().unwrap().len(), 10);
            let events = &doc["paths"]["/system/events"]["get"]["responses"];
            assert!(events["200"]["content"]["text/event-stream"].is_object());
            assert_eq!(events.get("401").is_some(), auth);
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
