//! Graceful shutdown: SIGTERM or SIGINT stops accepting connections; requests in flight
//! get [`DRAIN`] to finish; a second signal exits at once.

use std::time::Duration;

/// How long requests in flight may take after the signal.
pub const DRAIN: Duration = Duration::from_secs(30);

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C); logs which.
pub async fn signal() {
    let which = next_signal().await;
    log::info!(target: crate::server::LOG_TARGET, "{which} received: finishing requests in flight (at most {} s), then exiting", DRAIN.as_secs());
}

/// Resolves on the next SIGTERM or SIGINT with its name.
pub async fn next_signal() -> &'static str {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
        "SIGTERM"
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<&str>();
    tokio::select! {
        w = interrupt => w,
        w = terminate => w,
    }
}
