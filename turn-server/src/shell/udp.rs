//! UDP shell: each UDP shard (one SO_REUSEPORT socket, so the kernel keeps every client on one
//! shard) owns a [`Shard`] core by `&mut`; each allocation's relay socket has its own small task
//! for the peer→client direction, which reads a published [`Routes`] snapshot without locks.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::allocation::{AllocId, Routes, TokenBucket};
use crate::core::{Event, Shard, Transport};
use crate::frame::{frame_for_client, TxidGen, HEADROOM, TAILROOM};
use crate::metrics::Direction;
use crate::shell::Ctx;

/// Largest peer datagram relayed; bigger ones are truncated by the kernel and dropped.
pub(crate) const MAX_PEER_DATAGRAM: usize = 8192;
/// Datagrams handled per wake-up before yielding back to `select!`.
const BATCH: usize = 64;

struct RelayHandle {
    send: StdUdp,
    routes: watch::Sender<Arc<Routes>>,
    task: JoinHandle<()>,
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve one UDP shard until `shutdown` fires.
pub(crate) async fn run_shard(sock: StdUdp, ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>) {
    let send = match sock.try_clone() {
        Ok(s) => s,
        Err(e) => return tracing::error!(error = %e, "cannot clone UDP socket"),
    };
    let sock = match UdpSocket::from_std(sock) {
        Ok(s) => Arc::new(s),
        Err(e) => return tracing::error!(error = %e, "cannot register UDP socket"),
    };
    let send = Arc::new(send);
    let mut shard = Shard::new(Transport::Udp, ctx.shared.clone(), ctx.epoch);
    let mut relays: HashMap<AllocId, RelayHandle> = HashMap::new();
    let mut bound: HashMap<AllocId, StdUdp> = HashMap::new();
    let to_peer = ctx
        .shared
        .metrics
        .traffic(Transport::Udp, Direction::ToPeer);
    let mut buf = vec![0u8; 65536];
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let now = Instant::now();
                let mut next = r;
                for _ in 0..BATCH {
                    let Ok((n, from)) = next else { break };
                    if let Some(relay) = shard.handle_client_packet(now, from, &buf[..n]) {
                        if let Some(h) = relays.get(&relay.alloc) {
                            if h.send.send_to(relay.payload, relay.peer).is_ok() {
                                to_peer.add(relay.payload.len());
                            }
                        }
                    }
                    drain(&mut shard, &ctx, &send, &mut relays, &mut bound, now);
                    next = sock.try_recv_from(&mut buf);
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                shard.handle_timeout(now);
                drain(&mut shard, &ctx, &send, &mut relays, &mut bound, now);
            }
            _ = shutdown.changed() => break,
        }
    }
    shard.handle_close(Instant::now());
}

fn drain(
    shard: &mut Shard,
    ctx: &Arc<Ctx>,
    send: &Arc<StdUdp>,
    relays: &mut HashMap<AllocId, RelayHandle>,
    bound: &mut HashMap<AllocId, StdUdp>,
    now: Instant,
) {
    loop {
        let mut idle = true;
        while let Some(t) = shard.poll_transmit() {
            idle = false;
            let _ = send.send_to(&t.data, t.to);
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
                        bound.insert(alloc, s);
                        shard.handle_relay_bound(now, alloc, Ok(b));
                    }
                    Err(e) => shard.handle_relay_bound(now, alloc, Err(e)),
                },
                Event::AllocationCreated {
                    alloc,
                    client,
                    routes,
                } => {
                    let Some(s) = bound.remove(&alloc) else {
                        continue;
                    };
                    if let Some(h) = spawn_relay(s, send.clone(), client, routes, ctx) {
                        relays.insert(alloc, h);
                    }
                }
                Event::RoutesChanged { alloc, routes } => {
                    if let Some(h) = relays.get(&alloc) {
                        h.routes.send_replace(routes);
                    }
                }
                Event::AllocationFreed { alloc } => {
                    relays.remove(&alloc);
                }
            }
        }
        if idle {
            break;
        }
    }
}

fn spawn_relay(
    s: StdUdp,
    client_send: Arc<StdUdp>,
    client: SocketAddr,
    routes: Arc<Routes>,
    ctx: &Arc<Ctx>,
) -> Option<RelayHandle> {
    let send = s.try_clone().ok()?;
    let recv = UdpSocket::from_std(s).ok()?;
    let (tx, rx) = watch::channel(routes);
    let ctx = ctx.clone();
    let task = tokio::spawn(peer_to_client(recv, client_send, client, rx, ctx));
    Some(RelayHandle {
        send,
        routes: tx,
        task,
    })
}

/// Peer→client for one UDP allocation: read at [`HEADROOM`], frame in place, send.
async fn peer_to_client(
    relay: UdpSocket,
    client_send: Arc<StdUdp>,
    client: SocketAddr,
    mut routes: watch::Receiver<Arc<Routes>>,
    ctx: Arc<Ctx>,
) {
    let traffic = ctx
        .shared
        .metrics
        .traffic(Transport::Udp, Direction::ToClient);
    let mut bucket = TokenBucket::new(ctx.shared.config.limits.bandwidth_per_allocation);
    let limited =
        ctx.shared.config.limits.bandwidth_per_allocation > 0 || ctx.shared.budget.is_limited();
    let mut buf = vec![0u8; HEADROOM + MAX_PEER_DATAGRAM + TAILROOM];
    let mut txids = TxidGen::new(rand::random());
    let mut current = routes.borrow_and_update().clone();
    loop {
        let r = relay
            .recv_from(&mut buf[HEADROOM..HEADROOM + MAX_PEER_DATAGRAM])
            .await;
        let mut next = r;
        for _ in 0..BATCH {
            let (n, peer) = match next {
                Ok(x) => x,
                Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => break, // ICMP-induced errors: keep serving
            };
            if routes.has_changed().unwrap_or(false) {
                current = routes.borrow_and_update().clone();
            }
            if let Some(route) = current.route(peer) {
                let ok = !limited
                    || (bucket.try_take(Instant::now(), n) && ctx.shared.budget.try_take(n));
                if ok {
                    let txid = txids.next_txid();
                    if let Some(range) = frame_for_client(&mut buf, n, peer, route, false, txid) {
                        if client_send.send_to(&buf[range], client).is_ok() {
                            traffic.add(n);
                        }
                    }
                } else {
                    ctx.shared.metrics.quota_refusal("bandwidth");
                }
            }
            next = relay.try_recv_from(&mut buf[HEADROOM..HEADROOM + MAX_PEER_DATAGRAM]);
        }
    }
}
