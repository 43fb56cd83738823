//! The public listeners (`[http] listen` and `redirect_listen`): our own accept loop around
//! hyper's HTTP/1 server, so that no client, with a token or without, can hold a connection
//! open by being slow. A connection passes these deadlines from accept to close:
//!
//! 1. At accept, the caps: at most `max_connections` open in all and
//!    `max_connections_per_address` from one client address (see [`AddrKey`]), counted until
//!    the socket closes, WebSockets included. The excess is closed at once.
//! 2. HTTPS only: the TLS handshake within `tls_handshake_timeout`.
//! 3. Each request header within `header_read_timeout`. hyper starts this timer whenever the
//!    connection is ready for a request: right after accept (or the handshake) and again as
//!    soon as a response is done, so it also bounds a keep-alive connection waiting for its
//!    next request.
//! 4. No bytes in either direction for `idle_timeout` closes an HTTP connection, whatever it
//!    is doing: a stalled request body, or a client that stops reading its response.
//! 5. A WebSocket upgrade ends the HTTP connection here. The socket then belongs to the
//!    session, whose own deadlines apply (a `join` within `join_timeout`); neither timer above
//!    touches it any more, so a joined visit may be quiet for as long as it lasts.
//!
//! HTTP/1.1 only: browsers open WebSockets over it, and the TLS config offers only `http/1.1`.
//! Client addresses live in memory only while their connections are open and never reach a
//! log or a metric label.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounterVec, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::tls::LiveConfig;

/// How long open connections may go on finishing their requests once a listener stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The pause after an accept error that is not about one connection (out of file descriptors,
/// out of memory): it starts short and doubles up to the longer value, so the loop never spins.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Deadlines and caps of the public listeners (`[http]` in the config).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Time a client has to send a complete request header, from when the connection is ready
    /// for a request: after accept or the TLS handshake, and after each response.
    pub header_read_timeout: Duration,
    /// Time without a byte in either direction before an HTTP connection is closed. Not
    /// applied once the connection is a WebSocket.
    pub idle_timeout: Duration,
    /// Time a client has to complete the TLS handshake (HTTPS only).
    pub tls_handshake_timeout: Duration,
    /// Connections open at once from one client address (an IPv6 /64 counts as one).
    pub max_connections_per_address: usize,
    /// Connections open at once in all.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections_per_address: 50,
            max_connections: 10_000,
        }
    }
}

/// What the per-address cap counts by: an IPv4 address, or an IPv6 /64. One home or clinic
/// network is commonly given a whole /64, so counting single IPv6 addresses would let one
/// client spread over more addresses than it could ever use. An IPv4 client of a dual-stack
/// listener (`::ffff:a.b.c.d`) counts as its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AddrKey {
    V4(Ipv4Addr),
    V6Net(u64),
}

impl AddrKey {
    fn of(ip: IpAddr) -> AddrKey {
        match ip {
            IpAddr::V4(a) => AddrKey::V4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => AddrKey::V4(v4),
                None => AddrKey::V6Net((u128::from(a) >> 64) as u64),
            },
        }
    }
}

/// Which cap refused a connection; the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    PerAddress,
    Total,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::PerAddress => "per_address",
            Refusal::Total => "total",
        }
    }
}

/// The open connections of the public listeners, shared by all of them so `max_connections`
/// holds for the process.
pub(crate) struct Connections {
    limits: HttpLimits,
    open: Mutex<Open>,
    gauge: IntGauge,
    refused: IntCounterVec,
    timed_out: IntCounterVec,
}

#[derive(Default)]
struct Open {
    total: usize,
    /// Only addresses with a connection open: an entry goes when its last connection closes.
    by_address: HashMap<AddrKey, usize>,
}

impl Connections {
    pub(crate) fn new(limits: HttpLimits, metrics: &Metrics) -> Arc<Connections> {
        Arc::new(Connections {
            limits,
            open: Mutex::new(Open::default()),
            gauge: metrics.http_connections.clone(),
            refused: metrics.http_refused.clone(),
            timed_out: metrics.http_timed_out.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // Nothing panics while the lock is held; a poisoned lock still has consistent counts.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new connection from `ip`, or names the cap it would exceed.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let key = AddrKey::of(ip);
        let mut open = self.lock();
        if open.total >= self.limits.max_connections {
            return Err(Refusal::Total);
        }
        let from_here = open.by_address.get(&key).copied().unwrap_or(0);
        if from_here >= self.limits.max_connections_per_address {
            return Err(Refusal::PerAddress);
        }
        open.by_address.insert(key, from_here + 1);
        open.total += 1;
        drop(open);
        self.gauge.inc();
        Ok(Permit {
            connections: self.clone(),
            key,
        })
    }

    fn timed_out(&self, phase: &'static str) {
        self.timed_out.with_label_values(&[phase]).inc();
        debug!(phase, "connection closed: the client was too slow");
    }
}

/// One connection's place under the caps, given back when dropped.
struct Permit {
    connections: Arc<Connections>,
    key: AddrKey,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_address.remove(&self.key);
            }
        }
        drop(open);
        self.connections.gauge.dec();
    }
}

/// When bytes last moved on a connection, for the idle timer.
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last read or write that moved a byte.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let Some(deadline) = self.start.checked_add(last + limit) else {
                return std::future::pending().await;
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A client's socket: notes when bytes move, and holds the connection's [`Permit`] until it is
/// dropped, which for a WebSocket is when the session ends.
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
    _permit: Permit,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Plain HTTP, or HTTPS with the certificate the watcher keeps current.
#[derive(Clone)]
pub(crate) enum Transport {
    Plain,
    Tls(LiveConfig),
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets open
/// HTTP connections finish for up to [`SHUTDOWN_GRACE`] and returns. WebSockets already
/// upgraded are the sessions' to end.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    transport: Transport,
    connections: Arc<Connections>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut backoff = ACCEPT_BACKOFF.0;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = ACCEPT_BACKOFF.0;
                a
            }
            // The client gave up between connecting and our accept: nothing to wait for.
            Err(e) if about_one_connection(&e) => continue,
            Err(e) => {
                warn!(
                    error = %e,
                    pause_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    "accepting a connection failed; pausing the listener"
                );
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                continue;
            }
        };
        let permit = match connections.admit(peer.ip()) {
            Ok(p) => p,
            Err(refusal) => {
                connections
                    .refused
                    .with_label_values(&[refusal.as_str()])
                    .inc();
                debug!(
                    reason = refusal.as_str(),
                    "connection refused: too many open"
                );
                drop(stream);
                continue;
            }
        };
        let conn = Conn {
            peer,
            router: router.clone(),
            connections: connections.clone(),
            stop: stop_rx.clone(),
        };
        // Its own task: a panic or error on one connection ends that connection only.
        tokio::spawn(conn.run(stream, permit, transport.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    // Every connection task holds a receiver until it ends (or its socket becomes a WebSocket).
    if tokio::time::timeout(SHUTDOWN_GRACE, stop_tx.closed())
        .await
        .is_err()
    {
        debug!("HTTP connections still open at the end of the shutdown grace");
    }
}

/// Accept errors that concern one connection only; any other (EMFILE, ENOMEM) pauses the loop.
fn about_one_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// One accepted connection, from its TLS handshake to the end of its HTTP part.
struct Conn {
    peer: SocketAddr,
    router: Router,
    connections: Arc<Connections>,
    stop: watch::Receiver<bool>,
}

impl Conn {
    async fn run(mut self, stream: TcpStream, permit: Permit, transport: Transport) {
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = Tracked {
            stream,
            activity: activity.clone(),
            _permit: permit,
        };
        let live = match transport {
            Transport::Plain => return self.http(io, &activity).await,
            Transport::Tls(live) => live,
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(live.current());
        let limit = self.connections.limits.tls_handshake_timeout;
        let handshake = tokio::select! {
            r = tokio::time::timeout(limit, acceptor.accept(io)) => r,
            _ = self.stop.wait_for(|stop| *stop) => return,
        };
        match handshake {
            Ok(Ok(tls)) => self.http(tls, &activity).await,
            Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
            Err(_) => self.connections.timed_out("tls_handshake"),
        }
    }

    /// Serves HTTP/1.1 requests until the client closes, a deadline passes, the listener stops,
    /// or the connection is upgraded to a WebSocket.
    async fn http<I>(&mut self, io: I, activity: &Activity)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut req| {
            // Handlers read the client address (the join rate limiter) from here.
            req.extensions_mut().insert(ConnectInfo(peer));
            tower_service::Service::call(&mut router.clone(), req)
        });
        let limits = self.connections.limits;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        let mut stopping = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    match r {
                        Err(e) if e.is_timeout() => self.connections.timed_out("header"),
                        Err(e) => debug!(error = %e, "HTTP connection ended with an error"),
                        Ok(()) => {}
                    }
                    return;
                }
                () = activity.idle_for(limits.idle_timeout) => {
                    // Dropping the connection closes the socket.
                    self.connections.timed_out("idle");
                    return;
                }
                _ = self.stop.wait_for(|stop| *stop), if !stopping => {
                    // Finishes the request in flight, then closes; idle connections close now.
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::10".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::10".parse().unwrap();
        assert_eq!(AddrKey::of(a), AddrKey::of(b));
        assert_ne!(AddrKey::of(a), AddrKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "::ffff:192.0.2.8".parse().unwrap();
        assert_eq!(AddrKey::of(mapped), AddrKey::of(v4));
        assert_ne!(AddrKey::of(mapped), AddrKey::of(other));
    }

    #[test]
    fn caps_count_until_the_permit_is_dropped_and_forget_closed_addresses() {
        let limits = HttpLimits {
            max_connections_per_address: 2,
            max_connections: 3,
            ..HttpLimits::default()
        };
        let metrics = Metrics::new();
        let conns = Connections::new(limits, &metrics);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = conns.admit(a).unwrap();
        let a2 = conns.admit(a).unwrap();
        assert_eq!(conns.admit(a).err(), Some(Refusal::PerAddress));
        let b1 = conns.admit(b).unwrap();
        assert_eq!(conns.admit(b).err(), Some(Refusal::Total));
        assert_eq!(metrics.http_connections.get(), 3);
        drop(a1);
        let a3 = conns.admit(a).unwrap();
        drop((a2, a3, b1));
        assert_eq!(metrics.http_connections.get(), 0);
        let open = conns.lock();
        assert_eq!(open.total, 0);
        assert!(open.by_address.is_empty(), "no address is kept once closed");
    }
}
