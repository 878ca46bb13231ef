//! The compose templating pass: every string of the compose document rendered with the
//! settings, one string at a time, so a rendered value never turns into YAML structure.
//! A variable the settings do not define renders empty, as in the original, and is
//! reported as a [`Warning`].

use super::warning::Warnings;
use crate::error::{Error, ErrorKind, Result};
use serde_json::Value;

/// Renders a single string as a template with `context` (the compose templating pass).
pub type StringRenderer<'a> = dyn Fn(&str, &Value) -> Result<String> + 'a;

/// Renders a compose string value with the settings, Jinja2 style (the [`StringRenderer`]
/// of a real compile).
pub fn render_setting(source: &str, context: &Value) -> Result<String> {
    crate::render::render_string(source, context).map_err(|e| {
        e.prefixed("compose templating failed")
            .with_kind(ErrorKind::Input)
    })
}

/// Whether `s` holds Jinja syntax (and is rendered).
pub fn has_template_syntax(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Renders every string (keys too) of `v` with `context` and sorts mappings by key,
/// which is what the original's dump → render → load round trip amounts to, without
/// letting a rendered value turn into YAML structure.
pub fn template_pass(
    v: &Value,
    context: &Value,
    render: &StringRenderer<'_>,
    warnings: &mut Warnings,
) -> Result<Value> {
    template_pass_at(v, context, render, &mut Vec::new(), warnings)
}

/// Warns about each variable `source` uses that `context` does not define (it renders
/// empty, as in the original). `service` and `key` say where it was used.
pub fn warn_undefined(
    service: &str,
    key: &str,
    source: &str,
    context: &Value,
    warnings: &mut Warnings,
) {
    for name in crate::render::undefined_variables(source, context) {
        warnings.push(
            service,
            key,
            format!(
                "uses the undefined template variable '{}': it renders empty",
                crate::limits::echo(&name)
            ),
        );
    }
}

/// Where a compose path points: the service (for `services.<name>...`) and the key
/// below it, or no service and the whole path.
fn located(path: &[String]) -> (String, String) {
    match path {
        [first, service, rest @ ..] if first == "services" && !rest.is_empty() => {
            (service.clone(), rest.join("."))
        }
        _ => (String::new(), path.join(".")),
    }
}

/// The compose field path (`services.web.image`) of the value being rendered.
fn field_path(path: &[String]) -> String {
    crate::limits::echo(&path.join("."))
}

fn template_pass_at(
    v: &Value,
    context: &Value,
    render: &StringRenderer<'_>,
    path: &mut Vec<String>,
    warnings: &mut Warnings,
) -> Result<Value> {
    let named = |e: Error, path: &[String]| {
        Error::new(
            e.kind,
            format!("compose field '{}': {}", field_path(path), e.message),
        )
    };
    Ok(match v {
        Value::String(s) if has_template_syntax(s) => {
            let rendered = render(s, context).map_err(|e| named(e, path))?;
            let (service, key) = located(path);
            warn_undefined(&service, &key, s, context, warnings);
            Value::String(rendered)
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                let r = template_pass_at(item, context, render, path, warnings);
                path.pop();
                out.push(r?);
            }
            Value::Array(out)
        }
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = Vec::with_capacity(map.len());
            for (k, item) in map {
                path.push(k.clone());
                let key = if has_template_syntax(k) {
                    let (service, key) = located(path);
                    warn_undefined(&service, &key, k, context, warnings);
                    render(k, context).map_err(|e| named(e, path))
                } else {
                    Ok(k.clone())
                };
                let r = key.and_then(|key| {
                    Ok((
                        key,
                        template_pass_at(item, context, render, path, warnings)?,
                    ))
                });
                path.pop();
                entries.push(r?);
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        other => other.clone(),
    })
}
