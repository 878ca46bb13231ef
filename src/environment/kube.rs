//! Settings of the Kubernetes executor: kubeconfig, context, namespace, timeouts, cache.
//!
//! Read from the process environment by [`super::var`] and friends only, once at the
//! entry of each operation ([`KubeEnv::from_env`]). What the command line says
//! (`--kubeconfig`, `--context`, one-shot commands) is not written to the environment:
//! it is a [`KubeOverrides`] value handed to the executor (`crate::kube::set_overrides`)
//! and applied on top ([`KubeEnv::with`]).

use std::path::PathBuf;
use std::time::Duration;

/// The executor's settings for one operation.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeEnv {
    /// A kubeconfig file named by the caller (`--kubeconfig`); None: `KUBECONFIG` (which
    /// kube-rs reads, a list of files), else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `KUBECONFIG` as set (part of the client's identity: a change makes a new client).
    pub kubeconfig_env: String,
    /// `HOME` (where `~/.kube/config` is).
    pub home: String,
    /// The kubeconfig context to use (`--context`); None: its current context.
    pub context: Option<String>,
    /// `KUBERNETES_SERVICE_HOST`: set and non-empty means in-cluster configuration.
    pub service_host: String,
    /// `KUBERNETES_SERVICE_PORT`.
    pub service_port: String,
    /// `NAMESPACE` (non-empty), the namespace when the caller names none.
    pub namespace: Option<String>,
    /// Connecting to the API server (`TYCHO_KUBE_CONNECT_TIMEOUT`, default 10 s).
    pub connect_timeout: Duration,
    /// Waiting for a response, and writing a request (`TYCHO_KUBE_READ_TIMEOUT`, default 30 s).
    pub read_timeout: Duration,
    /// A whole operation, retries included (`TYCHO_KUBE_TIMEOUT`, default 120 s).
    pub operation_timeout: Duration,
    /// The watch cache (`TYCHO_KUBE_CACHE`, default on; `off`, `0`, `false`, `no`
    /// turn it off; always off for one-shot command-line commands).
    pub cache: bool,
    /// Watch the `<app>-env` Secrets by name too (`TYCHO_KUBE_CACHE_SECRETS`, default on;
    /// `off`, `0`, `false`, `no` turn it off). The watch is a streaming list (one
    /// `watch` request with `sendInitialEvents=true`), so it needs the RBAC verb `watch`
    /// on secrets and no `list`. Off, or where the API server cannot stream lists, start
    /// reads the Secret with a get (one more round trip).
    pub cache_secrets: bool,
    /// The Ambassador Service start looks up (`AMBASSADOR_SVC_NAME`, default `ambassador`).
    pub ambassador_service: String,
}

/// What the command line hands the executor instead of environment variables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeOverrides {
    /// `--kubeconfig PATH`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context NAME`.
    pub context: Option<String>,
    /// A one-shot command: no watch cache.
    pub no_cache: bool,
}

/// Whether a `TYCHO_KUBE_CACHE` value turns the cache off.
pub fn cache_enabled(value: Option<&str>) -> bool {
    !matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("off" | "0" | "false" | "no")
    )
}

impl KubeEnv {
    /// The settings from the environment.
    pub fn from_env() -> KubeEnv {
        KubeEnv {
            kubeconfig: None,
            kubeconfig_env: super::var("KUBECONFIG").unwrap_or_default(),
            home: super::var("HOME").unwrap_or_default(),
            context: None,
            service_host: super::var("KUBERNETES_SERVICE_HOST").unwrap_or_default(),
            service_port: super::var("KUBERNETES_SERVICE_PORT").unwrap_or_default(),
            namespace: super::var("NAMESPACE").filter(|s| !s.is_empty()),
            connect_timeout: super::seconds("TYCHO_KUBE_CONNECT_TIMEOUT", 10.0),
            read_timeout: super::seconds("TYCHO_KUBE_READ_TIMEOUT", 30.0),
            operation_timeout: super::seconds("TYCHO_KUBE_TIMEOUT", 120.0),
            cache: cache_enabled(super::var("TYCHO_KUBE_CACHE").as_deref()),
            cache_secrets: cache_enabled(super::var("TYCHO_KUBE_CACHE_SECRETS").as_deref()),
            ambassador_service: super::var("AMBASSADOR_SVC_NAME")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "ambassador".into()),
        }
    }

    /// These settings with the command line's `overrides` applied.
    pub fn with(mut self, overrides: &KubeOverrides) -> KubeEnv {
        if overrides.kubeconfig.is_some() {
            self.kubeconfig = overrides.kubeconfig.clone();
        }
        if overrides.context.is_some() {
            self.context = overrides.context.clone();
        }
        if overrides.no_cache {
            self.cache = false;
        }
        self
    }

    /// In-cluster configuration (a pod's service account) rather than a kubeconfig.
    /// A kubeconfig named on the command line wins.
    pub fn in_cluster(&self) -> bool {
        self.kubeconfig.is_none() && !self.service_host.is_empty()
    }

    /// What decides which client to make: when it changes, a new client is made.
    pub fn client_key(&self) -> String {
        format!(
            "{:?}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{:?}",
            self.kubeconfig,
            self.kubeconfig_env,
            self.home,
            self.context,
            self.service_host,
            self.service_port,
            self.connect_timeout,
            self.read_timeout
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_values() {
        assert!(cache_enabled(None));
        assert!(cache_enabled(Some("on")));
        assert!(cache_enabled(Some("")));
        for off in ["off", "OFF", "0", "false", " no "] {
            assert!(!cache_enabled(Some(off)), "{off}");
        }
    }

    #[test]
    fn overrides_win() {
        let env = KubeEnv::from_env().with(&KubeOverrides {
            kubeconfig: Some("/k".into()),
            context: Some("c".into()),
            no_cache: true,
        });
        assert_eq!(env.kubeconfig.as_deref(), Some(std::path::Path::new("/k")));
        assert_eq!(env.context.as_deref(), Some("c"));
        assert!(!env.cache);
        assert!(!env.in_cluster());
    }
}
