//! The start requests the command line sends: from a docker-compose file
//! ([`compose_request`]) or from an app of a registry ([`registry_request`], built as
//! `tycho.context.TychoContext.start` builds it), and the checks of GUID arguments.

use crate::environment::cli::CliEnv;
use crate::error::{Error, ErrorKind, Result};
use crate::registry::{model as registry_model, spec, GrokOptions, HttpCache, Source};
use crate::text::pyfmt::truthy;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Seconds a registry fetch may take (as `tycho.context`'s `HTTP_TIMEOUT`).
const HTTP_TIMEOUT: f64 = 10.0;

/// Parses KEY=value lines like the original's `parse_env`: lines end at `\n` only (a
/// CRLF file keeps its `\r` in the values, as the original's `split("\n")` does), lines
/// without `=` are skipped, the first `=` splits. The one rule for the CLI and
/// `tycho.client`/`tycho.tycho_utils` (through `tycho._native.parse_env`).
pub fn parse_env(text: &str) -> Map<String, Value> {
    text.split('\n')
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

/// The services entry `tycho up` derives from a compose document: the last port of
/// every service that has ports.
pub fn services_from_compose(system: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, svc) in system
        .get("services")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(ports) = svc.get("ports").and_then(Value::as_array) {
            if let Some(p) = ports.last() {
                let text = crate::text::pyfmt::py_str(p);
                let port = text
                    .rsplit(':')
                    .next()
                    .unwrap_or(&text)
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let port = port
                    .parse::<u64>()
                    .map(Value::from)
                    .unwrap_or(Value::String(port));
                out.insert(name.clone(), json!({"port": port}));
            }
        }
    }
    out
}

/// Checks a GUID given with `--guid`: 32 lowercase hex digits, as tycho makes them.
pub fn check_guid(guid: &str) -> Result<()> {
    if guid.len() == 32 && guid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(Error::input(format!(
            "--guid must be 32 lowercase hex digits, got {:?}",
            cut(guid)
        )))
    }
}

/// `s` cut to 200 characters for an error message.
pub fn cut(s: &str) -> String {
    if s.chars().count() > 200 {
        s.chars().take(200).collect::<String>() + "..."
    } else {
        s.to_string()
    }
}

fn default_name(file: &Path) -> String {
    let abs = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let raw = abs
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    // A directory name becomes a valid system name: [a-z0-9-], at most 30 characters.
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = cleaned.trim_matches('-').chars().take(30).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    if trimmed.is_empty() {
        "system".into()
    } else {
        trimmed
    }
}

/// What follows the error of an input over the limit.
const RAISE: &str = "raise the limit with --max-input-size (TYCHO_MAX_INPUT_SIZE)";

/// Reads `file` as text, at most `limit` bytes; `-` is standard input.
pub fn read_input(file: &Path, limit: u64) -> Result<String> {
    if file == Path::new("-") {
        return crate::limits::read_text_limited(
            std::io::stdin().lock(),
            limit,
            "the standard input",
            RAISE,
        );
    }
    read_file(file, limit, &file.display().to_string())
}

/// Reads the file at `path` as text, at most `limit` bytes; `what` names it in errors.
fn read_file(path: &Path, limit: u64, what: &str) -> Result<String> {
    crate::limits::read_file_limited(path, limit, what, RAISE)
        .map_err(|e| Error::input(format!("cannot read {what}: {e}")).caused_by(e))?
}

/// The start request `tycho up` and `tycho render` send for a compose file (`-` reads it
/// from standard input): settings from `env_file` (default: `.env` beside the compose
/// file, if any; none for standard input), name from `name` (default: the compose file's
/// directory), principal `{"username": username}` plus `access_token` from
/// `TYCHO_ACCESS_TOKEN` when it is set.
pub fn compose_request(
    file: &Path,
    env_file: Option<&Path>,
    name: Option<&str>,
    username: &str,
    env: &CliEnv,
    limit: u64,
) -> Result<Value> {
    let stdin = file == Path::new("-");
    let text = read_input(file, limit)?;
    let env_path = match env_file {
        Some(p) => Some(p.to_path_buf()),
        None if stdin => None,
        None => Some(file.parent().unwrap_or(Path::new(".")).join(".env")),
    };
    let settings_text = match env_path.as_deref() {
        None => String::new(),
        Some(path) => {
            let what = format!("settings {}", path.display());
            match crate::limits::read_file_limited(path, limit, &what, RAISE) {
                Ok(read) => read?,
                Err(_) if env_file.is_none() => String::new(),
                Err(e) => return Err(Error::input(format!("cannot read {what}: {e}"))),
            }
        }
    };
    // `$NAME` / `${NAME}` of the settings, substituted into the text before parsing as
    // the original's `TemplateUtils.apply_environment` does.
    let text = crate::text::dotenv::apply_settings(&settings_text, &text);
    let settings = parse_env(&settings_text);
    let shown = if stdin {
        "<stdin>".to_string()
    } else {
        file.display().to_string()
    };
    let mut system =
        crate::text::yaml::load(&text).map_err(|e| Error::input(format!("{shown}: {e}")))?;
    // A service's env_file is read relative to the compose file.
    let base = if stdin {
        Path::new(".")
    } else {
        file.parent().unwrap_or(Path::new("."))
    };
    crate::model::compose::inline_env_files(&mut system, base)?;
    let name = match name {
        Some(n) => n.to_string(),
        None if stdin => "system".to_string(),
        None => default_name(file),
    }
    .replace(std::path::MAIN_SEPARATOR, "-");
    let mut principal = json!({"username": username});
    if let Some(token) = &env.access_token {
        principal["access_token"] = Value::String(token.clone());
    }
    Ok(json!({
        "name": name,
        "principal": principal.to_string(),
        "serviceaccount": "default",
        "env": settings,
        "services": services_from_compose(&system),
        "system": system,
    }))
}

/// Where `--registry` points: a directory (files read from disk, relative repository URLs
/// resolved against it) or an HTTP(S) base URL (`tycho_config_url`).
#[derive(Debug)]
struct RegistrySource {
    source: Source,
    /// The base URL relative repository URLs resolve against (`file://` for a directory).
    base: String,
    local: bool,
}

fn registry_source(location: &str) -> Result<RegistrySource> {
    if location.starts_with("http://") || location.starts_with("https://") {
        let source = Source::Url(location.to_string());
        let base = source.config_url();
        return Ok(RegistrySource {
            source,
            base,
            local: false,
        });
    }
    let dir = PathBuf::from(location);
    let dir = std::fs::canonicalize(&dir)
        .ok()
        .filter(|d| d.is_dir())
        .ok_or_else(|| {
            Error::input(format!(
                "--registry {}: not an http(s) URL nor a directory",
                cut(location)
            ))
        })?;
    let base = url::Url::from_directory_path(&dir)
        .map(String::from)
        .map_err(|_| {
            Error::input(format!(
                "--registry {}: not an absolute path",
                dir.display()
            ))
        })?;
    Ok(RegistrySource {
        source: Source::Directory(dir),
        base,
        local: true,
    })
}

/// The text at `url` (`None` when it is not there: 404 / no such file). A `file:` URL is
/// only read for a registry directory, never for a registry served over HTTP.
fn fetch(
    cache: &HttpCache,
    source: &RegistrySource,
    url: &str,
    what: &str,
    limit: u64,
) -> Result<Option<String>> {
    if let Some(path) = url.strip_prefix("file:") {
        if !source.local {
            return Err(Error::new(
                ErrorKind::Context,
                format!(
                    "{what} {}: a registry served over HTTP cannot name local files",
                    cut(url)
                ),
            ));
        }
        let path = url::Url::parse(url)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .unwrap_or_else(|| PathBuf::from(path));
        let named = format!("{what} {}", path.display());
        return match crate::limits::read_file_limited(&path, limit, &named, RAISE) {
            Ok(text) => text.map(Some).map_err(|e| e.with_kind(ErrorKind::Context)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::new(
                ErrorKind::Context,
                format!("cannot read {what} {}: {e}", path.display()),
            )),
        };
    }
    let answer = cache.get(url)?;
    match answer.status {
        200 => Ok(Some(answer.text)),
        404 => Ok(None),
        status => Err(Error::new(
            ErrorKind::Context,
            format!("cannot fetch {what} {url}: HTTP status {status}"),
        )),
    }
}

/// What `tycho render/up --registry` is asked for.
#[derive(Debug, Clone)]
pub struct RegistryApp<'a> {
    /// `--registry`: a directory or an HTTP(S) base URL.
    pub registry: &'a str,
    /// `--product`: the registry context.
    pub product: &'a str,
    /// `--app`: the app id.
    pub app: &'a str,
    /// `--username`.
    pub username: &'a str,
    /// `--host`: the host name appstore was reached by (the principal's `host`).
    pub host: Option<&'a str>,
}

/// The start request appstore would send for `app`: the registry compiled for `product`
/// (extends, app-defaults, mixins), the app's spec rendered with the registry `settings`,
/// the `.env` beside it plus the app's registry `env`, its `services`, `serviceAccount`,
/// `securityContext`, `ext`, `conn_string`, `proxy-rewrite` and `gitea-integration`, and
/// the context's and app's `placement` and `gpu_resource`
/// ([`crate::registry::placement`]), as `TychoContext.start` builds it. The resource request is the spec's own
/// `deploy.resources` (what appstore sends when the user keeps the defaults).
pub fn registry_request(which: &RegistryApp<'_>, env: &CliEnv, limit: u64) -> Result<Value> {
    let source = registry_source(which.registry)?;
    let cache = HttpCache::new(HTTP_TIMEOUT, 60.0);
    let load = |file: &str| -> Result<Value> {
        let (doc, _) = crate::registry::load_config(&cache, &source.source, file)?;
        Ok(if doc.is_null() { json!({}) } else { doc })
    };
    let registry = load("app-registry.yaml")?;
    let defaults = load("app-defaults.yaml")?;
    let apps = crate::registry::grok(
        &registry,
        &defaults,
        which.product,
        &source.base,
        &GrokOptions::from_env(),
    )?;
    let app_id = which.app;
    let Some(Value::Object(app)) = apps.get(app_id) else {
        let known: Vec<&str> = apps.keys().map(String::as_str).collect();
        return Err(Error::new(
            ErrorKind::Context,
            format!(
                "app {:?} is not in the {} registry (apps: {})",
                cut(app_id),
                which.product,
                known.join(", ")
            ),
        ));
    };
    let spec_url = app.get("spec").and_then(Value::as_str).unwrap_or_default();
    let what = format!("spec of app {app_id}");
    let text = fetch(&cache, &source, spec_url, &what, limit)?.ok_or_else(|| {
        Error::new(
            ErrorKind::Context,
            format!("{what} {spec_url} is not there"),
        )
    })?;
    let mut system = spec::render_spec(
        app_id,
        spec_url,
        &text,
        &registry_model::settings(&registry),
    )?;
    let settings_text = fetch(
        &cache,
        &source,
        &spec::settings_url(spec_url),
        &format!("settings of app {app_id}"),
        limit,
    )?
    .unwrap_or_default();
    // client.parse_env: lines split on "\n" only.
    let mut settings: Map<String, Value> = settings_text
        .split('\n')
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    if let Some(Value::Object(extra)) = app.get("env") {
        for (k, v) in extra {
            settings.insert(k.clone(), v.clone());
        }
    }
    let services: Map<String, Value> = match app.get("services") {
        Some(Value::Object(s)) => s
            .iter()
            .map(|(k, v)| {
                let port = match v {
                    Value::String(s) => s.clone(),
                    other => crate::text::pyfmt::py_str(other),
                };
                (k.clone(), json!({"port": port, "clients": []}))
            })
            .collect(),
        _ => Map::new(),
    };
    let security_context = app
        .get("securityContext")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let Some(Value::Object(service)) = system.get_mut("services").and_then(|s| s.get_mut(app_id))
    else {
        return Err(Error::new(
            ErrorKind::Context,
            format!("app {app_id}: its spec {spec_url} has no service named {app_id}"),
        ));
    };
    let spec_deploy = service.get("deploy").cloned();
    service.insert("ext".into(), app.get("ext").cloned().unwrap_or(Value::Null));
    // The resources appstore sends by default: the spec's own (made literal as
    // tycho.context does with the request's values).
    if let Some(resources) = service.get("deploy").and_then(|d| d.get("resources")) {
        let resources = crate::render::literal_value(resources.clone());
        service.insert("deploy".into(), json!({ "resources": resources }));
    }
    service.insert(
        "conn_string".into(),
        app.get("conn_string").cloned().unwrap_or_else(|| json!("")),
    );
    let mut proxy_rewrite = app
        .get("proxy-rewrite")
        .cloned()
        .unwrap_or_else(|| json!({"enabled": false, "target": null}));
    if app.get("proxy-rewrite-rule").is_some_and(truthy) {
        if let Value::Object(p) = &mut proxy_rewrite {
            p.insert("enabled".into(), json!(true));
        }
    }
    service.insert("proxy_rewrite".into(), proxy_rewrite);
    service.insert(
        "gitea_integration".into(),
        app.get("gitea-integration")
            .cloned()
            .unwrap_or(json!(false)),
    );
    system["security_context"] = security_context;
    // The registry's placement and GPU resource, and the spec's own deploy.placement and
    // GPU devices kept (the rule TychoContext.start calls too).
    let fields = crate::registry::placement::start_fields(
        &registry,
        which.product,
        app_id,
        &Value::Object(app.clone()),
    )?;
    crate::registry::placement::finish_spec(&mut system, app_id, spec_deploy.as_ref(), &fields);
    let principal = json!({
        "username": which.username,
        "access_token": env.access_token,
        "refresh_token": null,
        "host": which.host,
    });
    let mut request = json!({
        "name": app_id,
        "serviceaccount": app.get("serviceAccount").cloned().unwrap_or(Value::Null),
        "env": settings,
        "system": system,
        "principal": serde_json::to_string_pretty(&principal).unwrap_or_default(),
        "services": services,
    });
    if let Some(count) = app.get("count").filter(|c| c.as_u64().is_some()) {
        // The registry's limit, for tycho.policy.enforce_count (as TychoContext.start).
        request["count"] = count.clone();
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_32_lowercase_hex_digits() {
        assert!(check_guid("0123456789abcdef0123456789abcdef").is_ok());
        for bad in ["", "a/b", "0123456789ABCDEF0123456789ABCDEF", "0123"] {
            assert!(check_guid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn services_take_the_last_port() {
        let system = json!({"services": {"a": {"ports": ["80:8080", 9000]}, "b": {}}});
        assert_eq!(
            services_from_compose(&system),
            json!({"a": {"port": 9000}}).as_object().unwrap().clone()
        );
    }
}
