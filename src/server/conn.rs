//! Serving connections: the accept loop with a connection limit in all and per client
//! address, HTTP/1.1 (hyper) with a header-read timeout, a stall timeout on writes, and
//! graceful shutdown.
//!
//! axum's own `serve` sets no timer, so a client that sends half a request line holds
//! its connection (and a file descriptor) forever; here hyper's `header_read_timeout`
//! drops it, and a semaphore bounds the connections served at once.
//!
//! One address may hold at most `--max-connections-per-peer` of them ([`Peers`]): one
//! more closes that address's connection that has waited longest for a request (one
//! that has a request in progress is never closed), or is closed itself when every one
//! has a request in progress. So a client that opens thousands of half-open connections
//! holds a few hundred, never the whole server, and a connection that sends its request
//! at once (a probe of `/healthz`, a scrape of `/metrics`) is answered at once, even
//! from that very address.

use super::limits::Limits;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Sleep;

/// A stream whose writes fail with `TimedOut` when they make no progress for `limit`
/// (a client that stops reading its answer).
struct Stall<T> {
    inner: T,
    limit: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<T> Stall<T> {
    fn new(inner: T, limit: Duration) -> Self {
        Stall {
            inner,
            limit,
            deadline: None,
        }
    }

    /// After a write-side poll: clear the deadline on progress, arm and check it while
    /// pending.
    fn track<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(r) => {
                self.deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let deadline = self
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if deadline.as_mut().poll(cx).is_ready() {
                    self.deadline = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not read the answer in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stall<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stall<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.track(cx, polled)
    }
}

/// One connection, as its address's list of connections sees it.
#[derive(Default)]
struct Conn {
    /// Requests in progress (hyper serves one at a time; a body being read counts).
    busy: AtomicUsize,
    /// Wakes the connection's task to close it.
    close: Notify,
}

/// The open connections of each client address, oldest first.
pub(crate) struct Peers {
    limit: usize,
    open: Mutex<HashMap<IpAddr, VecDeque<Arc<Conn>>>>,
}

/// What [`Peers::admit`] decided.
enum Admission {
    /// Serve it (the guard takes it off the list when it closes).
    Admitted(PeerGuard),
    /// Every connection of the address has a request in progress: close this one.
    Refused,
}

/// A connection on its address's list, until dropped.
struct PeerGuard {
    peers: Arc<Peers>,
    peer: IpAddr,
    conn: Arc<Conn>,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = open.get_mut(&self.peer) {
            list.retain(|c| !Arc::ptr_eq(c, &self.conn));
            if list.is_empty() {
                open.remove(&self.peer);
            }
        }
    }
}

/// The address connections are counted by: IPv4 as is (an IPv4-mapped IPv6 address as
/// its IPv4 address), IPv6 by its /64 (what one client usually gets).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Peers {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Peers {
            limit: limit.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a new connection of `ip` on, closing the address's connection that has
    /// waited longest for a request when it is at its limit.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> (Admission, bool) {
        let peer = peer_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let list = open.entry(peer).or_default();
        let mut evicted = false;
        if list.len() >= self.limit {
            let idle = list.iter().position(|c| c.busy.load(Ordering::SeqCst) == 0);
            match idle {
                Some(i) => {
                    let old = list.remove(i).expect("an index of the list");
                    old.close.notify_one();
                    evicted = true;
                }
                None => return (Admission::Refused, false),
            }
        }
        let conn = Arc::new(Conn::default());
        list.push_back(conn.clone());
        (
            Admission::Admitted(PeerGuard {
                peers: self.clone(),
                peer,
                conn,
            }),
            evicted,
        )
    }
}

/// Marks its connection busy while a request is in progress.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: &Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::SeqCst);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Logs at most one warning in this many seconds about one kind of event.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Whether a warning last logged at `last` may be logged again now.
fn may_warn(last: &Mutex<Option<std::time::Instant>>) -> bool {
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

/// Accepts and serves connections until the future is dropped (on shutdown); each
/// connection is watched by `graceful`, so shutting it down lets answers in flight finish.
// Long because: the accept loop with each refusal (connection cap, per-address cap, accept errors) where it happens.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    graceful: &GracefulShutdown,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut full_logged = false;
    let peers = Peers::new(limits.max_connections_per_peer);
    let evict_logged = Mutex::new(None);
    let refuse_logged = Mutex::new(None);
    loop {
        let permit = match connections.clone().try_acquire_owned() {
            Ok(p) => {
                full_logged = false;
                p
            }
            Err(_) => {
                if !full_logged {
                    log::warn!(target: crate::server::LOG_TARGET, "{} connections open (--max-connections): new ones wait", limits.max_connections);
                    full_logged = true;
                }
                match connections.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                }
            }
        };
        let (stream, address) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or memory, or a connection reset before it was
                // accepted: wait a little, never stop serving.
                log::warn!(target: crate::server::LOG_TARGET, "cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let guard = match peers.admit(address.ip()) {
            (Admission::Admitted(guard), evicted) => {
                if evicted && may_warn(&evict_logged) {
                    log::warn!(target: crate::server::LOG_TARGET, "{} has {} connections open (--max-connections-per-peer): its connections that wait longest for a request are closed", address.ip(), peers.limit);
                }
                guard
            }
            (Admission::Refused, _) => {
                if may_warn(&refuse_logged) {
                    log::warn!(target: crate::server::LOG_TARGET, "{} has {} requests in progress (--max-connections-per-peer): its new connections are closed", address.ip(), peers.limit);
                }
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Stall::new(stream, limits.idle_timeout));
        let conn = guard.conn.clone();
        let inner = TowerToHyperService::new(router.clone());
        let service = hyper::service::service_fn(move |request| {
            let busy = Busy::new(&conn);
            let answer = hyper::service::Service::call(&inner, request);
            async move {
                let answer = answer.await;
                drop(busy);
                answer
            }
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            let _permit = permit;
            let conn = guard.conn.clone();
            let _guard = guard;
            tokio::select! {
                closed = connection => if let Err(e) = closed {
                    log::debug!(target: crate::server::LOG_TARGET, "connection closed: {e}");
                },
                _ = conn.close.notified() => {
                    // Dropping the connection closes it: its address needed the room.
                    log::debug!(target: crate::server::LOG_TARGET, "connection closed for a newer one of its address");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(peers: &Arc<Peers>, ip: &str) -> (PeerGuard, bool) {
        match peers.admit(ip.parse().unwrap()) {
            (Admission::Admitted(g), evicted) => (g, evicted),
            (Admission::Refused, _) => panic!("{ip} refused"),
        }
    }

    fn closing(guard: &PeerGuard) -> bool {
        // The stored permit of notify_one: a fresh waiter completes at once.
        let notified = guard.conn.close.notified();
        futures::FutureExt::now_or_never(notified).is_some()
    }

    #[test]
    fn an_address_at_its_limit_loses_its_oldest_idle_connection() {
        let peers = Peers::new(2);
        let (a, _) = admitted(&peers, "10.0.0.1");
        let (b, _) = admitted(&peers, "10.0.0.1");
        // Another address has its own count.
        let (_other, evicted) = admitted(&peers, "10.0.0.2");
        assert!(!evicted);
        let (c, evicted) = admitted(&peers, "10.0.0.1");
        assert!(evicted && closing(&a) && !closing(&b));
        // A connection with a request in progress is never closed for a newer one.
        let busy_b = Busy::new(&b.conn);
        let (d, evicted) = admitted(&peers, "10.0.0.1");
        assert!(evicted && closing(&c) && !closing(&b));
        let busy_d = Busy::new(&d.conn);
        assert!(matches!(
            peers.admit("10.0.0.1".parse().unwrap()).0,
            Admission::Refused
        ));
        // The request ends: its connection may go again.
        drop(busy_b);
        let (_e, evicted) = admitted(&peers, "10.0.0.1");
        assert!(evicted && closing(&b) && !closing(&d));
        drop(busy_d);
        // Closed connections leave the list; an address with none leaves the map.
        drop((a, b, c, d, _e));
        assert!(!peers
            .open
            .lock()
            .unwrap()
            .contains_key(&"10.0.0.1".parse::<IpAddr>().unwrap()));
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            peer_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            peer_key("::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        let peers = Peers::new(1);
        let (first, _) = admitted(&peers, "2001:db8::1");
        let (_second, evicted) = admitted(&peers, "2001:db8::2");
        assert!(evicted && closing(&first));
    }
}
