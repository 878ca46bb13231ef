//! Compiling a registry for one product ("grokking", after the original's `_grok`):
//!
//! 1. the product's apps and, first, those of every context it `extends` (recursively,
//!    depth first; a later context replaces whole app entries); an unknown context or
//!    a cycle is an error;
//! 2. `app-defaults.yaml` merged into every app ([`deep_merge`]: dicts merge, anything
//!    else is replaced by the defaults' value, as deepmerge did);
//! 3. the apps of each `mixin` context of the contexts extended, then of the product,
//!    merged over the same-named apps;
//! 4. spec URLs: an app without `spec` gets `<first repository>/<app id>/docker-compose.yaml`
//!    (a relative repository URL is resolved against `tycho_config_url`); `icon` is
//!    `icon.png` beside the spec; `$repository` names in spec, icon and docs are
//!    replaced by the repository URLs; relative spec/icon URLs are resolved;
//! 5. top-level entries of the product's context named like an app are merged (shallow)
//!    into that app ([`add_conf_impl`]).

use super::model::{
    context_apps, context_error, contexts, is_absolute_url, name_list, posix_dirname, posix_join,
    repositories, safe_substitute, url_join,
};
use crate::error::Result;
use serde_json::{Map, Value};

/// The merge of app-defaults and mixins: dicts merge key by key (recursively); lists,
/// scalars and values of different types are replaced by `addition`'s value.
pub fn deep_merge(base: Value, addition: Value) -> Value {
    match (base, addition) {
        (Value::Object(mut base), Value::Object(addition)) => {
            for (key, value) in addition {
                match base.get_mut(&key) {
                    Some(existing) => {
                        let current = std::mem::take(existing);
                        *existing = deep_merge(current, value);
                    }
                    None => {
                        base.insert(key, value);
                    }
                }
            }
            Value::Object(base)
        }
        (_, addition) => addition,
    }
}

/// Switches read from the environment that change how specs are located.
#[derive(Debug, Clone, Default)]
pub struct GrokOptions {
    /// `DOCKSTORE_APPS_BRANCH` when `EXTERNAL_TYCHO_APP_REGISTRY_ENABLED=false`: replaces
    /// `master` in the default repository URL (kept from the original).
    pub dockstore_branch: Option<String>,
}

impl GrokOptions {
    /// The options the process environment asks for.
    pub fn from_env() -> Self {
        Self::from(&crate::environment::registry::RegistryEnv::from_env())
    }

    /// The options of these environment settings.
    pub fn from(env: &crate::environment::registry::RegistryEnv) -> Self {
        let branch = &env.dockstore_branch;
        GrokOptions {
            dockstore_branch: (env.external_registry_enabled == "false" && !branch.is_empty())
                .then(|| branch.clone()),
        }
    }
}

fn inherit_into(
    contexts: &Map<String, Value>,
    context: &Value,
    apps: &mut Map<String, Value>,
    trail: &mut Vec<String>,
) -> Result<()> {
    for base in name_list(context, "extends") {
        let Some(base_context) = contexts.get(&base) else {
            return Err(context_error(format!(
                "context {base:?} extended by {:?} is not in the registry",
                trail.last().map(String::as_str).unwrap_or("")
            )));
        };
        if trail.contains(&base) {
            return Err(context_error(format!(
                "contexts extend each other in a cycle: {} -> {base}",
                trail.join(" -> ")
            )));
        }
        trail.push(base.clone());
        inherit_into(contexts, base_context, apps, trail)?;
        trail.pop();
    }
    for (name, app) in context_apps(context) {
        apps.insert(name, app);
    }
    Ok(())
}

/// The apps of `context` (named `name`) and, first, of every context it extends.
pub fn inherit(
    contexts: &Map<String, Value>,
    context: &Value,
    name: &str,
) -> Result<Map<String, Value>> {
    let mut apps = Map::new();
    let mut trail = vec![name.to_string()];
    inherit_into(contexts, context, &mut apps, &mut trail)?;
    Ok(apps)
}

/// Merges `defaults` into every app (an empty defaults file, `null`, changes nothing).
pub fn mixin_defaults(apps: &mut Map<String, Value>, defaults: &Value) {
    if defaults.is_null() {
        return;
    }
    for app in apps.values_mut() {
        let current = std::mem::take(app);
        *app = deep_merge(current, defaults.clone());
    }
}

fn mixin_with_trail(
    contexts: &Map<String, Value>,
    context: &Value,
    apps: &mut Map<String, Value>,
    trail: &mut Vec<String>,
) {
    for base in name_list(context, "extends") {
        if let Some(base_context) = contexts.get(&base) {
            if !trail.contains(&base) {
                trail.push(base.clone());
                mixin_with_trail(contexts, base_context, apps, trail);
                trail.pop();
            }
        }
    }
    for mixer in name_list(context, "mixin") {
        let Some(mixer_context) = contexts.get(&mixer) else {
            continue;
        };
        let mixer_apps = context_apps(mixer_context);
        for (name, app) in apps.iter_mut() {
            match mixer_apps.get(name) {
                Some(Value::Null) | None => {}
                Some(addition) => {
                    let current = std::mem::take(app);
                    *app = deep_merge(current, addition.clone());
                }
            }
        }
    }
}

/// Merges the apps of the `mixin` contexts of `context` (and of the contexts it
/// extends, first) over the same-named entries of `apps`.
pub fn mixin(contexts: &Map<String, Value>, context: &Value, apps: &mut Map<String, Value>) {
    mixin_with_trail(contexts, context, apps, &mut Vec::new());
}

/// Merges top-level entries of `context` named like an app into that app (a shallow
/// merge), then does the same with the entry's own keys.
pub fn add_conf_impl(apps: &mut Map<String, Value>, context: &Value) {
    add_conf_depth(apps, context, 0);
}

fn add_conf_depth(apps: &mut Map<String, Value>, context: &Value, depth: usize) {
    let Value::Object(entries) = context else {
        return;
    };
    if depth > 64 {
        return;
    }
    for (key, value) in entries {
        let Value::Object(fields) = value else {
            continue;
        };
        let Some(app) = apps.get_mut(key) else {
            continue;
        };
        let mut merged = match std::mem::take(app) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (k, v) in fields {
            merged.insert(k.clone(), v.clone());
        }
        *app = Value::Object(merged);
        add_conf_depth(apps, value, depth + 1);
    }
}

/// Compiles the apps of `product` (see the module documentation).
pub fn grok(
    registry: &Value,
    app_defaults: &Value,
    product: &str,
    tycho_config_url: &str,
    options: &GrokOptions,
) -> Result<Map<String, Value>> {
    let contexts = contexts(registry);
    let Some(context) = contexts.get(product) else {
        return Err(context_error(format!(
            "undefined product {product} not found in contexts."
        )));
    };
    let mut apps = inherit(&contexts, context, product)?;
    mixin_defaults(&mut apps, app_defaults);
    mixin(&contexts, context, &mut apps);

    let resolve = |url: &str| -> Result<String> {
        if is_absolute_url(url) || tycho_config_url.is_empty() {
            Ok(url.to_string())
        } else {
            url_join(tycho_config_url, url)
        }
    };
    let repos = repositories(registry);
    let resolved: Vec<(String, String)> = repos
        .iter()
        .map(|(name, url)| Ok((name.clone(), resolve(url)?)))
        .collect::<Result<_>>()?;

    for (name, app) in apps.iter_mut() {
        let Value::Object(app) = app else {
            return Err(context_error(format!(
                "app {name}: its registry entry is not a mapping"
            )));
        };
        if !app.contains_key("spec") {
            let Some((_, first)) = repos.first() else {
                return Err(context_error(format!(
                    "app {name} has no spec URL and the registry lists no repositories."
                )));
            };
            let mut repo_url = first.clone();
            if !is_absolute_url(&repo_url) {
                if tycho_config_url.is_empty() {
                    return Err(context_error(format!(
                        "app {name}: repository URL {repo_url:?} is relative but no tycho_config_url is set"
                    )));
                }
                repo_url = url_join(tycho_config_url, &repo_url)?;
            }
            if let Some(branch) = &options.dockstore_branch {
                repo_url = repo_url.replace("master", branch);
            }
            app.insert(
                "spec".into(),
                Value::String(format!(
                    "{}/{name}/docker-compose.yaml",
                    repo_url.trim_end_matches('/')
                )),
            );
        }
        let spec = match &app["spec"] {
            Value::String(s) => s.clone(),
            other => {
                return Err(context_error(format!(
                    "app {name}: spec must be a URL, not {}",
                    crate::text::pyfmt::py_repr(other)
                )))
            }
        };
        app.insert(
            "icon".into(),
            Value::String(posix_join(&posix_dirname(&spec), "icon.png")),
        );
        for key in ["spec", "icon", "docs"] {
            if let Some(Value::String(text)) = app.get(key) {
                let substituted = safe_substitute(text, &resolved);
                app.insert(key.into(), Value::String(substituted));
            }
        }
        for key in ["spec", "icon"] {
            if let Some(Value::String(text)) = app.get(key) {
                let url = resolve(text)?;
                app.insert(key.into(), Value::String(url));
            }
        }
    }
    add_conf_impl(&mut apps, context);
    Ok(apps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registry() -> Value {
        json!({
            "repositories": {"local": {"url": "apps"}, "far": {"url": "https://far.example/specs"}},
            "contexts": {
                "tweaks": {"apps": {"a": {"tags": ["m"], "ext": {"kube": {"x": 1}}}}},
                "base": {"apps": {"a": {"name": "A", "tags": ["1", "2"], "docs": "$far/a.html"},
                                  "b": {"name": "B base"}}},
                "mid": {"extends": ["base"], "mixin": ["tweaks"],
                        "apps": {"b": {"name": "B mid"}, "c": {"spec": "$far/c/dc.yaml"}}},
                "top": {"extends": ["mid"], "a": {"extra": true}, "apps": {"d": {"name": "D"}}},
                "diamond": {"extends": ["base", "mid"]},
                "loop1": {"extends": ["loop2"]},
                "loop2": {"extends": ["loop1"]},
                "orphan": {"extends": ["missing"]}
            }
        })
    }

    #[test]
    fn extends_mixins_defaults_and_urls() {
        let defaults = json!({"ext": {"kube": {"probe": "default"}}, "tags": ["d"]});
        let apps = grok(
            &registry(),
            &defaults,
            "top",
            "http://h/reg/",
            &GrokOptions::default(),
        )
        .unwrap();
        assert_eq!(apps.keys().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        let a = &apps["a"];
        assert_eq!(a["spec"], "http://h/reg/apps/a/docker-compose.yaml");
        assert_eq!(a["icon"], "http://h/reg/apps/a/icon.png");
        assert_eq!(a["docs"], "https://far.example/specs/a.html");
        assert_eq!(a["tags"], json!(["m"]));
        assert_eq!(a["ext"], json!({"kube": {"probe": "default", "x": 1}}));
        assert_eq!(a["extra"], json!(true));
        assert_eq!(apps["b"]["name"], "B mid");
        assert_eq!(apps["c"]["spec"], "https://far.example/specs/c/dc.yaml");
        assert_eq!(apps["c"]["icon"], "https://far.example/specs/c/icon.png");
    }

    #[test]
    fn errors() {
        let none = Value::Null;
        let opts = GrokOptions::default();
        let r = registry();
        let e = grok(&r, &none, "loop1", "http://h/", &opts).unwrap_err();
        assert!(e.message.contains("cycle"), "{}", e.message);
        let e = grok(&r, &none, "orphan", "http://h/", &opts).unwrap_err();
        assert!(e.message.contains("\"missing\""), "{}", e.message);
        let e = grok(&r, &none, "nope", "http://h/", &opts).unwrap_err();
        assert!(e.message.contains("undefined product nope"));
        let e = grok(&r, &none, "base", "", &opts).unwrap_err();
        assert!(e.message.contains("relative"), "{}", e.message);
        // a diamond is not a cycle
        assert!(grok(&r, &none, "diamond", "http://h/", &opts).is_ok());
    }

    #[test]
    fn merge_semantics() {
        let merged = deep_merge(
            json!({"a": {"x": 1, "y": [1, 2]}, "b": [1], "c": "keep", "d": {"z": 1}}),
            json!({"a": {"y": [3], "w": 2}, "b": [2, 3], "d": "none", "e": 5}),
        );
        assert_eq!(
            merged,
            json!({"a": {"x": 1, "y": [3], "w": 2}, "b": [2, 3], "c": "keep", "d": "none", "e": 5})
        );
        assert_eq!(deep_merge(Value::Null, json!({})), json!({}));
    }

    #[test]
    fn dockstore_branch() {
        let r = json!({"repositories": {"r": {"url": "https://x/raw/master/specs"}},
                       "contexts": {"p": {"apps": {"a": {}}}}});
        let opts = GrokOptions {
            dockstore_branch: Some("develop".into()),
        };
        let apps = grok(&r, &Value::Null, "p", "", &opts).unwrap();
        assert_eq!(
            apps["a"]["spec"],
            "https://x/raw/develop/specs/a/docker-compose.yaml"
        );
    }
}
