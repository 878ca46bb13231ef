//! The app registry: which apps a product (appstore's brand) offers and where their
//! docker-compose specs live — what `tycho.context.TychoContext` reads.
//!
//! * [`model`] — the registry document and the URL/path helpers it needs;
//! * [`grok`] — compiling the apps of one product (extends, app-defaults, mixins, spec
//!   and icon URLs, `$repository` substitution, product-level app entries);
//! * [`fetch`] — HTTP(S) with timeouts and an in-memory cache revalidated with ETag /
//!   Last-Modified;
//! * [`spec`] — specs rendered with the registry `settings`.
//!
//! [`Registry`] ties them together for Rust callers; the Python layer calls the pieces
//! so that its public attributes (`registry`, `apps`, ...) stay plain dicts.

pub mod fetch;
pub mod grok;
pub mod model;
pub mod spec;

pub use fetch::{CacheStats, Fetched, HttpCache};
pub use grok::{deep_merge, grok, GrokOptions};

use crate::error::Result;
use model::{context_error, url_join};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the registry files come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory holding `app-registry.yaml` and `app-defaults.yaml` (the package's conf/).
    Directory(PathBuf),
    /// A base URL (`tycho_config_url`); a trailing `/` is added when missing.
    Url(String),
}

impl Source {
    /// `tycho_config_url` as the original normalises it ("" for a directory).
    pub fn config_url(&self) -> String {
        match self {
            Source::Directory(_) => String::new(),
            Source::Url(u) if u.is_empty() || u.ends_with('/') => u.clone(),
            Source::Url(u) => format!("{u}/"),
        }
    }
}

/// Reads registry file `file_name` (YAML) from `source`. Returns the document and,
/// when a stale cached copy was used, why.
pub fn load_config(
    cache: &HttpCache,
    source: &Source,
    file_name: &str,
) -> Result<(Value, Option<String>)> {
    match source {
        Source::Directory(dir) => {
            let path = dir.join(file_name);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                context_error(format!("cannot read registry file {}: {e}", path.display()))
            })?;
            let doc = crate::yaml::load(&text)
                .map_err(|e| context_error(format!("{} is not valid YAML: {e}", path.display())))?;
            Ok((doc, None))
        }
        Source::Url(_) => {
            let url = url_join(&source.config_url(), file_name)?;
            let answer = cache.fetch(&url, "registry file")?;
            let doc = crate::yaml::load(&answer.text)
                .map_err(|e| context_error(format!("{url} is not valid YAML: {e}")))?;
            Ok((doc, answer.stale))
        }
    }
}

/// A loaded and compiled registry for one product.
#[derive(Debug)]
pub struct Registry {
    /// Normalised `tycho_config_url` ("" for the packaged registry).
    pub tycho_config_url: String,
    /// The product (context) compiled.
    pub product: String,
    /// `app-registry.yaml`.
    pub registry: Value,
    /// `app-defaults.yaml`.
    pub app_defaults: Value,
    /// The compiled apps.
    pub apps: Map<String, Value>,
    /// The HTTP cache used for specs and settings.
    pub cache: Arc<HttpCache>,
}

impl Registry {
    /// Loads `app-registry.yaml` and `app-defaults.yaml` from `source` and compiles
    /// the apps of `product`.
    pub fn open(source: &Source, product: &str, cache: Arc<HttpCache>) -> Result<Self> {
        let (registry, _) = load_config(&cache, source, "app-registry.yaml")?;
        let (app_defaults, _) = load_config(&cache, source, "app-defaults.yaml")?;
        let registry = if registry.is_null() {
            Value::Object(Map::new())
        } else {
            registry
        };
        let app_defaults = if app_defaults.is_null() {
            Value::Object(Map::new())
        } else {
            app_defaults
        };
        let tycho_config_url = source.config_url();
        let apps = grok(
            &registry,
            &app_defaults,
            product,
            &tycho_config_url,
            &GrokOptions::from_env(),
        )?;
        Ok(Registry {
            tycho_config_url,
            product: product.to_string(),
            registry,
            app_defaults,
            apps,
            cache,
        })
    }

    /// The packaged registry in `conf_dir`.
    pub fn packaged(conf_dir: &Path, product: &str) -> Result<Self> {
        Self::open(
            &Source::Directory(conf_dir.to_path_buf()),
            product,
            Arc::new(HttpCache::default()),
        )
    }

    /// The compiled entry of `app_id`.
    pub fn app(&self, app_id: &str) -> Result<&Map<String, Value>> {
        match self.apps.get(app_id) {
            Some(Value::Object(app)) => Ok(app),
            _ => Err(context_error(format!(
                "app {app_id:?} is not in the {} registry",
                self.product
            ))),
        }
    }

    fn spec_url(&self, app_id: &str) -> Result<String> {
        match self.app(app_id)?.get("spec") {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(context_error(format!("app {app_id} has no spec URL"))),
        }
    }

    /// The app's compose document rendered with the registry settings.
    pub fn get_spec(&self, app_id: &str) -> Result<Value> {
        let url = self.spec_url(app_id)?;
        let answer = self.cache.fetch(&url, &format!("spec of app {app_id}"))?;
        spec::render_spec(app_id, &url, &answer.text, &model::settings(&self.registry))
    }

    /// Text of the `.env` beside the app's spec ("" when there is none).
    pub fn get_settings(&self, app_id: &str) -> Result<String> {
        let url = spec::settings_url(&self.spec_url(app_id)?);
        let answer = self.cache.get(&url)?;
        Ok(if answer.status == 200 {
            answer.text
        } else {
            String::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packaged_registry_compiles_every_product() {
        let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tycho/conf");
        let common = Registry::packaged(&conf, "common").unwrap();
        let products: Vec<String> = model::contexts(&common.registry).keys().cloned().collect();
        assert!(products.len() >= 13, "{products:?}");
        for product in &products {
            let registry = Registry::packaged(&conf, product).unwrap();
            assert!(!registry.apps.is_empty(), "{product}");
            for (id, app) in &registry.apps {
                let spec = app["spec"].as_str().unwrap();
                assert!(
                    spec.starts_with("https://")
                        && spec.ends_with(&format!("/{id}/docker-compose.yaml"))
                );
            }
        }
        let braini = Registry::packaged(&conf, "braini").unwrap();
        assert_eq!(
            braini.apps.keys().collect::<Vec<_>>(),
            [
                "jupyter-ds",
                "filebrowser",
                "webtop-octave",
                "blackbalsam",
                "imagej",
                "napari",
                "cloud-top",
                "scout"
            ]
        );
        assert!(braini.app("nope").is_err());
        assert_eq!(Source::Url("http://x/y".into()).config_url(), "http://x/y/");
    }
}
