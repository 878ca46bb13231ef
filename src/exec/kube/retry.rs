//! Retries with exponential backoff and jitter.
//!
//! Idempotent calls (get, list, delete, deletecollection, a patch sent again with the
//! same body) are retried on 429, any 5xx and transport errors (refused, reset or
//! dropped connections, timeouts). A create is retried only when the server cannot have
//! applied it (429, 503, connection refused); when the outcome is unknown (another 5xx,
//! a dropped connection, a timeout) the object is read back by name first: ours → done,
//! absent → created again. A 409 AlreadyExists on a repeated create is success when
//! the object carries our `tycho-guid` label.
//!
//! A refused connection before this process has ever had an answer from the API server
//! at the current URL is not retried: nothing listens at the configured URL, and saying so at once is what
//! kubectl does. Once the server has answered, a refused connection is a restart and is
//! retried like any transport error. A call that fails after its retries reports them in
//! one error (`... (5 attempts)`), not once per attempt.

use super::error::KubeError;
use super::{describe, status_code, LOG_TARGET};
use kube::api::{Api, DynamicObject, PostParams};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// The URL of the API server that has answered a request of this process (any HTTP
/// status); "" before any answer.
static ANSWERED: Mutex<String> = Mutex::new(String::new());

fn answered() -> std::sync::MutexGuard<'static, String> {
    ANSWERED.lock().unwrap_or_else(|p| p.into_inner())
}

fn note<T>(result: &Result<T, kube::Error>) {
    if matches!(result, Ok(_) | Err(kube::Error::Api(_))) {
        let url = super::client::api_url();
        let mut slot = answered();
        if *slot != url {
            *slot = url;
        }
    }
}

/// A refused connection while the API server at this URL has never answered: fail at once.
fn never_there(e: &kube::Error) -> bool {
    refused(e) && *answered() != super::client::api_url()
}

/// Attempts per call (the first one included).
pub(crate) const MAX_ATTEMPTS: u32 = 5;
const BASE_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(3);

/// Delay before retry number `attempt` (0-based): exponential, capped, with jitter in
/// [d/2, d] so that concurrent clients spread out.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let exp = BASE_DELAY.saturating_mul(1u32 << attempt.min(16));
    let d = exp.min(MAX_DELAY);
    let half = d / 2;
    half + Duration::from_micros(fastrand::u64(0..=half.as_micros() as u64))
}

fn io_kind_in_chain(e: &kube::Error, wanted: std::io::ErrorKind) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == wanted {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// The connection was refused (nothing listens at the API server's address).
pub(crate) fn refused(e: &kube::Error) -> bool {
    match e {
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            io_kind_in_chain(e, std::io::ErrorKind::ConnectionRefused)
        }
        _ => false,
    }
}

/// The request cannot have reached the server's storage: safe to send again, even a create.
fn not_applied(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code == 503,
        _ => refused(e),
    }
}

/// Transient: worth another try for an idempotent request.
pub(crate) fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Outcome unknown: the server may or may not have applied the request.
fn ambiguous(e: &kube::Error) -> bool {
    transient(e) && !not_applied(e)
}

/// Runs an idempotent call, retrying transient failures. `what` names the call in logs.
pub(crate) async fn idempotent<T, F, Fut>(what: &str, mut call: F) -> Result<T, KubeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        let result = call().await;
        note(&result);
        match result {
            Ok(v) => return Ok(v),
            Err(e) if attempt + 1 < MAX_ATTEMPTS && transient(&e) && !never_there(&e) => {
                let delay = backoff(attempt);
                log::info!(target: LOG_TARGET, "{what}: {}; retrying in {} ms", describe(&e), delay.as_millis());
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(KubeError::from_kube(&e, attempt + 1)),
        }
    }
}

fn carries_guid(object: &DynamicObject, guid: &str) -> bool {
    object
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(super::GUID_LABEL))
        .is_some_and(|v| v == guid)
}

/// Reads the object back after a create whose outcome is unknown: Some(object) when it
/// exists and is ours, None when it does not exist.
async fn read_back(
    api: &Api<DynamicObject>,
    what: &str,
    name: &str,
    guid: &str,
) -> Result<Option<DynamicObject>, KubeError> {
    match idempotent(what, || api.get(name)).await {
        Ok(existing) if carries_guid(&existing, guid) => Ok(Some(existing)),
        Ok(_) => Err(KubeError::from_kube(
            &kube::Error::Api(Box::new(
                kube::core::Status::failure(
                    &format!("{name} already exists and does not belong to system {guid}"),
                    "AlreadyExists",
                )
                .with_code(409),
            )),
            1,
        )),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates `object` (named `name`, labelled `tycho-guid=guid`) with the retry rules above.
pub(crate) async fn create(
    api: &Api<DynamicObject>,
    what: &str,
    name: &str,
    guid: &str,
    object: &DynamicObject,
) -> Result<DynamicObject, KubeError> {
    let mut attempt = 0;
    loop {
        let result = api.create(&PostParams::default(), object).await;
        note(&result);
        let error = match result {
            Ok(created) => return Ok(created),
            Err(e) => e,
        };
        let failed = |e: &kube::Error| KubeError::from_kube(e, attempt + 1);
        let last = attempt + 1 >= MAX_ATTEMPTS || never_there(&error);
        if attempt > 0 && status_code(&error) == Some(409) {
            // An earlier attempt may have been applied after all.
            return match read_back(api, what, name, guid).await {
                Ok(Some(existing)) => {
                    log::info!(target: LOG_TARGET, "{what}: created by an earlier attempt");
                    Ok(existing)
                }
                // Could not tell: report the read's (transient) failure, so the caller
                // treats the outcome as unknown.
                Err(read) if read.transient() => Err(read),
                Ok(None) | Err(_) => Err(failed(&error)),
            };
        }
        if last || !(not_applied(&error) || ambiguous(&error)) {
            return Err(failed(&error));
        }
        if ambiguous(&error) {
            log::info!(target: LOG_TARGET, "{what}: {}; reading it back", describe(&error));
            match read_back(api, what, name, guid).await {
                Ok(Some(existing)) => return Ok(existing),
                Ok(None) => {}
                Err(_) => return Err(failed(&error)),
            }
        }
        let delay = backoff(attempt);
        log::info!(target: LOG_TARGET, "{what}: {}; retrying in {} ms", describe(&error), delay.as_millis());
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..20 {
            let d = backoff(attempt);
            let full = BASE_DELAY
                .saturating_mul(1u32 << attempt.min(16))
                .min(MAX_DELAY);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
        assert!(backoff(30) <= MAX_DELAY);
    }

    #[test]
    fn classification() {
        let api = |code: u16| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("m", "R").with_code(code),
            ))
        };
        assert!(transient(&api(429)) && not_applied(&api(429)));
        assert!(transient(&api(503)) && not_applied(&api(503)));
        assert!(transient(&api(500)) && ambiguous(&api(500)));
        assert!(transient(&api(504)) && ambiguous(&api(504)));
        assert!(!transient(&api(404)) && !transient(&api(409)) && !transient(&api(422)));
    }
}
