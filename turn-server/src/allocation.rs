//! One TURN allocation as a small state machine: [`PendingAllocation`] (authorised, waiting for
//! its relay socket) turns into [`Allocation`] by consuming itself; an `Allocation` ends by being
//! dropped from its shard. No I/O and no clock here: time comes in as `now`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shard-local allocation id, minted only by the shard that owns the allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocId(pub u64);

/// Relay address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// Which relay port the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRequest {
    Any,
    /// EVEN-PORT; `reserve_next` is the R bit (keep port+1 for a later allocation).
    Even {
        reserve_next: bool,
    },
    /// RESERVATION-TOKEN from an earlier EVEN-PORT allocation.
    Reserved([u8; 8]),
}

/// A token bucket in bytes; `rate == 0` means unlimited.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    tokens: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub fn new(rate_bytes_per_sec: u64) -> Self {
        TokenBucket {
            rate: rate_bytes_per_sec,
            tokens: rate_bytes_per_sec,
            last: None,
        }
    }

    /// Take `n` bytes if available (burst up to one second of rate).
    pub fn try_take(&mut self, now: Instant, n: usize) -> bool {
        if self.rate == 0 {
            return true;
        }
        let n = n as u64;
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last);
            if elapsed >= Duration::from_millis(1) {
                let add = self.rate.saturating_mul(elapsed.as_micros() as u64) / 1_000_000;
                self.tokens = self.tokens.saturating_add(add).min(self.rate);
                self.last = Some(now);
            }
        } else {
            self.last = Some(now);
        }
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// How a packet from a peer reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRoute {
    Channel(u16),
    DataIndication,
}

/// Read-only snapshot of who may send to the client, published to the peer→client path each
/// time a permission or channel is added or expires, so that path needs no lock and no clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    permissions: Vec<IpAddr>,
    channels: Vec<(SocketAddr, u16)>,
}

impl Routes {
    pub fn route(&self, peer: SocketAddr) -> Option<PeerRoute> {
        if !self.permissions.contains(&peer.ip()) {
            return None;
        }
        Some(match self.channels.iter().find(|(p, _)| *p == peer) {
            Some((_, ch)) => PeerRoute::Channel(*ch),
            None => PeerRoute::DataIndication,
        })
    }
}

/// Credentials an allocation was created with.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub quota_key: String,
    pub key: [u8; 16],
    pub expiry_unix: u64,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(redacted)")
    }
}

/// Authorised Allocate waiting for the shell to bind a relay socket.
#[derive(Debug)]
pub struct PendingAllocation {
    pub client: SocketAddr,
    pub creds: Credentials,
    pub lifetime: Duration,
    pub txid: [u8; 12],
    pub fingerprint: bool,
    pub family: Family,
    pub port: PortRequest,
}

/// Why a permission or channel was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: channel number or peer already bound to something else.
    ChannelConflict,
    /// 508: too many permissions on this allocation.
    Capacity,
}

#[derive(Debug, Clone, Copy)]
struct Channel {
    peer: SocketAddr,
    expires: Instant,
}

/// A live allocation.
#[derive(Debug)]
pub struct Allocation {
    pub id: AllocId,
    pub client: SocketAddr,
    pub creds: Credentials,
    pub relay: SocketAddr,
    pub expires: Instant,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, Channel>,
    peer_channels: HashMap<SocketAddr, u16>,
    pub bucket: TokenBucket,
    /// Transaction id and bytes of the Allocate success, for retransmitted requests.
    pub allocate_txid: [u8; 12],
    pub allocate_response: Vec<u8>,
}

impl PendingAllocation {
    /// The relay socket is bound: the allocation goes live.
    pub fn activate(self, id: AllocId, now: Instant, relay: SocketAddr, rate: u64) -> Allocation {
        Allocation {
            id,
            client: self.client,
            creds: self.creds,
            relay,
            expires: now + self.lifetime,
            permissions: HashMap::new(),
            channels: HashMap::new(),
            peer_channels: HashMap::new(),
            bucket: TokenBucket::new(rate),
            allocate_txid: self.txid,
            allocate_response: Vec::new(),
        }
    }
}

impl Allocation {
    pub fn refresh(&mut self, now: Instant, lifetime: Duration) {
        self.expires = now + lifetime;
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.expires
    }

    /// Is there an unexpired permission for `ip`?
    pub fn permits(&self, now: Instant, ip: IpAddr) -> bool {
        self.permissions.get(&ip).is_some_and(|e| *e > now)
    }

    /// Install or refresh permissions for all `ips` (all or nothing). `Ok(true)` if the set of
    /// permitted addresses changed.
    pub fn add_permissions(
        &mut self,
        now: Instant,
        ips: &[IpAddr],
        lifetime: Duration,
        max: usize,
    ) -> Result<bool, Refusal> {
        let new = ips
            .iter()
            .filter(|ip| !self.permissions.contains_key(ip))
            .count();
        if self.permissions.len() + new > max {
            return Err(Refusal::Capacity);
        }
        for ip in ips {
            self.permissions.insert(*ip, now + lifetime);
        }
        Ok(new > 0)
    }

    /// Bind or refresh `channel` to `peer` (also refreshing the peer's permission).
    pub fn bind_channel(
        &mut self,
        now: Instant,
        channel: u16,
        peer: SocketAddr,
        channel_lifetime: Duration,
        permission_lifetime: Duration,
        max_permissions: usize,
    ) -> Result<bool, Refusal> {
        match (self.channels.get(&channel), self.peer_channels.get(&peer)) {
            (Some(c), _) if c.peer != peer => return Err(Refusal::ChannelConflict),
            (_, Some(ch)) if *ch != channel => return Err(Refusal::ChannelConflict),
            _ => {}
        }
        if self.channels.len() >= max_permissions && !self.channels.contains_key(&channel) {
            return Err(Refusal::Capacity);
        }
        let mut changed =
            self.add_permissions(now, &[peer.ip()], permission_lifetime, max_permissions)?;
        let expires = now + channel_lifetime;
        if self
            .channels
            .insert(channel, Channel { peer, expires })
            .is_none()
        {
            changed = true;
        }
        self.peer_channels.insert(peer, channel);
        Ok(changed)
    }

    /// The peer of a live channel whose permission is also live.
    pub fn channel_peer(&self, now: Instant, channel: u16) -> Option<SocketAddr> {
        let c = self.channels.get(&channel)?;
        (c.expires > now && self.permits(now, c.peer.ip())).then_some(c.peer)
    }

    /// Drop expired permissions and channels; `true` if anything went.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = (self.permissions.len(), self.channels.len());
        self.permissions.retain(|_, e| *e > now);
        self.channels.retain(|_, c| c.expires > now);
        let channels = &self.channels;
        self.peer_channels.retain(|_, ch| channels.contains_key(ch));
        before != (self.permissions.len(), self.channels.len())
    }

    /// Earliest instant at which something in this allocation expires.
    pub fn next_expiry(&self) -> Instant {
        let p = self.permissions.values().copied();
        let c = self.channels.values().map(|c| c.expires);
        p.chain(c).fold(self.expires, Instant::min)
    }

    pub fn routes(&self) -> Arc<Routes> {
        let mut permissions: Vec<IpAddr> = self.permissions.keys().copied().collect();
        permissions.sort();
        let mut channels: Vec<(SocketAddr, u16)> =
            self.channels.iter().map(|(ch, c)| (c.peer, *ch)).collect();
        channels.sort();
        Arc::new(Routes {
            permissions,
            channels,
        })
    }
}
