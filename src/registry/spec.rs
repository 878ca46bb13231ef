//! App specs (docker-compose files) rendered with the registry `settings`.
//!
//! As tycho-api 1.17.3 did: the compose file is read as YAML, the Python form of the
//! parsed document (`str(dict)`) is rendered as a Jinja2 template with the settings, and
//! the result is read as YAML again. Template expressions therefore work in any string
//! of the document, and values print as Python prints them.

use super::model::{context_error, posix_dirname, posix_join};
use crate::error::Result;
use serde_json::Value;

/// The `.env` settings URL of an app: `.env` beside its spec.
pub fn settings_url(spec_url: &str) -> String {
    posix_join(&posix_dirname(spec_url), ".env")
}

/// Renders the compose `text` fetched from `url` for `app_id` with `settings`.
pub fn render_spec(app_id: &str, url: &str, text: &str, settings: &Value) -> Result<Value> {
    crate::render::with_total_budget(|| render_spec_in(app_id, url, text, settings))
}

fn render_spec_in(app_id: &str, url: &str, text: &str, settings: &Value) -> Result<Value> {
    let document = crate::text::yaml::load(text)
        .map_err(|e| context_error(format!("app {app_id}: spec {url} is not valid YAML: {e}")))?;
    let source = crate::text::pyfmt::py_repr(&document);
    // As in the compose pass of the model: an undefined variable renders empty (as in the
    // original), with one warning naming it and the spec.
    for name in crate::render::undefined_variables(&source, settings) {
        log::warn!(
            target: crate::model::LOG_TARGET,
            "app {app_id}: spec {}: uses the undefined template variable '{}' (not in the registry settings): it renders empty",
            crate::limits::echo(url),
            crate::limits::echo(&name)
        );
    }
    let rendered = crate::render::render_string(&source, settings)
        .map_err(|e| context_error(format!("app {app_id}: cannot render spec {url}: {e}")))?;
    let spec = crate::text::yaml::load(&rendered).map_err(|e| {
        context_error(format!(
            "app {app_id}: spec {url} rendered with the registry settings is not valid YAML: {e}"
        ))
    })?;
    if !spec.is_object() {
        return Err(context_error(format!(
            "app {app_id}: spec {url} is not a mapping"
        )));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_like_the_original() {
        let text = "services:\n  a:\n    image: \"{{ reg }}/a:{{ tag }}\"\n    ports: ['8080']\n    x: null\n    y: true\n";
        let spec = render_spec(
            "a",
            "u",
            text,
            &json!({"reg": "r.example", "tag": "2024.1"}),
        )
        .unwrap();
        assert_eq!(spec["services"]["a"]["image"], "r.example/a:2024.1");
        assert_eq!(spec["services"]["a"]["ports"], json!(["8080"]));
        // str(None) read back as YAML is the string "None", as in the original
        assert_eq!(spec["services"]["a"]["x"], "None");
        assert_eq!(spec["services"]["a"]["y"], json!(true));
        assert!(render_spec("a", "u", "- 1\n", &json!({})).is_err());
        let e = render_spec("a", "http://x/s.yaml", "k: '{{ a.b( }}'\n", &json!({})).unwrap_err();
        assert!(e.message.contains("http://x/s.yaml"), "{}", e.message);
        assert_eq!(
            settings_url("http://h/apps/a/docker-compose.yaml"),
            "http://h/apps/a/.env"
        );
    }
}
