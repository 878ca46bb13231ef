//! The compiler on arbitrary YAML as a compose document and settings.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (compose, env) = text.split_once("\n===\n").unwrap_or((text, ""));
    let Ok(system) = tycho::text::yaml::load(compose) else {
        return;
    };
    let env = tycho::text::yaml::load(env).unwrap_or(json!({}));
    let env = if env.is_object() { env } else { json!({}) };
    let request = json!({
        "name": "fuzz",
        "principal": "{\"username\": \"u\"}",
        "env": env,
        "system": system,
        "services": {},
    });
    let config = tycho::config::default_config().clone();
    let _ = tycho::compile::compile(&config, &request, &Default::default());
});
