//! Tycho configuration (`conf/tycho.yaml`): the built-in default and loading from a file.

use crate::error::{Error, Result};
use serde_json::Value;
use std::sync::OnceLock;

/// The built-in configuration text, shipped as `tycho/conf/tycho.yaml` too.
pub const DEFAULT_CONFIG: &str = include_str!("../python/tycho/conf/tycho.yaml");

/// The built-in configuration, parsed once.
pub fn default_config() -> &'static Value {
    static CONFIG: OnceLock<Value> = OnceLock::new();
    CONFIG.get_or_init(|| {
        crate::text::yaml::load(DEFAULT_CONFIG).expect("built-in tycho.yaml parses")
    })
}

/// Loads a configuration file.
pub fn load_file(path: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read config {path}: {e}")).caused_by(e))?;
    crate::text::yaml::load(&text).map_err(|e| Error::config(format!("config {path}: {e}")))
}

/// Follows `keys` into nested mappings. Every path the core reads must be under one
/// of [`READ_PATHS`].
pub fn lookup<'a>(config: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(config, |v, k| v.get(*k))
}

/// Every part of a configuration the core reads. A configuration handed over from
/// Python (`tycho.config.Config.conf`, often large) is converted only along these
/// paths; the test `read_paths_cover_every_lookup` holds the list to the code.
pub const READ_PATHS: &[&[&str]] = &[
    &["tycho", "templates", "paths"],
    &["tycho", "compute", "placement"],
    &["tycho", "compute", "system", "access_token_env"],
    &["tycho", "compute", "system", "strict"],
    &["tycho", "compute", "system", "volumes"],
    &["tycho", "compute", "system", "defaults", "securityContext"],
    &["tycho", "compute", "system", "default_limits"],
    &["tycho", "docker"],
    &["tycho", "policy"],
];

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

/// How a principal's access token reaches the containers
/// (`tycho.compute.system.access_token_env`, overridden by `TYCHO_ACCESS_TOKEN_ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTokenEnv {
    /// `ACCESS_TOKEN` (and the principal's token fields) read from a per-system Secret
    /// with `valueFrom.secretKeyRef` (the default).
    Secret,
    /// The token written into the pod spec as a literal value (appstore's vendored copy).
    Literal,
    /// No token in the containers at all.
    Off,
}

impl AccessTokenEnv {
    /// The setting's spelling in conf/tycho.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessTokenEnv::Secret => "secret",
            AccessTokenEnv::Literal => "literal",
            AccessTokenEnv::Off => "off",
        }
    }
}

/// Name of the `access_token_env` setting, as error messages cite it.
pub const ACCESS_TOKEN_ENV_SETTING: &str = "tycho.compute.system.access_token_env";

/// Reads `tycho.compute.system.access_token_env` (`secret`, `literal` or `off`; default
/// `secret`); a non-empty `TYCHO_ACCESS_TOKEN_ENV` environment variable takes precedence.
pub fn access_token_env(config: &Value) -> Result<AccessTokenEnv> {
    access_token_env_with(config, crate::environment::access_token_env())
}

/// [`access_token_env`] with `TYCHO_ACCESS_TOKEN_ENV`'s value given (`from_env`).
pub fn access_token_env_with(config: &Value, from_env: Option<String>) -> Result<AccessTokenEnv> {
    let (raw, source) = match from_env {
        Some(v) => (Value::String(v), "TYCHO_ACCESS_TOKEN_ENV"),
        None => match lookup(config, &["tycho", "compute", "system", "access_token_env"]) {
            None | Some(Value::Null) => return Ok(AccessTokenEnv::Secret),
            Some(v) => (v.clone(), ACCESS_TOKEN_ENV_SETTING),
        },
    };
    // YAML 1.1 reads a bare `off` as false.
    match &raw {
        Value::Bool(false) => return Ok(AccessTokenEnv::Off),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "secret" => return Ok(AccessTokenEnv::Secret),
            "literal" => return Ok(AccessTokenEnv::Literal),
            "off" => return Ok(AccessTokenEnv::Off),
            _ => {}
        },
        _ => {}
    }
    let mut shown = crate::text::pyfmt::py_str(&raw);
    if shown.chars().count() > 200 {
        shown = shown.chars().take(200).collect::<String>() + "...";
    }
    Err(Error::config(format!(
        "{source} must be one of secret, literal, off (got {shown:?})"
    )))
}

/// `tycho.compute.system.strict`: a compose warning (a key not converted, an undefined
/// template variable) is an error instead. True for `true` or the strings "true"/"yes"/"1".
pub fn strict(config: &Value) -> bool {
    match lookup(config, &["tycho", "compute", "system", "strict"]) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each configuration read in src/ (a `lookup` of a key list, a JSON-pointer read
    /// under tycho) is of a path under one of READ_PATHS.
    #[test]
    fn read_paths_cover_every_lookup() {
        fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    files(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut all = Vec::new();
        files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut all,
        );
        let covered = |keys: &[String]| {
            READ_PATHS
                .iter()
                .any(|p| keys.len() >= p.len() && p.iter().zip(keys).all(|(a, b)| a == b))
        };
        let mut seen = 0;
        for path in all {
            let text = std::fs::read_to_string(&path).unwrap();
            let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            for (i, _) in flat.match_indices("lookup(") {
                let rest = &flat[i..];
                let Some(open) = rest.find("&[\"") else {
                    continue;
                };
                if open > 60 {
                    continue; // not this call's argument
                }
                let close = rest[open..].find(']').unwrap() + open;
                let keys: Vec<String> = rest[open + 2..close]
                    .split(',')
                    .map(|k| k.trim().trim_matches('"').to_string())
                    .filter(|k| !k.is_empty())
                    .collect();
                if keys.first().is_some_and(|k| k == "tycho") {
                    seen += 1;
                    assert!(
                        covered(&keys),
                        "{}: {keys:?} is not under READ_PATHS",
                        path.display()
                    );
                }
            }
            for (i, _) in flat.match_indices("pointer(") {
                let rest = &flat[i..(i + 80).min(flat.len())];
                let Some(start) = rest.find("\"/tycho/") else {
                    continue;
                };
                let end = rest[start + 1..].find('"').unwrap() + start + 1;
                let keys: Vec<String> = rest[start + 2..end]
                    .split('/')
                    .take_while(|k| !k.contains('{'))
                    .map(String::from)
                    .collect();
                seen += 1;
                assert!(
                    covered(&keys),
                    "{}: {keys:?} is not under READ_PATHS",
                    path.display()
                );
            }
        }
        assert!(seen >= 6, "found only {seen} configuration reads");
    }
}
