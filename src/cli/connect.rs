//! Failing fast on a cluster that does not answer: before a command talks to the
//! cluster, one `GET /version` to the API server (the URL from the kubeconfig or the
//! in-cluster configuration). When no answer came after [`NOTICE_AFTER`], the command
//! says on stderr what it waits for (`tycho: waiting for <url> ...`); when none came
//! after [`GIVE_UP_AFTER`], it fails naming the URL — instead of the executor's own
//! retries and timeouts (up to `TYCHO_KUBE_TIMEOUT`, 120 s) on a dead server.

use crate::error::{Error, ErrorKind, Result};
use std::time::Duration;

/// When the `waiting for <url> ...` line is printed.
pub const NOTICE_AFTER: Duration = Duration::from_millis(1500);
/// When a server that has not answered is given up on.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(12);

/// Ok when the Kubernetes API server answers; an error naming its URL when it refuses,
/// fails or does not answer within [`GIVE_UP_AFTER`].
pub fn check_cluster() -> Result<()> {
    crate::exec::kube::wait::block_on(async {
        // The executor's own client (kubeconfig, context and timeouts as it uses them).
        let connection =
            crate::exec::kube::client::connection(ErrorKind::Kube, &crate::exec::kube::settings())
                .await?;
        let url = crate::exec::kube::client::api_url();
        let url = url.trim_end_matches('/').to_string();
        let client = connection.client;
        let probe = async move {
            client
                .apiserver_version()
                .await
                .map(|_| ())
                .map_err(|e| Error::new(ErrorKind::Kube, crate::exec::kube::describe(&e)))
        };
        tokio::pin!(probe);
        let named = |e: Error| {
            if e.message.contains(&url) {
                e
            } else {
                Error::new(e.kind, format!("{url}: {}", e.message))
            }
        };
        tokio::select! {
            r = &mut probe => return r.map_err(named),
            () = tokio::time::sleep(NOTICE_AFTER) => eprintln!("tycho: waiting for {url} ..."),
        }
        match tokio::time::timeout(GIVE_UP_AFTER - NOTICE_AFTER, probe).await {
            Ok(r) => r.map_err(named),
            Err(_) => Err(Error::new(
                ErrorKind::Kube,
                format!(
                    "the Kubernetes API server {url} did not answer within {} s",
                    GIVE_UP_AFTER.as_secs()
                ),
            )),
        }
    })
}
