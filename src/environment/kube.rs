//! Settings of the Kubernetes executor: kubeconfig, context, namespace, timeouts, cache.
//!
//! Read from the process environment by [`super::var`] and friends only, once at the
//! entry of each operation ([`KubeEnv::from_env`]). What the command line says
//! (`--kubeconfig`, `--context`, one-shot commands) is not written to the environment:
//! it is a [`KubeOverrides`] value handed to the executor (`crate::exec::kube::set_overrides`)
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
    /// How long the watch cache's watch requests last (`TYCHO_KUBE_WATCH_TIMEOUT`, default
    /// 290 s, whole seconds from 1 to 3600): the `timeoutSeconds` the API server ends
    /// each watch after (the watch then resumes from its last resourceVersion). Watches
    /// are not cut by the read timeout: they have a client of their own whose read
    /// timeout is [`KubeEnv::watch_read_timeout`], longer than this.
    pub watch_timeout: Duration,
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

/// The watch timeout a `TYCHO_KUBE_WATCH_TIMEOUT` value gives: whole seconds (rounded
/// up), at least 1 and at most 3600; 290 s (client-go's and kube-rs's default) when unset
/// or not a positive number.
pub fn watch_timeout(value: Option<&str>) -> Duration {
    let seconds = value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .map_or(290.0, |v| v.ceil().min(3600.0));
    // Finite and in 1..=3600 here: the cast is exact.
    Duration::from_secs(seconds as u64)
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
            watch_timeout: watch_timeout(super::var("TYCHO_KUBE_WATCH_TIMEOUT").as_deref()),
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

    /// The read timeout of the watch cache's client: the watch timeout and a margin
    /// (a quarter of it, from 1 s to 40 s; 290 s gives 330 s), so the API server ends a
    /// quiet watch before the client gives up on it. It fires only on a connection that
    /// went silent (the server ends every watch after [`KubeEnv::watch_timeout`]).
    pub fn watch_read_timeout(&self) -> Duration {
        let margin =
            (self.watch_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(40));
        self.watch_timeout + margin
    }

    /// What decides which client to make: when it changes, a new client is made.
    pub fn client_key(&self) -> String {
        format!(
            "{:?}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
            self.kubeconfig,
            self.kubeconfig_env,
            self.home,
            self.context,
            self.service_host,
            self.service_port,
            self.connect_timeout,
            self.read_timeout,
            self.watch_timeout
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
    fn watch_timeout_values() {
        assert_eq!(watch_timeout(None), Duration::from_secs(290));
        assert_eq!(watch_timeout(Some("3")), Duration::from_secs(3));
        assert_eq!(watch_timeout(Some(" 2.5 ")), Duration::from_secs(3));
        assert_eq!(watch_timeout(Some("0.1")), Duration::from_secs(1));
        assert_eq!(watch_timeout(Some("1e300")), Duration::from_secs(3600));
        for bad in ["", "0", "-5", "nan", "inf", "soon"] {
            assert_eq!(watch_timeout(Some(bad)), Duration::from_secs(290), "{bad}");
        }
        let mut env = KubeEnv::from_env();
        env.watch_timeout = Duration::from_secs(290);
        assert_eq!(env.watch_read_timeout(), Duration::from_secs(330));
        env.watch_timeout = Duration::from_secs(3);
        assert_eq!(env.watch_read_timeout(), Duration::from_secs(4));
        env.watch_timeout = Duration::from_secs(3600);
        assert_eq!(env.watch_read_timeout(), Duration::from_secs(3640));
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
