//! Configuration, the executor's tokio runtime and its kube client.
//!
//! Nothing happens at import or construction time: the runtime and the client are made
//! on the first operation. There is one runtime and one client per process; both are
//! made again in a child after `fork()` (gunicorn workers): a child must never use the
//! parent's runtime, whose threads it does not have, so the parent's are left alone
//! (leaked, never dropped) and new ones are made. The client is also made again when
//! the configuration environment (KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT, the
//! timeout variables) changes.
//!
//! Cluster: in-cluster when `KUBERNETES_SERVICE_HOST` is set, else the kubeconfig
//! (`KUBECONFIG`, else `~/.kube/config`, its current context). Namespace: the caller's,
//! else `NAMESPACE`, else the pod's service-account namespace file, else the kubeconfig
//! context's namespace, else `default`.

use crate::error::{Error, ErrorKind, Result};
use kube::config::KubeConfigOptions;
use std::sync::Mutex;
use std::time::Duration;

/// Timeouts of the executor (seconds in the environment variables named).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Connecting to the API server (`TYCHO_KUBE_CONNECT_TIMEOUT`, default 10 s).
    pub connect_timeout: Duration,
    /// Waiting for a response, and writing a request (`TYCHO_KUBE_READ_TIMEOUT`, default 30 s).
    pub read_timeout: Duration,
    /// A whole operation, retries included (`TYCHO_KUBE_TIMEOUT`, default 120 s).
    /// Start's clean-up after a failure has its own budget of the same length.
    pub operation_timeout: Duration,
}

fn seconds(var: &str, default: f64) -> Duration {
    let value = std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(default);
    Duration::from_secs_f64(value)
}

impl Settings {
    /// The settings from the environment.
    pub fn from_env() -> Settings {
        Settings {
            connect_timeout: seconds("TYCHO_KUBE_CONNECT_TIMEOUT", 10.0),
            read_timeout: seconds("TYCHO_KUBE_READ_TIMEOUT", 30.0),
            operation_timeout: seconds("TYCHO_KUBE_TIMEOUT", 120.0),
        }
    }
}

/// What decides which client to make: when it changes, a new client is made.
fn config_key(settings: &Settings) -> String {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{:?}",
        var("KUBECONFIG"),
        var("HOME"),
        var("KUBERNETES_SERVICE_HOST"),
        var("KUBERNETES_SERVICE_PORT"),
        settings.connect_timeout,
        settings.read_timeout
    )
}

/// A ready client and the namespace of its configuration.
#[derive(Clone)]
pub(crate) struct Connection {
    pub client: kube::Client,
    /// The kubeconfig context's namespace (in-cluster: the service account's), else "default".
    pub config_namespace: String,
}

struct CachedClient {
    pid: u32,
    key: String,
    connection: Connection,
}

static RUNTIME: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
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
    let settings = Settings::from_env();
    block_on(ErrorKind::Kube, async {
        load_config(&settings)
            .await
            .map(|c| c.cluster_url.to_string())
            .map_err(|e| {
                Error::new(
                    ErrorKind::Kube,
                    format!("no usable Kubernetes configuration: {e}"),
                )
            })
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The executor's runtime for this process (made on first use, and again after fork).
pub(crate) fn runtime(kind: ErrorKind) -> Result<&'static tokio::runtime::Runtime> {
    let pid = std::process::id();
    let mut slot = lock(&RUNTIME);
    if let Some((owner, rt)) = *slot {
        if owner == pid {
            return Ok(rt);
        }
        // A forked child: the parent's runtime has no threads here. Never touch or drop it.
        log::debug!(target: super::LOG_TARGET, "process {pid} was forked from {owner}: new runtime");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tycho-kube")
        .enable_all()
        .build()
        .map_err(|e| Error::new(kind, format!("cannot start the executor's runtime: {e}")))?;
    let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}

/// Runs `fut` to completion on the executor's runtime (blocking the calling thread).
pub(crate) fn block_on<T>(
    kind: ErrorKind,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    runtime(kind)?.block_on(fut)
}

async fn load_config(settings: &Settings) -> std::result::Result<kube::Config, String> {
    let in_cluster = std::env::var("KUBERNETES_SERVICE_HOST").is_ok_and(|h| !h.is_empty());
    let mut config = if in_cluster {
        kube::Config::incluster().map_err(|e| {
            format!("in-cluster configuration (KUBERNETES_SERVICE_HOST is set): {e}")
        })?
    } else {
        kube::Config::from_kubeconfig(&KubeConfigOptions::default())
            .await
            .map_err(|e| {
                let source = match std::env::var("KUBECONFIG") {
                    Ok(path) if !path.is_empty() => format!("KUBECONFIG={path}"),
                    _ => "~/.kube/config".to_string(),
                };
                format!("kubeconfig ({source}): {e}")
            })?
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
pub(crate) async fn connection(kind: ErrorKind) -> Result<Connection> {
    let settings = Settings::from_env();
    let key = config_key(&settings);
    let pid = std::process::id();
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
    let config = load_config(&settings)
        .await
        .map_err(|e| Error::new(kind, format!("no usable Kubernetes configuration: {e}")))?;
    let config_namespace = config.default_namespace.clone();
    log::debug!(target: super::LOG_TARGET, "connecting to the Kubernetes API at {}", config.cluster_url);
    *lock(&API_URL) = config.cluster_url.to_string();
    // Every request is counted by verb and code (src/metrics.rs).
    let client = kube::client::ClientBuilder::try_from(config)
        .map(|b| b.with_layer(&crate::metrics::KubeMetricsLayer).build())
        .map_err(|e| {
            Error::new(
                kind,
                format!(
                    "cannot create the Kubernetes client: {}",
                    super::describe(&e)
                ),
            )
        })?;
    let connection = Connection {
        client,
        config_namespace,
    };
    *lock(&CLIENT) = Some(CachedClient {
        pid,
        key,
        connection: connection.clone(),
    });
    Ok(connection)
}

/// NAMESPACE, else the pod's service-account namespace file (non-empty values only).
fn environment_namespace() -> Option<String> {
    crate::names::namespace_from(None, std::env::var("NAMESPACE").ok())
}

/// The namespace an operation runs in: `explicit`, else NAMESPACE, else the pod's
/// service-account namespace, else the configuration's.
pub(crate) fn resolve_namespace(
    kind: ErrorKind,
    explicit: Option<&str>,
    connection: &Connection,
) -> Result<String> {
    let namespace = explicit
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(environment_namespace)
        .unwrap_or_else(|| connection.config_namespace.clone());
    if crate::names::is_dns_label(&namespace, 63) {
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
    environment_namespace().unwrap_or_else(|| {
        block_on(ErrorKind::Kube, connection(ErrorKind::Kube))
            .map(|c| c.config_namespace)
            .unwrap_or_else(|_| "default".into())
    })
}
