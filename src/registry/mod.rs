//! The app registry: which apps a product (appstore's brand) offers and where their
//! docker-compose specs live — what `tycho.context.TychoContext` reads.
//!
//! * [`model`] — the registry document and the URL/path helpers it needs;
//! * [`grok`] — compiling the apps of one product (extends, app-defaults, mixins, spec
//!   and icon URLs, `$repository` substitution, product-level app entries);
//! * [`fetch`] — HTTP(S) with timeouts and an in-memory cache revalidated with ETag /
//!   Last-Modified;
//! * [`spec`] — specs rendered with the registry `settings`;
//! * [`placement`] — a context's and an app's `placement` and `gpu_resource`, and how a
//!   start request carries them.
//!
//! The Python layer (`tycho.context`, through `crate::bindings`) and the command line's
//! `--registry` (`crate::cli::request`) call the pieces, so that the Python attributes
//! (`registry`, `apps`, ...) stay plain dicts.

pub mod fetch;
pub mod grok;
pub mod model;
pub mod placement;
pub mod spec;

pub use fetch::{CacheStats, Fetched, HttpCache};
pub use grok::{deep_merge, grok, GrokOptions};

use crate::error::Result;
use model::{context_error, url_join};
use serde_json::Value;
use std::path::PathBuf;

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
            let what = format!("registry file {}", path.display());
            let text = crate::limits::read_file_limited(&path, fetch::MAX_BODY, &what, "")
                .map_err(|e| context_error(format!("cannot read {what}: {e}")))?
                .map_err(|e| context_error(e.message))?;
            let doc = crate::text::yaml::load(&text)
                .map_err(|e| context_error(format!("{} is not valid YAML: {e}", path.display())))?;
            Ok((doc, None))
        }
        Source::Url(_) => {
            let url = url_join(&source.config_url(), file_name)?;
            let answer = cache.fetch(&url, "registry file")?;
            let doc = crate::text::yaml::load(&answer.text)
                .map_err(|e| context_error(format!("{url} is not valid YAML: {e}")))?;
            Ok((doc, answer.stale))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use std::path::Path;

    /// The apps of `product` in the packaged registry (as `tycho.context` compiles them).
    fn packaged(product: &str) -> (Value, Map<String, Value>) {
        let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tycho/conf");
        let source = Source::Directory(conf);
        let cache = HttpCache::default();
        let (registry, _) = load_config(&cache, &source, "app-registry.yaml").unwrap();
        let (defaults, _) = load_config(&cache, &source, "app-defaults.yaml").unwrap();
        let apps = grok(
            &registry,
            &defaults,
            product,
            &source.config_url(),
            &GrokOptions::default(),
        )
        .unwrap();
        (registry, apps)
    }

    #[test]
    fn packaged_registry_compiles_every_product() {
        let (registry, _) = packaged("common");
        let products: Vec<String> = model::contexts(&registry).keys().cloned().collect();
        assert!(products.len() >= 13, "{products:?}");
        for product in &products {
            let (_, apps) = packaged(product);
            assert!(!apps.is_empty(), "{product}");
            for (id, app) in &apps {
                let spec = app["spec"].as_str().unwrap();
                assert!(
                    spec.starts_with("https://")
                        && spec.ends_with(&format!("/{id}/docker-compose.yaml"))
                );
            }
        }
        let (_, braini) = packaged("braini");
        assert_eq!(
            braini.keys().collect::<Vec<_>>(),
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
        assert_eq!(Source::Url("http://x/y".into()).config_url(), "http://x/y/");
    }
}
