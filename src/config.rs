//! Tycho configuration (`conf/tycho.yaml`): the built-in default and loading from a file.

use crate::error::{Error, Result};
use serde_json::Value;
use std::sync::OnceLock;

/// The built-in configuration text, shipped as `tycho/conf/tycho.yaml` too.
pub const DEFAULT_CONFIG: &str = include_str!("../python/tycho/conf/tycho.yaml");

/// The built-in configuration, parsed once.
pub fn default_config() -> &'static Value {
    static CONFIG: OnceLock<Value> = OnceLock::new();
    CONFIG.get_or_init(|| crate::yaml::load(DEFAULT_CONFIG).expect("built-in tycho.yaml parses"))
}

/// Loads a configuration file.
pub fn load_file(path: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read config {path}: {e}")))?;
    crate::yaml::load(&text).map_err(|e| Error::config(format!("config {path}: {e}")))
}

/// Follows `keys` into nested mappings.
pub fn lookup<'a>(config: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(config, |v, k| v.get(*k))
}

/// The template override directories (`tycho.templates.paths`).
pub fn template_paths(config: &Value) -> Vec<String> {
    lookup(config, &["tycho", "templates", "paths"])
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
