//! TCP and TLS shell: one task per connection owns its [`Shard`] (one client, at most one
//! allocation) and that allocation's relay socket, so both directions run without sharing.
//! TLS and plain TCP share a port: a first byte of 0x16 (TLS handshake) selects TLS.

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use crate::allocation::{AllocId, Routes, TokenBucket};
use crate::core::{Event, Shard, Transport};
use crate::frame::{frame_for_client, TxidGen, HEADROOM, TAILROOM};
use crate::metrics::Direction;
use crate::shell::udp::MAX_PEER_DATAGRAM;
use crate::shell::Ctx;
use crate::stun::{tcp_frame_len, HEADER_LEN};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame: a STUN message or ChannelData with a 64 KiB payload.
const MAX_FRAME: usize = HEADER_LEN + 65535 + 3;

/// Accept connections until `shutdown`; `tls` says whether this port also speaks TLS.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: bool,
    ctx: Arc<Ctx>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
                        ctx.shared.metrics.quota_refusal("connections");
                        continue;
                    };
                    let ctx = ctx.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        handle(stream, peer, tls, ctx, shutdown).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    tls: bool,
    ctx: Arc<Ctx>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let acceptor = if tls {
        ctx.tls.as_ref().map(|t| t.acceptor())
    } else {
        None
    };
    if let Some(acceptor) = acceptor {
        let mut first = [0u8; 1];
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            _ => return,
        }
        if first[0] == 0x16 {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => serve(s, peer, Transport::Tls, ctx, shutdown).await,
                _ => tracing::debug!("TLS handshake failed or timed out"),
            }
            return;
        }
    }
    serve(stream, peer, Transport::Tcp, ctx, shutdown).await;
}

struct TcpRelay {
    alloc: AllocId,
    send: StdUdp,
    recv: UdpSocket,
    routes: Arc<Routes>,
}

async fn recv_relay(
    relay: &Option<TcpRelay>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match relay {
        Some(r) => {
            r.recv
                .recv_from(&mut buf[HEADROOM..HEADROOM + MAX_PEER_DATAGRAM])
                .await
        }
        None => std::future::pending().await,
    }
}

/// Serve one client connection (plain or TLS) until it closes, misbehaves or idles out.
async fn serve<S>(
    mut stream: S,
    peer: SocketAddr,
    transport: Transport,
    ctx: Arc<Ctx>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let gauge = ctx.shared.metrics.connections(transport);
    gauge.inc();
    let mut shard = Shard::new(transport, ctx.shared.clone(), ctx.epoch);
    let to_peer = ctx.shared.metrics.traffic(transport, Direction::ToPeer);
    let to_client = ctx.shared.metrics.traffic(transport, Direction::ToClient);
    let limits = &ctx.shared.config.limits;
    let mut bucket = TokenBucket::new(limits.bandwidth_per_allocation);
    let mut rbuf = vec![0u8; 4096];
    let (mut start, mut end) = (0usize, 0usize);
    let mut pbuf = vec![0u8; HEADROOM + MAX_PEER_DATAGRAM + TAILROOM];
    let mut relay: Option<TcpRelay> = None;
    let mut pending: Option<(AllocId, StdUdp)> = None;
    let mut txids = TxidGen::new(rand::random());
    let idle = Duration::from_secs(ctx.idle_timeout_secs);
    let mut last_progress = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    'conn: loop {
        tokio::select! {
            r = stream.read(&mut rbuf[end..]) => {
                let n = match r { Ok(0) | Err(_) => break, Ok(n) => n };
                end += n;
                let now = Instant::now();
                loop {
                    match tcp_frame_len(&rbuf[start..end]) {
                        Ok(Some(len)) => {
                            last_progress = now;
                            let frame = &rbuf[start..start + len];
                            if let Some(r) = shard.handle_client_packet(now, peer, frame) {
                                if let Some(rel) = relay.as_ref().filter(|x| x.alloc == r.alloc) {
                                    if rel.send.send_to(r.payload, r.peer).is_ok() {
                                        to_peer.add(r.payload.len());
                                    }
                                }
                            }
                            start += len;
                        }
                        Ok(None) => break,
                        Err(_) => {
                            ctx.shared.metrics.malformed(transport);
                            break 'conn;
                        }
                    }
                }
                // Keep the unread tail at the front; grow only up to one maximal frame.
                rbuf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                if end == rbuf.len() {
                    if rbuf.len() >= MAX_FRAME {
                        break;
                    }
                    rbuf.resize((rbuf.len() * 2).min(MAX_FRAME), 0);
                }
                if !drain(&mut shard, &ctx, &mut stream, &mut relay, &mut pending, now).await {
                    break;
                }
            }
            r = recv_relay(&relay, &mut pbuf) => {
                let Ok((n, from)) = r else { continue };
                let Some(rel) = relay.as_ref() else { continue };
                let Some(route) = rel.routes.route(from) else { continue };
                let limited = limits.bandwidth_per_allocation > 0 || ctx.shared.budget.is_limited();
                if limited && !(bucket.try_take(Instant::now(), n) && ctx.shared.budget.try_take(n)) {
                    ctx.shared.metrics.quota_refusal("bandwidth");
                    continue;
                }
                let Some(range) = frame_for_client(&mut pbuf, n, from, route, true, txids.next_txid()) else { continue };
                if stream.write_all(&pbuf[range]).await.is_err() {
                    break;
                }
                to_client.add(n);
            }
            _ = tick.tick() => {
                let now = Instant::now();
                shard.handle_timeout(now);
                if !drain(&mut shard, &ctx, &mut stream, &mut relay, &mut pending, now).await {
                    break;
                }
                if shard.allocation_count() == 0 && now.duration_since(last_progress) > idle {
                    break;
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    shard.handle_close(Instant::now());
    let _ = stream.shutdown().await;
    gauge.dec();
}

/// Apply core outputs; `false` when the connection should close.
async fn drain<S: AsyncWrite + Unpin>(
    shard: &mut Shard,
    ctx: &Arc<Ctx>,
    stream: &mut S,
    relay: &mut Option<TcpRelay>,
    pending: &mut Option<(AllocId, StdUdp)>,
    now: Instant,
) -> bool {
    loop {
        let mut idle = true;
        while let Some(t) = shard.poll_transmit() {
            idle = false;
            if stream.write_all(&t.data).await.is_err() {
                return false;
            }
        }
        while let Some(ev) = shard.poll_event() {
            idle = false;
            match ev {
                Event::BindRelay {
                    alloc,
                    family,
                    port,
                } => match ctx.ports.bind(family, port) {
                    Ok((s, b)) => {
                        *pending = Some((alloc, s));
                        shard.handle_relay_bound(now, alloc, Ok(b));
                    }
                    Err(e) => shard.handle_relay_bound(now, alloc, Err(e)),
                },
                Event::AllocationCreated { alloc, routes, .. } => {
                    let Some((id, s)) = pending.take().filter(|(id, _)| *id == alloc) else {
                        continue;
                    };
                    let Ok(send) = s.try_clone() else { continue };
                    let Ok(recv) = UdpSocket::from_std(s) else {
                        continue;
                    };
                    *relay = Some(TcpRelay {
                        alloc: id,
                        send,
                        recv,
                        routes,
                    });
                }
                Event::RoutesChanged { alloc, routes } => {
                    if let Some(r) = relay.as_mut().filter(|r| r.alloc == alloc) {
                        r.routes = routes;
                    }
                }
                Event::AllocationFreed { alloc } => {
                    if relay.as_ref().is_some_and(|r| r.alloc == alloc) {
                        *relay = None;
                    }
                }
            }
        }
        if idle {
            return true;
        }
    }
}

/// The bound listener for `addr`, for the helper that binds everything.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}
