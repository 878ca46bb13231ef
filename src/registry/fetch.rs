//! HTTP(S) fetching of registry files, specs and `.env` settings, with an in-memory
//! cache revalidated with ETag / Last-Modified.
//!
//! * A cached answer younger than `max_age` is returned without a request.
//! * An older one is revalidated with `If-None-Match` / `If-Modified-Since`; a 304
//!   keeps the cached body.
//! * When the server cannot be reached (or answers 5xx) and a cached copy exists, the
//!   copy is returned, marked [`Fetched::stale`] so the caller can warn.
//! * Non-200 answers are returned, never cached.
//!
//! The client is `ureq` (rustls, timeouts on the whole exchange, proxies from the
//! environment). The connection pool is dropped in a forked child, so a worker
//! forked from a process that already fetched never shares a socket with it.

use super::model::context_error;
use crate::error::Result;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default timeout of one fetch (connect, send, receive), seconds.
pub const DEFAULT_TIMEOUT: f64 = 10.0;
/// Default age after which a cached answer is revalidated, seconds.
pub const DEFAULT_MAX_AGE: f64 = 60.0;
/// Largest body accepted (a registry file or compose spec is a few KiB).
pub const MAX_BODY: u64 = 32 * 1024 * 1024;

/// One answer.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL asked for.
    pub url: String,
    /// HTTP status (200 for an answer served from the cache).
    pub status: u16,
    /// The body as text.
    pub text: String,
    /// Response headers (names in lower case).
    pub headers: Vec<(String, String)>,
    /// Served from the cache.
    pub from_cache: bool,
    /// Served from the cache after the server answered 304.
    pub revalidated: bool,
    /// Served from the cache because revalidation failed; the reason.
    pub stale: Option<String>,
}

/// Request counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests sent.
    pub requests: u64,
    /// 304 answers.
    pub not_modified: u64,
    /// Answers served from a fresh cache entry without a request.
    pub hits: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    text: String,
    headers: Vec<(String, String)>,
    etag: Option<String>,
    last_modified: Option<String>,
    checked: Instant,
}

struct AgentSlot {
    pid: u32,
    timeout: Duration,
    agent: ureq::Agent,
}

/// The cache (one per registry context; safe to share between threads).
pub struct HttpCache {
    timeout_s: Mutex<f64>,
    max_age_s: Mutex<f64>,
    entries: Mutex<HashMap<String, Entry>>,
    agent: Mutex<Option<AgentSlot>>,
    requests: AtomicU64,
    not_modified: AtomicU64,
    hits: AtomicU64,
}

impl Default for HttpCache {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT, DEFAULT_MAX_AGE)
    }
}

impl std::fmt::Debug for HttpCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCache")
            .field("timeout", &self.timeout())
            .field("max_age", &self.max_age())
            .field("stats", &self.stats())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn seconds(value: f64, default: f64) -> f64 {
    if value.is_finite() && value >= 0.0 {
        value
    } else {
        default
    }
}

impl HttpCache {
    /// A cache whose fetches time out after `timeout` seconds and whose entries are
    /// revalidated after `max_age` seconds.
    pub fn new(timeout: f64, max_age: f64) -> Self {
        HttpCache {
            timeout_s: Mutex::new(seconds(timeout, DEFAULT_TIMEOUT)),
            max_age_s: Mutex::new(seconds(max_age, DEFAULT_MAX_AGE)),
            entries: Mutex::new(HashMap::new()),
            agent: Mutex::new(None),
            requests: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    /// Timeout of one fetch, seconds.
    pub fn timeout(&self) -> f64 {
        *lock(&self.timeout_s)
    }

    /// Sets the timeout of one fetch (seconds; invalid values keep the default).
    pub fn set_timeout(&self, value: f64) {
        *lock(&self.timeout_s) = seconds(value, DEFAULT_TIMEOUT);
    }

    /// Age after which an entry is revalidated, seconds.
    pub fn max_age(&self) -> f64 {
        *lock(&self.max_age_s)
    }

    /// Sets the revalidation age (seconds; 0 revalidates every time).
    pub fn set_max_age(&self, value: f64) {
        *lock(&self.max_age_s) = seconds(value, DEFAULT_MAX_AGE);
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            requests: self.requests.load(Ordering::Relaxed),
            not_modified: self.not_modified.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
        }
    }

    /// Forgets every cached answer.
    pub fn clear(&self) {
        lock(&self.entries).clear();
    }

    fn agent(&self) -> ureq::Agent {
        let pid = std::process::id();
        let timeout = Duration::from_secs_f64(self.timeout());
        let mut slot = lock(&self.agent);
        match slot.as_ref() {
            Some(s) if s.pid == pid && s.timeout == timeout => s.agent.clone(),
            _ => {
                let config = ureq::Agent::config_builder()
                    .timeout_global(Some(timeout))
                    .http_status_as_error(false)
                    .user_agent(concat!("tycho-registry/", env!("CARGO_PKG_VERSION")))
                    .build();
                let agent: ureq::Agent = config.into();
                if let Some(old) = slot.take() {
                    if old.pid != pid {
                        // Inherited over fork: its pooled sockets belong to the parent.
                        std::mem::forget(old);
                    }
                }
                *slot = Some(AgentSlot {
                    pid,
                    timeout,
                    agent: agent.clone(),
                });
                agent
            }
        }
    }

    fn cached(url: &str, entry: &Entry, revalidated: bool, stale: Option<String>) -> Fetched {
        Fetched {
            url: url.to_string(),
            status: 200,
            text: entry.text.clone(),
            headers: entry.headers.clone(),
            from_cache: true,
            revalidated,
            stale,
        }
    }

    /// GETs `url` through the cache. Errors only when the server cannot be reached
    /// and nothing is cached (`cannot fetch <url>: <reason>`).
    // Long because: the HTTP cache's cases (fresh, revalidated, stale on failure, new) in one place.
    pub fn get(&self, url: &str) -> Result<Fetched> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(context_error(format!(
                "cannot fetch {url}: only http and https URLs are supported"
            )));
        }
        let entry = lock(&self.entries).get(url).cloned();
        if let Some(e) = &entry {
            if e.checked.elapsed().as_secs_f64() < self.max_age() {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Self::cached(url, e, false, None));
            }
        }
        let mut request = self.agent().get(url).header("Accept", "*/*");
        if let Some(e) = &entry {
            if let Some(etag) = &e.etag {
                request = request.header("If-None-Match", etag.as_str());
            }
            if let Some(modified) = &e.last_modified {
                request = request.header("If-Modified-Since", modified.as_str());
            }
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = request.call().and_then(|mut response| {
            let status = response.status().as_u16();
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let text = if status == 304 {
                String::new()
            } else {
                response
                    .body_mut()
                    .with_config()
                    .limit(MAX_BODY)
                    .lossy_utf8(true)
                    .read_to_string()?
            };
            Ok((status, headers, text))
        });
        let (status, headers, text) = match outcome {
            Ok(answer) => answer,
            Err(e) => {
                return match &entry {
                    Some(cached) => Ok(Self::cached(url, cached, false, Some(e.to_string()))),
                    None => Err(context_error(format!("cannot fetch {url}: {e}"))),
                };
            }
        };
        if let Some(cached) = &entry {
            if status == 304 {
                self.not_modified.fetch_add(1, Ordering::Relaxed);
                if let Some(e) = lock(&self.entries).get_mut(url) {
                    e.checked = Instant::now();
                }
                return Ok(Self::cached(url, cached, true, None));
            }
            if status >= 500 {
                return Ok(Self::cached(
                    url,
                    cached,
                    false,
                    Some(format!("HTTP status {status}")),
                ));
            }
        }
        if status == 200 {
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            lock(&self.entries).insert(
                url.to_string(),
                Entry {
                    text: text.clone(),
                    headers: headers.clone(),
                    etag: header("etag"),
                    last_modified: header("last-modified"),
                    checked: Instant::now(),
                },
            );
        }
        Ok(Fetched {
            url: url.to_string(),
            status,
            text,
            headers,
            from_cache: false,
            revalidated: false,
            stale: None,
        })
    }

    /// The body at `url`; any status but 200 is an error naming `what`, the URL and
    /// the status.
    pub fn fetch(&self, url: &str, what: &str) -> Result<Fetched> {
        let answer = self.get(url)?;
        if answer.status != 200 {
            return Err(context_error(format!(
                "failed to fetch {what} {url}: HTTP status {}",
                answer.status
            )));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A one-file server: 200 with an ETag, 304 when it matches.
    fn serve(body: &'static str, answers: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/file", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut inm = false;
                let mut path = String::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if path.is_empty() {
                        path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    }
                    if line
                        .to_ascii_lowercase()
                        .starts_with("if-none-match: \"v1\"")
                    {
                        inm = true;
                    }
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                let mut stream = stream;
                let reply = if path != "/file" {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                } else if inm {
                    "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n".to_string()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                seen.push(format!("{path} {}", if inm { 304 } else { 200 }));
                stream.write_all(reply.as_bytes()).unwrap();
            }
            seen
        });
        (url, handle)
    }

    #[test]
    fn revalidates_and_reports_status() {
        let (url, server) = serve("hello", 3);
        let cache = HttpCache::new(5.0, 0.0);
        let first = cache.get(&url).unwrap();
        assert_eq!(
            (first.status, first.text.as_str(), first.from_cache),
            (200, "hello", false)
        );
        let second = cache.get(&url).unwrap();
        assert!(second.from_cache && second.revalidated && second.text == "hello");
        let missing = url.replace("/file", "/other");
        let e = cache.fetch(&missing, "spec").unwrap_err();
        assert!(
            e.message.contains(&missing) && e.message.contains("404"),
            "{}",
            e.message
        );
        server.join().unwrap();
        assert_eq!(cache.stats().not_modified, 1);
        // the server is gone: the cached copy is served, marked stale
        let third = cache.get(&url).unwrap();
        assert!(third.from_cache && third.stale.is_some());
        let e = cache.get(&missing).unwrap_err();
        assert!(e.message.starts_with("cannot fetch"), "{}", e.message);
    }

    #[test]
    fn fresh_entries_are_not_revalidated() {
        let (url, server) = serve("x", 1);
        let cache = HttpCache::new(5.0, 3600.0);
        cache.get(&url).unwrap();
        assert!(cache.get(&url).unwrap().from_cache);
        server.join().unwrap();
        assert_eq!(cache.stats().hits, 1);
        assert!(cache.get("ftp://x/y").is_err());
    }
}
