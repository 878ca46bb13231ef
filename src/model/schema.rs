//! The request schema shared by the `tycho api` server, the command line and the Python
//! bindings: the JSON body of a request checked against a component of the embedded
//! api-schema (OpenAPI 3.0 schema objects).
//!
//! The schema objects use OpenAPI 3.0's `nullable`, which JSON Schema validators do not
//! know, and only a handful of keywords (`$ref`, `type`, `nullable`, `enum`, `required`,
//! `properties`, `additionalProperties`, `items`, `anyOf`), so a small checker (the same
//! rules as `tycho.actions.check_schema`) does the job. A keyword the checker does not know
//! makes [`check_schema_supported`] fail, which a unit test runs on the embedded schema.

use crate::error::{Error, ErrorKind, Result};
use serde_json::Value;
use std::sync::OnceLock;

/// The log target of a defect of the embedded schema: the API's (`crate::server::LOG_TARGET`,
/// the same text), named here so the model does not import the server.
const LOG_TARGET: &str = "tycho::api";

/// The API schema shipped with the Python package (the same file `tycho.actions` reads).
pub const API_SCHEMA_YAML: &str = include_str!("../../python/tycho/api-schema.yaml");

/// The parsed API schema.
pub fn api_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The file is part of the build; a parse failure is a build defect caught by tests.
        crate::text::yaml::load(API_SCHEMA_YAML).unwrap_or_else(|e| {
            log::error!(target: LOG_TARGET, "embedded api-schema.yaml does not parse: {e}");
            Value::Null
        })
    })
}

/// One problem found in a request: where (a dotted path, `""` for the body itself) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, as `system.services.web.ports[0]`; empty for the whole body.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// `field: message`, or the message alone for the body.
    pub fn describe(&self) -> String {
        if self.field.is_empty() {
            format!("request body {}", self.message)
        } else {
            format!("field '{}' {}", self.field, self.message)
        }
    }
}

const KNOWN_KEYWORDS: &[&str] = &[
    "$ref",
    "type",
    "nullable",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "anyOf",
    // annotations only
    "description",
    "example",
    "title",
];

/// Checks that every schema object under `schema` uses only keywords the checker applies.
/// An unsupported keyword is a bug in the embedded schema: an [`ErrorKind::Internal`]
/// error whose field is the JSON pointer of the schema object (`#/properties/x`).
pub fn check_schema_supported(schema: &Value) -> Result<()> {
    fn walk(node: &Value, at: &str) -> Result<()> {
        let Some(map) = node.as_object() else {
            return Ok(());
        };
        for (key, value) in map {
            if !KNOWN_KEYWORDS.contains(&key.as_str()) {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("unsupported schema keyword '{key}' at {at}"),
                )
                .at(at));
            }
            match key.as_str() {
                "properties" => {
                    for (name, sub) in value.as_object().into_iter().flatten() {
                        walk(sub, &format!("{at}/properties/{name}"))?;
                    }
                }
                "items" | "additionalProperties" => walk(value, &format!("{at}/{key}"))?,
                "anyOf" => {
                    for (i, sub) in value.as_array().into_iter().flatten().enumerate() {
                        walk(sub, &format!("{at}/anyOf/{i}"))?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
    walk(schema, "#")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, wanted: &str) -> bool {
    match wanted {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        // JSON Schema: a number with a zero fractional part is an integer.
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn resolve<'a>(reference: &str, root: &'a Value) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

/// Checks `value` against schema object `schema` (refs resolved in `root`).
// Long because: one case per keyword of the schema subset, as `tycho.actions.check_schema` has them.
pub fn check(value: &Value, schema: &Value, root: &Value, path: &str, out: &mut Vec<Problem>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        match resolve(reference, root) {
            Some(target) => check(value, target, root, path, out),
            None => out.push(Problem {
                field: path.into(),
                message: format!("cannot be checked: unknown schema reference {reference}"),
            }),
        }
        return;
    }
    if value.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let mut first: Option<Vec<Problem>> = None;
        let mut matched = false;
        for option in options {
            let mut errs = Vec::new();
            check(value, option, root, path, &mut errs);
            if errs.is_empty() {
                matched = true;
                break;
            }
            first.get_or_insert(errs);
        }
        if !matched {
            let forms: Vec<String> = options
                .iter()
                .map(|o| {
                    o.get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("schema")
                        .to_string()
                })
                .collect();
            out.push(Problem {
                field: path.into(),
                message: format!(
                    "must be one of: {} (got {})",
                    forms.join(", "),
                    type_name(value)
                ),
            });
            return;
        }
    }
    if let Some(wanted) = schema.get("type").and_then(Value::as_str) {
        if !has_type(value, wanted) {
            out.push(Problem {
                field: path.into(),
                message: format!("must be of type {wanted}, not {}", type_name(value)),
            });
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
            out.push(Problem {
                field: path.into(),
                message: format!("must be one of {}", list.join(", ")),
            });
        }
    }
    if let Value::Object(map) = value {
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(key) {
                out.push(Problem {
                    field: join(path, key),
                    // The property's own name too: what tycho.actions always said.
                    message: format!("is required (missing required property '{key}')"),
                });
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties");
        for (key, item) in map {
            if let Some(sub) = properties.and_then(|p| p.get(key)) {
                check(item, sub, root, &join(path, key), out);
            } else {
                match extra {
                    Some(Value::Bool(false)) => out.push(Problem {
                        field: join(path, key),
                        message: "is not an allowed property".into(),
                    }),
                    Some(sub @ Value::Object(_)) => check(item, sub, root, &join(path, key), out),
                    _ => {}
                }
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(item, sub, root, &format!("{path}[{i}]"), out);
        }
    }
}

/// Checks a request body against component `component` of the API schema.
pub fn validate(component: &str, body: &Value) -> Result<(), Vec<Problem>> {
    let root = api_schema();
    let Some(schema) = root.pointer(&format!("/components/schemas/{component}")) else {
        return Err(vec![Problem {
            field: String::new(),
            message: format!("cannot be checked: the API schema lacks component {component}"),
        }]);
    };
    let mut problems = Vec::new();
    check(body, schema, root, "", &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The byte offset of serde_json's 1-based `line` and `column` in `text` (the end of
/// `text` when past it).
pub fn offset_of(text: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].iter().position(|b| *b == b'\n') {
            Some(p) => start += p + 1,
            None => return text.len(),
        }
    }
    (start + column.saturating_sub(1)).min(text.len())
}

/// Longest field path named in an error (deep nesting makes long paths).
const FIELD_PATH_LIMIT: usize = 200;

/// The field (as [`Problem::field`] writes it) being read at byte `offset` of a JSON
/// text whose part before `offset` is well-formed, such as where serde_json stopped;
/// None when the offset is outside any value (e.g. at a key). A scan without
/// recursion: any depth is fine.
pub fn field_at(text: &[u8], offset: usize) -> Option<String> {
    enum Frame {
        Object { key: Option<String>, value: bool },
        Array { index: usize },
    }
    let text = &text[..offset.min(text.len())];
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                value: false,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, value }) => {
                    *key = None;
                    *value = false;
                }
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { value, .. }) = stack.last_mut() {
                    *value = true;
                }
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < text.len() && text[j] != b'"' {
                    j += if text[j] == b'\\' { 2 } else { 1 };
                }
                let raw = &text[start..j.min(text.len())];
                if let Some(Frame::Object { key, value: false }) = stack.last_mut() {
                    let decoded: String =
                        serde_json::from_slice::<String>(&[b"\"", raw, b"\""].concat())
                            .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned());
                    *key = Some(decoded);
                }
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object {
                key: Some(k),
                value: true,
            } => path = join(&path, k),
            Frame::Object { .. } => return None,
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
        if path.len() > FIELD_PATH_LIMIT {
            let mut cut = FIELD_PATH_LIMIT;
            while !path.is_char_boundary(cut) {
                cut -= 1;
            }
            path.truncate(cut);
            path.push('…');
            break;
        }
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn embedded_schema_parses_and_uses_known_keywords() {
        let root = api_schema();
        let schemas = root
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .expect("components");
        for name in [
            "System",
            "StatusRequest",
            "DeleteRequest",
            "ModifyRequest",
            "Response",
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
        for (name, schema) in schemas {
            check_schema_supported(schema).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn start_request_checks() {
        let ok = json!({"name": "a", "principal": "{}", "system": {"services": {"web": {"image": "nginx", "ports": ["80", 81]}}}, "env": null});
        assert!(validate("System", &ok).is_ok());
        let bad = json!({"name": 5, "principal": "{}", "system": {"services": {"web": {"ports": [true]}}}});
        let errs = validate("System", &bad).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"name"), "{errs:?}");
        assert!(fields.contains(&"system.services.web.image"), "{errs:?}");
        assert!(fields.contains(&"system.services.web.ports[0]"), "{errs:?}");
        let errs = validate("System", &json!([])).unwrap_err();
        assert_eq!(errs[0].field, "");
        assert!(errs[0]
            .describe()
            .contains("must be of type object, not array"));
    }

    #[test]
    fn nullable_and_any_of() {
        assert!(validate("StatusRequest", &json!({"name": null})).is_ok());
        assert!(validate("StatusRequest", &json!({})).is_ok());
        assert!(validate("StatusRequest", &json!({"username": 3})).is_err());
        assert!(validate("ModifyRequest", &json!({"tycho-guid": "x", "cpu": null})).is_ok());
        assert!(validate("ModifyRequest", &json!({"tycho-guid": "x", "cpu": 1.5})).is_ok());
        let errs = validate("ModifyRequest", &json!({"tycho-guid": "x", "cpu": []})).unwrap_err();
        assert_eq!(errs[0].field, "cpu");
        let errs = validate("DeleteRequest", &json!({})).unwrap_err();
        assert_eq!(
            errs[0].describe(),
            "field 'name' is required (missing required property 'name')"
        );
    }

    #[test]
    fn field_at_names_where_json_parsing_stopped() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"system": {"services": {"web": {"deploy": {"cpus": 1e400}}}}}"#,
                Some("system.services.web.deploy.cpus"),
            ),
            (
                r#"{"a": [1, 2, {"b\"c": [0, 1e999]}]}"#,
                Some("a[2].b\"c[1]"),
            ),
            ("[1, 2, 3e999]", Some("[2]")),
            ("1e999", Some("")),
            (r#"{"a": 1, "b": 1e999}"#, Some("b")),
        ];
        for (text, want) in cases {
            let e = serde_json::from_str::<Value>(text).unwrap_err();
            let at = offset_of(text.as_bytes(), e.line(), e.column());
            assert_eq!(
                field_at(text.as_bytes(), at).as_deref(),
                *want,
                "{text}: {e}"
            );
        }
        let deep = format!("{{\"a\":\n{}", "[".repeat(100_000));
        let e = serde_json::from_str::<Value>(&deep).unwrap_err();
        let at = offset_of(deep.as_bytes(), e.line(), e.column());
        let field = field_at(deep.as_bytes(), at).unwrap();
        assert!(
            field.starts_with("a[0][0]") && field.ends_with('…'),
            "{field}"
        );
        assert!(field.len() < 220);
    }
}
