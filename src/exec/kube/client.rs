//! Configuration and the executor's kube client.
//!
//! Nothing happens at import or construction time: the client is made on the first
//! operation, on the process's runtime (`crate::runtime`). There is one client per
//! process; it is made again in a child after `fork()` (gunicorn workers): the parent's
//! connections belong to the parent's runtime, so they are left alone (leaked, never
//! dropped). The client is also made again when the configuration (KUBECONFIG, HOME,
//! KUBERNETES_SERVICE_HOST/PORT, the timeouts, `--kubeconfig`, `--context`) changes.
//! Each connection has two clients over the same configuration: one for requests (read
//! timeout `TYCHO_KUBE_READ_TIMEOUT`) and one for the watch cache's watches, whose read
//! timeout is longer than the watches' `timeoutSeconds` (`TYCHO_KUBE_WATCH_TIMEOUT`).
//!
//! KubeEnv are read once per operation ([`settings`]): the environment
//! (`crate::environment::kube`) with what the command line handed over
//! ([`set_overrides`]) on top; nothing writes the environment.
//!
//! Cluster: in-cluster when `KUBERNETES_SERVICE_HOST` is set (and no `--kubeconfig`),
//! else the kubeconfig (`--kubeconfig`, else `KUBECONFIG`, else `~/.kube/config`; the
//! `--context` context, else its current one). Namespace: the caller's, else
//! `NAMESPACE`, else the pod's service-account namespace file, else the kubeconfig
//! context's namespace, else `default`.

pub use crate::environment::kube::{KubeEnv, KubeOverrides};
use crate::error::{Error, ErrorKind, Result};
use kube::config::KubeConfigOptions;
use std::sync::Mutex;

static OVERRIDES: std::sync::RwLock<Option<KubeOverrides>> = std::sync::RwLock::new(None);

/// What the command line handed the executor, until this guard is dropped (then the
/// settings are the environment's again, as for the Python library in the same process).
#[must_use = "the overrides end when the guard is dropped"]
pub struct OverridesGuard {
    previous: Option<KubeOverrides>,
}

impl Drop for OverridesGuard {
    fn drop(&mut self) {
        *OVERRIDES.write().unwrap_or_else(|p| p.into_inner()) = self.previous.take();
    }
}

/// Hands the executor what the command line says (`--kubeconfig`, `--context`, a
/// one-shot command) for the life of the returned guard: one command's run (`cli_main`
/// may run several times in one process, beside the library).
pub fn set_overrides(overrides: KubeOverrides) -> OverridesGuard {
    let mut slot = OVERRIDES.write().unwrap_or_else(|p| p.into_inner());
    OverridesGuard {
        previous: slot.replace(overrides),
    }
}

/// The Kubernetes environment of an operation, with the command line's overrides.
pub fn kube_env() -> KubeEnv {
    let env = KubeEnv::from_env();
    match OVERRIDES.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some(o) => env.with(o),
        None => env,
    }
}

/// A ready client and the namespace of its configuration.
#[derive(Clone)]
pub(crate) struct Connection {
    pub client: kube::Client,
    /// The watch cache's client: the same cluster and credentials, with a read timeout
    /// longer than the watches' own `timeoutSeconds` (`KubeEnv::watch_read_timeout`), so
    /// a watch with no event is ended by the API server, never cut by the read timeout.
    pub watch_client: kube::Client,
    /// The kubeconfig context's namespace (in-cluster: the service account's), else "default".
    pub config_namespace: String,
}

struct CachedClient {
    pid: u32,
    key: String,
    connection: Connection,
}

static CLIENT: Mutex<Option<CachedClient>> = Mutex::new(None);
/// The URL of the API server the process's client talks to (for error messages).
static API_URL: Mutex<String> = Mutex::new(String::new());

/// The API server URL of the process's client ("" before one is made).
pub(crate) fn api_url() -> String {
    lock(&API_URL).clone()
}

/// The URL of the API server the current settings point at (kubeconfig or in-cluster),
/// without connecting; for messages such as `waiting for <url> ...`.
pub fn api_server_url() -> Result<String> {
    let settings = kube_env();
    block_on(ErrorKind::Kube, async {
        load_config(&settings)
            .await
            .map(|c| c.cluster_url.to_string())
            .map_err(|e| e.with_kind(ErrorKind::Kube))
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `fut` to completion on the process's runtime (blocking the calling thread).
pub(crate) fn block_on<T>(
    kind: ErrorKind,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    crate::runtime::block_on(kind, fut)
}

/// The client configuration of `settings` (kubeconfig or in-cluster, with our timeouts);
/// a [`ErrorKind::Config`] error saying `no usable Kubernetes configuration: ...` when
/// there is none (callers set their own kind).
async fn load_config(settings: &KubeEnv) -> Result<kube::Config> {
    let unusable =
        |what: String| Error::config(format!("no usable Kubernetes configuration: {what}"));
    let mut config = if settings.in_cluster() {
        kube::Config::incluster().map_err(|e| {
            unusable(format!(
                "in-cluster configuration (KUBERNETES_SERVICE_HOST is set): {e}"
            ))
            .caused_by(e)
        })?
    } else {
        let options = KubeConfigOptions {
            context: settings.context.clone(),
            ..KubeConfigOptions::default()
        };
        let source = match (&settings.kubeconfig, settings.kubeconfig_env.as_str()) {
            (Some(path), _) => format!("--kubeconfig {}", path.display()),
            (None, "") => "~/.kube/config".to_string(),
            (None, path) => format!("KUBECONFIG={path}"),
        };
        let loaded = match &settings.kubeconfig {
            Some(path) => match kube::config::Kubeconfig::read_from(path) {
                Ok(k) => kube::Config::from_custom_kubeconfig(k, &options).await,
                Err(e) => Err(e),
            },
            None => kube::Config::from_kubeconfig(&options).await,
        };
        loaded.map_err(|e| unusable(format!("kubeconfig ({source}): {e}")).caused_by(e))?
    };
    config.connect_timeout = Some(settings.connect_timeout);
    config.read_timeout = Some(settings.read_timeout);
    config.write_timeout = Some(settings.read_timeout);
    // The read timeout counts from when a request is sent, not from when a pooled
    // connection went idle.
    config.reset_reader_on_write = true;
    // Retries are ours (retry.rs): only where repeating a request is safe.
    config.default_retry = false;
    Ok(config)
}

/// The process's client, made on first use (or after a fork or a configuration change).
pub(crate) async fn connection(kind: ErrorKind, settings: &KubeEnv) -> Result<Connection> {
    let key = settings.client_key();
    let pid = crate::runtime::generation();
    {
        let mut slot = lock(&CLIENT);
        match slot.take() {
            Some(cached) if cached.pid == pid && cached.key == key => {
                let connection = cached.connection.clone();
                *slot = Some(cached);
                return Ok(connection);
            }
            Some(cached) if cached.pid != pid => {
                // The parent's client: its connections and background task belong to
                // the parent's runtime. Leave it alone.
                std::mem::forget(cached);
            }
            _ => {}
        }
    }
    let config = load_config(settings).await.map_err(|e| e.with_kind(kind))?;
    let config_namespace = config.default_namespace.clone();
    log::debug!(target: super::LOG_TARGET, "connecting to the Kubernetes API at {}", config.cluster_url);
    *lock(&API_URL) = config.cluster_url.to_string();
    let mut watch_config = config.clone();
    watch_config.read_timeout = Some(settings.watch_read_timeout());
    let connection = Connection {
        client: build_client(kind, config)?,
        watch_client: build_client(kind, watch_config)?,
        config_namespace,
    };
    *lock(&CLIENT) = Some(CachedClient {
        pid,
        key,
        connection: connection.clone(),
    });
    Ok(connection)
}

/// A client of `config` whose every request is counted by verb and code (src/metrics.rs).
fn build_client(kind: ErrorKind, config: kube::Config) -> Result<kube::Client> {
    kube::client::ClientBuilder::try_from(config)
        .map(|b| b.with_layer(&crate::metrics::KubeMetricsLayer).build())
        .map_err(|e| {
            Error::new(
                kind,
                format!(
                    "cannot create the Kubernetes client: {}",
                    super::describe(&e)
                ),
            )
        })
}

/// NAMESPACE, else the pod's service-account namespace file (non-empty values only).
fn environment_namespace(settings: &KubeEnv) -> Option<String> {
    crate::text::names::namespace_from(None, settings.namespace.clone())
}

/// The namespace an operation runs in: `explicit`, else NAMESPACE, else the pod's
/// service-account namespace, else the configuration's.
pub(crate) fn resolve_namespace(
    kind: ErrorKind,
    explicit: Option<&str>,
    connection: &Connection,
    settings: &KubeEnv,
) -> Result<String> {
    let namespace = explicit
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| environment_namespace(settings))
        .unwrap_or_else(|| connection.config_namespace.clone());
    if crate::text::names::is_dns_label(&namespace, 63) {
        Ok(namespace)
    } else {
        Err(Error::new(
            kind,
            format!("namespace {namespace:?} is not a valid Kubernetes namespace name"),
        ))
    }
}

/// The namespace operations use when the caller names none: NAMESPACE, the pod's
/// service-account namespace, the configuration's (loaded for this), else "default".
pub fn default_namespace() -> String {
    let settings = kube_env();
    environment_namespace(&settings).unwrap_or_else(|| {
        block_on(ErrorKind::Kube, connection(ErrorKind::Kube, &settings))
            .map(|c| c.config_namespace)
            .unwrap_or_else(|_| "default".into())
    })
}
