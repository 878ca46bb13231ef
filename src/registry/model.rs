//! The registry document (`app-registry.yaml`) as tycho reads it, and the URL and path
//! helpers its compilation needs (Python's `urljoin`, `posixpath.dirname`/`join` and
//! `string.Template.safe_substitute`, which the original used).

use crate::error::{Error, ErrorKind, Result};
use serde_json::{Map, Value};

/// A registry error (`ContextException` in Python).
pub fn context_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Context, message)
}

/// The `contexts` mapping of a registry (empty when missing or null).
pub fn contexts(registry: &Value) -> Map<String, Value> {
    match registry.get("contexts") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    }
}

/// The repositories in registry order: `(name, url)`; a missing url is "".
pub fn repositories(registry: &Value) -> Vec<(String, String)> {
    match registry.get("repositories") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(name, repo)| {
                let url = match repo.get("url") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => crate::text::pyfmt::py_str(other),
                };
                (name.clone(), url)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The template variables of spec files (`settings`; `{}` when missing).
pub fn settings(registry: &Value) -> Value {
    match registry.get("settings") {
        Some(v @ Value::Object(_)) => v.clone(),
        _ => Value::Object(Map::new()),
    }
}

/// The list of context names under `key` (`extends` or `mixin`) of a context.
pub fn name_list(context: &Value, key: &str) -> Vec<String> {
    match context.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => crate::text::pyfmt::py_str(other),
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The `apps` of a context (empty when missing or null).
pub fn context_apps(context: &Value) -> Map<String, Value> {
    match context.get("apps") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    }
}

/// True when `url` starts with a URL scheme (`http:`, `https:`, ...), as
/// `urllib.parse.urlsplit(url).scheme` would find one.
pub fn is_absolute_url(url: &str) -> bool {
    match url.find(':') {
        Some(i) if i > 0 => {
            let scheme = &url[..i];
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        _ => false,
    }
}

/// `urljoin(base, reference)` for the absolute HTTP(S) bases the registry uses.
pub fn url_join(base: &str, reference: &str) -> Result<String> {
    if base.is_empty() {
        return Ok(reference.to_string());
    }
    if is_absolute_url(reference) {
        return Ok(reference.to_string());
    }
    let base_url = url::Url::parse(base)
        .map_err(|e| context_error(format!("tycho_config_url {base:?} is not a URL: {e}")))?;
    base_url
        .join(reference)
        .map(String::from)
        .map_err(|e| context_error(format!("cannot resolve {reference:?} against {base}: {e}")))
}

/// `posixpath.dirname(path)`.
pub fn posix_dirname(path: &str) -> String {
    let head = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    if !head.is_empty() && head.chars().any(|c| c != '/') {
        head.trim_end_matches('/').to_string()
    } else {
        head.to_string()
    }
}

/// `posixpath.join(a, b)` for a relative `b`.
pub fn posix_join(a: &str, b: &str) -> String {
    if b.starts_with('/') {
        b.to_string()
    } else if a.is_empty() || a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_ident(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// `string.Template(text).safe_substitute(mapping)`: `$name` and `${name}` are replaced
/// when `name` is in `mapping`, `$$` becomes `$`, anything else is left as it is.
pub fn safe_substitute(text: &str, mapping: &[(String, String)]) -> String {
    let lookup = |name: &str| mapping.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        // "$$"
        if chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        // "${name}"
        if chars.get(i + 1) == Some(&'{') {
            let start = i + 2;
            let mut j = start;
            if j < chars.len() && is_ident_start(chars[j]) {
                j += 1;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                if chars.get(j) == Some(&'}') {
                    let name: String = chars[start..j].iter().collect();
                    match lookup(&name) {
                        Some(v) => out.push_str(v),
                        None => out.extend(&chars[i..=j]),
                    }
                    i = j + 1;
                    continue;
                }
            }
            out.push('$');
            i += 1;
            continue;
        }
        // "$name"
        let start = i + 1;
        if start < chars.len() && is_ident_start(chars[start]) {
            let mut j = start + 1;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            let name: String = chars[start..j].iter().collect();
            match lookup(&name) {
                Some(v) => out.push_str(v),
                None => out.extend(&chars[i..j]),
            }
            i = j;
            continue;
        }
        out.push('$');
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_substitution_like_python() {
        let map = vec![
            ("repo".to_string(), "https://r.example/x".to_string()),
            ("a_1".to_string(), "A".to_string()),
        ];
        assert_eq!(
            safe_substitute("$repo/app/spec.yaml", &map),
            "https://r.example/x/app/spec.yaml"
        );
        assert_eq!(
            safe_substitute("${repo}z $a_1-", &map),
            "https://r.example/xz A-"
        );
        assert_eq!(
            safe_substitute("$$repo $other ${nope} $ $9", &map),
            "$repo $other ${nope} $ $9"
        );
        assert_eq!(safe_substitute("${repo", &map), "${repo");
        assert_eq!(safe_substitute("$repox", &map), "$repox");
    }

    #[test]
    fn posix_paths_like_python() {
        assert_eq!(
            posix_dirname("https://h/a/b/docker-compose.yaml"),
            "https://h/a/b"
        );
        assert_eq!(posix_dirname("file"), "");
        assert_eq!(posix_dirname("/file"), "/");
        assert_eq!(posix_dirname("a//b"), "a");
        assert_eq!(
            posix_join("https://h/a", "icon.png"),
            "https://h/a/icon.png"
        );
        assert_eq!(posix_join("", "icon.png"), "icon.png");
        assert_eq!(posix_join("a/", "icon.png"), "a/icon.png");
    }

    #[test]
    fn urls() {
        assert!(is_absolute_url("https://x/y"));
        assert!(!is_absolute_url("apps/x"));
        assert!(!is_absolute_url("$repo/x"));
        assert_eq!(
            url_join("http://h:1/registry/", "apps").unwrap(),
            "http://h:1/registry/apps"
        );
        assert_eq!(
            url_join("http://h:1/registry/", "../other/x").unwrap(),
            "http://h:1/other/x"
        );
        assert_eq!(
            url_join("http://h/registry/", "https://o/p").unwrap(),
            "https://o/p"
        );
        assert_eq!(url_join("", "apps").unwrap(), "apps");
    }
}
