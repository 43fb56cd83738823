//! The sans-IO TURN core. One [`Shard`] owns the allocations of the clients it serves (one UDP
//! socket shard, or one TCP/TLS connection). Input: `handle_client_packet(now, from, bytes)`,
//! `handle_relay_bound(now, …)`, `handle_timeout(now)`, `handle_close(now)`. Output: control
//! responses via [`Shard::poll_transmit`], shell work via [`Shard::poll_event`], and — on the hot
//! path — a borrowed [`Relay`] decision returned directly, so relaying allocates nothing.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::allocation::{
    AllocId, Allocation, Credentials, Family, PendingAllocation, PortRequest, Refusal, Routes,
};
use crate::auth::{self, NonceCheck};
pub use crate::shared::{CoreConfig, Limits, Quotas, Shared, Transport};
use crate::stun::{attr, method, Builder, ChannelData, Class, Message, CHANNEL_MAX, CHANNEL_MIN};

/// A control message to send to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// Work for the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bind a relay socket and answer with [`Shard::handle_relay_bound`].
    BindRelay {
        alloc: AllocId,
        family: Family,
        port: PortRequest,
    },
    /// The allocation is live: start relaying peer→client with these routes.
    AllocationCreated {
        alloc: AllocId,
        client: SocketAddr,
        routes: Arc<Routes>,
    },
    /// Who may reach the client changed.
    RoutesChanged { alloc: AllocId, routes: Arc<Routes> },
    /// Close the relay socket.
    AllocationFreed { alloc: AllocId },
}

/// Outcome of binding a relay socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayBound {
    /// The address to advertise in XOR-RELAYED-ADDRESS.
    pub addr: SocketAddr,
    /// Set when the shell kept port+1 for a later allocation (EVEN-PORT with R bit).
    pub reservation: Option<[u8; 8]>,
}

/// Why the shell could not bind a relay socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("no free relay port")]
    NoPort,
    #[error("unknown or expired reservation token")]
    BadReservation,
}

/// Client data to relay to a peer through the relay socket of `alloc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay<'a> {
    pub alloc: AllocId,
    pub peer: SocketAddr,
    pub payload: &'a [u8],
}

enum Slot {
    Pending(PendingAllocation),
    Active(Box<Allocation>),
}

const KNOWN: &[u16] = &[
    attr::USERNAME,
    attr::MESSAGE_INTEGRITY,
    attr::CHANNEL_NUMBER,
    attr::LIFETIME,
    attr::XOR_PEER_ADDRESS,
    attr::DATA,
    attr::REALM,
    attr::NONCE,
    attr::REQUESTED_ADDRESS_FAMILY,
    attr::EVEN_PORT,
    attr::REQUESTED_TRANSPORT,
    attr::DONT_FRAGMENT,
    attr::RESERVATION_TOKEN,
];

/// Context of the request being answered.
struct Req {
    from: SocketAddr,
    method: u16,
    txid: [u8; 12],
    fingerprint: bool,
}

/// The sans-IO core of one shard.
pub struct Shard {
    transport: Transport,
    shared: Arc<Shared>,
    epoch: (Instant, u64),
    by_client: HashMap<SocketAddr, AllocId>,
    slots: HashMap<AllocId, Slot>,
    next_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_sweep: Option<Instant>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("transport", &self.transport)
            .field("allocations", &self.slots.len())
            .finish()
    }
}

impl Shard {
    /// `epoch` ties the monotonic clock to Unix time: `(an instant, unix seconds at that instant)`.
    pub fn new(transport: Transport, shared: Arc<Shared>, epoch: (Instant, u64)) -> Self {
        Shard {
            transport,
            shared,
            epoch,
            by_client: HashMap::new(),
            slots: HashMap::new(),
            next_id: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_sweep: None,
        }
    }

    fn unix(&self, now: Instant) -> u64 {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0).as_secs()
    }

    fn limits(&self) -> &Limits {
        &self.shared.config.limits
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Shard::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_sweep
    }

    /// Number of live or pending allocations in this shard.
    pub fn allocation_count(&self) -> usize {
        self.slots.len()
    }

    /// A datagram or TCP frame from a client. Returns data to relay to a peer, if any.
    pub fn handle_client_packet<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &'a [u8],
    ) -> Option<Relay<'a>> {
        if crate::stun::looks_like_stun(data) {
            let Ok(msg) = Message::parse(data) else {
                self.shared.metrics.malformed(self.transport);
                return None;
            };
            match msg.class() {
                Class::Request => {
                    self.handle_request(now, from, &msg);
                    None
                }
                Class::Indication if msg.method() == method::SEND => {
                    self.handle_send(now, from, &msg)
                }
                _ => None,
            }
        } else {
            let Ok(cd) = ChannelData::parse(data) else {
                self.shared.metrics.malformed(self.transport);
                return None;
            };
            let id = *self.by_client.get(&from)?;
            let Some(Slot::Active(a)) = self.slots.get_mut(&id) else {
                return None;
            };
            let peer = a.channel_peer(now, cd.channel)?;
            if !a.bucket.try_take(now, cd.payload.len())
                || !self.shared.budget.try_take(cd.payload.len())
            {
                self.shared.metrics.quota_refusal("bandwidth");
                return None;
            }
            Some(Relay {
                alloc: id,
                peer,
                payload: cd.payload,
            })
        }
    }

    fn handle_send<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'a>,
    ) -> Option<Relay<'a>> {
        let id = *self.by_client.get(&from)?;
        let Some(Slot::Active(a)) = self.slots.get_mut(&id) else {
            return None;
        };
        let peer = msg.xor_address(attr::XOR_PEER_ADDRESS).ok()??;
        let payload = msg.get(attr::DATA)?;
        if !self.shared.config.policy.permits(peer.ip()) {
            self.shared.metrics.policy_refusal("send");
            return None;
        }
        if !a.permits(now, peer.ip()) {
            return None;
        }
        if !a.bucket.try_take(now, payload.len()) || !self.shared.budget.try_take(payload.len()) {
            self.shared.metrics.quota_refusal("bandwidth");
            return None;
        }
        Some(Relay {
            alloc: id,
            peer,
            payload,
        })
    }

    fn respond(
        &mut self,
        req: &Req,
        key: Option<&[u8]>,
        error: Option<(u16, &str)>,
        f: impl FnOnce(&mut Builder<'_>),
    ) {
        let mut data = Vec::with_capacity(128);
        let class = if error.is_some() {
            Class::Error
        } else {
            Class::Success
        };
        let mut b = Builder::new(&mut data, req.method, class, req.txid);
        if let Some((code, reason)) = error {
            b.error(code, reason);
        }
        f(&mut b);
        if let Some(k) = key {
            b.integrity(k);
        }
        if req.fingerprint {
            b.fingerprint();
        }
        self.transmits.push_back(Transmit { to: req.from, data });
    }

    fn error(&mut self, req: &Req, key: Option<&[u8]>, code: u16, reason: &str) {
        self.respond(req, key, Some((code, reason)), |_| {});
    }

    /// 401 or 438 carrying a fresh nonce and the realm.
    fn challenge(&mut self, now: Instant, req: &Req, code: u16) {
        let nonce = self.shared.nonce_key.mint(
            self.unix(now),
            self.limits().nonce_lifetime.as_secs(),
            req.from.ip(),
        );
        let realm = self.shared.config.realm.clone();
        let reason = if code == 438 {
            "Stale Nonce"
        } else {
            "Unauthorized"
        };
        self.respond(req, None, Some((code, reason)), |b| {
            b.attr(attr::REALM, realm.as_bytes())
                .attr(attr::NONCE, nonce.as_bytes());
        });
    }

    /// Long-term credential check; on failure the error response is already queued.
    fn authenticate(&mut self, now: Instant, req: &Req, msg: &Message<'_>) -> Option<Credentials> {
        if !msg.has_integrity() {
            self.challenge(now, req, 401);
            return None;
        }
        let (Some(user), Some(realm), Some(nonce)) = (
            msg.get(attr::USERNAME),
            msg.get(attr::REALM),
            msg.get(attr::NONCE),
        ) else {
            self.shared.metrics.auth_failure("malformed");
            self.error(req, None, 400, "Bad Request");
            return None;
        };
        match self
            .shared
            .nonce_key
            .check(nonce, self.unix(now), req.from.ip())
        {
            NonceCheck::Valid => {}
            NonceCheck::Stale | NonceCheck::Invalid => {
                self.challenge(now, req, 438);
                return None;
            }
        }
        let cfg = &self.shared.config;
        let (Ok(user), true) = (std::str::from_utf8(user), realm == cfg.realm.as_bytes()) else {
            self.shared.metrics.auth_failure("bad_credentials");
            self.challenge(now, req, 401);
            return None;
        };
        let Some(rest) = auth::parse_rest_username(user) else {
            self.shared.metrics.auth_failure("bad_credentials");
            self.challenge(now, req, 401);
            return None;
        };
        if rest.expiry_unix < self.unix(now) {
            self.shared.metrics.auth_failure("expired");
            self.challenge(now, req, 401);
            return None;
        }
        // Requests on an existing allocation must use its username; reuse its derived key.
        if let Some(Slot::Active(a)) = self
            .by_client
            .get(&req.from)
            .and_then(|id| self.slots.get(id))
        {
            if a.creds.username != user {
                self.error(req, None, 441, "Wrong Credentials");
                return None;
            }
            if msg.verify_integrity(&a.creds.key) {
                return Some(a.creds.clone());
            }
        } else {
            for key in auth::candidate_keys(&cfg.secrets, user, &cfg.realm) {
                if msg.verify_integrity(&key) {
                    return Some(Credentials {
                        username: user.to_owned(),
                        quota_key: rest.quota_key.to_owned(),
                        key,
                        expiry_unix: rest.expiry_unix,
                    });
                }
            }
        }
        self.shared.metrics.auth_failure("bad_credentials");
        self.challenge(now, req, 401);
        None
    }

    fn handle_request(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>) {
        let req = Req {
            from,
            method: msg.method(),
            txid: msg.transaction_id(),
            fingerprint: msg.has_fingerprint(),
        };
        match msg.method() {
            method::BINDING => self.respond(&req, None, None, |b| {
                b.xor_addr(attr::XOR_MAPPED_ADDRESS, from);
            }),
            method::ALLOCATE => self.handle_allocate(now, &req, msg),
            method::REFRESH | method::CREATE_PERMISSION | method::CHANNEL_BIND => {
                self.handle_on_allocation(now, &req, msg)
            }
            _ => self.error(&req, None, 400, "Bad Request"),
        }
    }

    fn handle_allocate(&mut self, now: Instant, req: &Req, msg: &Message<'_>) {
        if let Some(id) = self.by_client.get(&req.from) {
            match self.slots.get(id) {
                Some(Slot::Active(a)) if a.allocate_txid == req.txid => {
                    let data = a.allocate_response.clone();
                    self.transmits.push_back(Transmit { to: req.from, data });
                }
                Some(Slot::Active(_)) => self.error(req, None, 437, "Allocation Mismatch"),
                _ => {} // retransmission while the relay is being bound
            }
            return;
        }
        let Some(creds) = self.authenticate(now, req, msg) else {
            return;
        };
        let key = creds.key;
        let unknown = msg.unknown_required(KNOWN);
        if !unknown.is_empty() {
            let v: Vec<u8> = unknown.iter().flat_map(|t| t.to_be_bytes()).collect();
            self.respond(req, Some(&key), Some((420, "Unknown Attribute")), |b| {
                b.attr(attr::UNKNOWN_ATTRIBUTES, &v);
            });
            return;
        }
        match msg.get(attr::REQUESTED_TRANSPORT) {
            Some([17, ..]) => {}
            Some([_, ..]) => {
                return self.error(req, Some(&key), 442, "Unsupported Transport Protocol")
            }
            _ => return self.error(req, Some(&key), 400, "Bad Request"),
        }
        let even = msg.get(attr::EVEN_PORT);
        let token = msg.get(attr::RESERVATION_TOKEN);
        let fam = msg.get(attr::REQUESTED_ADDRESS_FAMILY);
        if (even.is_some() && token.is_some()) || (token.is_some() && fam.is_some()) {
            return self.error(req, Some(&key), 400, "Bad Request");
        }
        let family = match fam {
            None => Family::V4,
            Some([1, ..]) => Family::V4,
            Some([2, ..]) => Family::V6,
            Some(_) => return self.error(req, Some(&key), 440, "Address Family not Supported"),
        };
        let cfg = &self.shared.config;
        if (family == Family::V4 && !cfg.relay_v4) || (family == Family::V6 && !cfg.relay_v6) {
            return self.error(req, Some(&key), 440, "Address Family not Supported");
        }
        let port = match (even, token) {
            (Some([b, ..]), _) => PortRequest::Even {
                reserve_next: b & 0x80 != 0,
            },
            (Some(_), _) => return self.error(req, Some(&key), 400, "Bad Request"),
            (None, Some(t)) => match <[u8; 8]>::try_from(t) {
                Ok(t) => PortRequest::Reserved(t),
                Err(_) => return self.error(req, Some(&key), 400, "Bad Request"),
            },
            (None, None) => PortRequest::Any,
        };
        let lifetime = self.lifetime(msg);
        if let Err(quota) = self.shared.acquire(&creds.quota_key) {
            self.shared.metrics.quota_refusal(quota);
            return self.error(req, Some(&key), 486, "Allocation Quota Reached");
        }
        let id = AllocId(self.next_id);
        self.next_id += 1;
        let pending = PendingAllocation {
            client: req.from,
            creds,
            lifetime,
            txid: req.txid,
            fingerprint: req.fingerprint,
            family,
            port,
        };
        self.by_client.insert(req.from, id);
        self.slots.insert(id, Slot::Pending(pending));
        self.events.push_back(Event::BindRelay {
            alloc: id,
            family,
            port,
        });
    }

    fn lifetime(&self, msg: &Message<'_>) -> Duration {
        let l = self.limits();
        let asked = match msg.get(attr::LIFETIME) {
            Some(&[a, b, c, d]) => {
                Some(Duration::from_secs(u32::from_be_bytes([a, b, c, d]).into()))
            }
            _ => None,
        };
        asked
            .map_or(l.allocation_default_lifetime, |a| {
                a.max(l.allocation_default_lifetime)
            })
            .min(l.allocation_max_lifetime)
    }

    /// The shell bound (or failed to bind) the relay socket of a pending allocation.
    pub fn handle_relay_bound(
        &mut self,
        now: Instant,
        alloc: AllocId,
        result: Result<RelayBound, BindError>,
    ) {
        let Some(Slot::Pending(p)) = self.slots.remove(&alloc) else {
            return;
        };
        let req = Req {
            from: p.client,
            method: method::ALLOCATE,
            txid: p.txid,
            fingerprint: p.fingerprint,
        };
        let bound = match result {
            Ok(b) => b,
            Err(_) => {
                self.by_client.remove(&p.client);
                self.shared.release(&p.creds.quota_key);
                self.shared.metrics.quota_refusal("relay_ports");
                return self.error(&req, Some(&p.creds.key), 508, "Insufficient Capacity");
            }
        };
        let lifetime = p.lifetime;
        let mut a = p.activate(
            alloc,
            now,
            bound.addr,
            self.limits().bandwidth_per_allocation,
        );
        let mut data = Vec::with_capacity(128);
        {
            let mut b = Builder::new(&mut data, method::ALLOCATE, Class::Success, req.txid);
            b.xor_addr(attr::XOR_RELAYED_ADDRESS, bound.addr)
                .u32_attr(attr::LIFETIME, lifetime.as_secs() as u32)
                .xor_addr(attr::XOR_MAPPED_ADDRESS, req.from);
            if let Some(t) = bound.reservation {
                b.attr(attr::RESERVATION_TOKEN, &t);
            }
            b.integrity(&a.creds.key);
            if req.fingerprint {
                b.fingerprint();
            }
        }
        a.allocate_response = data.clone();
        self.transmits.push_back(Transmit { to: req.from, data });
        self.events.push_back(Event::AllocationCreated {
            alloc,
            client: a.client,
            routes: a.routes(),
        });
        self.shared.metrics.allocations(self.transport).inc();
        self.schedule(a.next_expiry());
        self.slots.insert(alloc, Slot::Active(Box::new(a)));
    }

    fn schedule(&mut self, at: Instant) {
        self.next_sweep = Some(self.next_sweep.map_or(at, |s| s.min(at)));
    }

    fn handle_on_allocation(&mut self, now: Instant, req: &Req, msg: &Message<'_>) {
        let id = match self.by_client.get(&req.from) {
            Some(id) if matches!(self.slots.get(id), Some(Slot::Active(_))) => *id,
            _ => {
                // Authenticate first so that probing for allocations needs credentials.
                if let Some(c) = self.authenticate(now, req, msg) {
                    self.error(req, Some(&c.key), 437, "Allocation Mismatch");
                }
                return;
            }
        };
        let Some(creds) = self.authenticate(now, req, msg) else {
            return;
        };
        let key = creds.key;
        match req.method {
            method::REFRESH => self.handle_refresh(now, req, msg, id, &key),
            method::CREATE_PERMISSION => self.handle_create_permission(now, req, msg, id, &key),
            _ => self.handle_channel_bind(now, req, msg, id, &key),
        }
    }

    fn handle_refresh(
        &mut self,
        now: Instant,
        req: &Req,
        msg: &Message<'_>,
        id: AllocId,
        key: &[u8],
    ) {
        let zero = matches!(msg.get(attr::LIFETIME), Some(&[0, 0, 0, 0]));
        if zero {
            self.free(id);
            return self.respond(req, Some(key), None, |b| {
                b.u32_attr(attr::LIFETIME, 0);
            });
        }
        let lifetime = self.lifetime(msg);
        if let Some(Slot::Active(a)) = self.slots.get_mut(&id) {
            a.refresh(now, lifetime);
        }
        self.respond(req, Some(key), None, |b| {
            b.u32_attr(attr::LIFETIME, lifetime.as_secs() as u32);
        });
    }

    /// Decode the XOR-PEER-ADDRESS attributes; `Err` carries the error response.
    fn peers(
        &self,
        msg: &Message<'_>,
        relay: SocketAddr,
    ) -> Result<Vec<SocketAddr>, (u16, &'static str)> {
        let txid = msg.transaction_id();
        let mut out = Vec::new();
        for (t, v) in msg.attributes() {
            if t == attr::XOR_PEER_ADDRESS {
                let p =
                    crate::stun::decode_xor_address(v, &txid).map_err(|_| (400, "Bad Request"))?;
                if Family::of(p.ip()) != Family::of(relay.ip()) {
                    return Err((443, "Peer Address Family Mismatch"));
                }
                out.push(p);
            }
        }
        if out.is_empty() || out.len() > 16 {
            return Err((400, "Bad Request"));
        }
        Ok(out)
    }

    fn handle_create_permission(
        &mut self,
        now: Instant,
        req: &Req,
        msg: &Message<'_>,
        id: AllocId,
        key: &[u8],
    ) {
        let Some(Slot::Active(a)) = self.slots.get(&id) else {
            return;
        };
        let peers = match self.peers(msg, a.relay) {
            Ok(p) => p,
            Err((code, reason)) => return self.error(req, Some(key), code, reason),
        };
        if peers
            .iter()
            .any(|p| !self.shared.config.policy.permits(p.ip()))
        {
            self.shared.metrics.policy_refusal("create_permission");
            return self.error(req, Some(key), 403, "Forbidden");
        }
        let ips: Vec<IpAddr> = peers.iter().map(|p| p.ip()).collect();
        let l = self.limits().clone();
        let Some(Slot::Active(a)) = self.slots.get_mut(&id) else {
            return;
        };
        match a.add_permissions(now, &ips, l.permission_lifetime, l.max_permissions) {
            Ok(changed) => {
                if changed {
                    let routes = a.routes();
                    self.events
                        .push_back(Event::RoutesChanged { alloc: id, routes });
                }
                self.schedule(now + l.permission_lifetime);
                self.respond(req, Some(key), None, |_| {});
            }
            Err(_) => {
                self.shared.metrics.quota_refusal("permissions");
                self.error(req, Some(key), 508, "Insufficient Capacity");
            }
        }
    }

    fn handle_channel_bind(
        &mut self,
        now: Instant,
        req: &Req,
        msg: &Message<'_>,
        id: AllocId,
        key: &[u8],
    ) {
        let Some(Slot::Active(a)) = self.slots.get(&id) else {
            return;
        };
        let channel = match msg.get(attr::CHANNEL_NUMBER) {
            Some(&[a, b, _, _]) => u16::from_be_bytes([a, b]),
            _ => return self.error(req, Some(key), 400, "Bad Request"),
        };
        if !(CHANNEL_MIN..=CHANNEL_MAX).contains(&channel) {
            return self.error(req, Some(key), 400, "Bad Request");
        }
        let peer = match self.peers(msg, a.relay) {
            Ok(p) if p.len() == 1 => p[0],
            Ok(_) => return self.error(req, Some(key), 400, "Bad Request"),
            Err((code, reason)) => return self.error(req, Some(key), code, reason),
        };
        if !self.shared.config.policy.permits(peer.ip()) {
            self.shared.metrics.policy_refusal("channel_bind");
            return self.error(req, Some(key), 403, "Forbidden");
        }
        let l = self.limits().clone();
        let Some(Slot::Active(a)) = self.slots.get_mut(&id) else {
            return;
        };
        match a.bind_channel(
            now,
            channel,
            peer,
            l.channel_lifetime,
            l.permission_lifetime,
            l.max_permissions,
        ) {
            Ok(changed) => {
                if changed {
                    let routes = a.routes();
                    self.events
                        .push_back(Event::RoutesChanged { alloc: id, routes });
                }
                self.schedule(now + l.permission_lifetime);
                self.respond(req, Some(key), None, |_| {});
            }
            Err(Refusal::ChannelConflict) => self.error(req, Some(key), 400, "Bad Request"),
            Err(Refusal::Capacity) => {
                self.shared.metrics.quota_refusal("permissions");
                self.error(req, Some(key), 508, "Insufficient Capacity");
            }
        }
    }

    fn free(&mut self, id: AllocId) {
        let Some(slot) = self.slots.remove(&id) else {
            return;
        };
        let (client, quota_key, live) = match slot {
            Slot::Active(a) => (a.client, a.creds.quota_key, true),
            Slot::Pending(p) => (p.client, p.creds.quota_key, false),
        };
        self.by_client.remove(&client);
        self.shared.release(&quota_key);
        if live {
            self.shared.metrics.allocations(self.transport).dec();
            self.events.push_back(Event::AllocationFreed { alloc: id });
        }
    }

    /// Expire allocations, permissions and channels due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|t| t > now) {
            return;
        }
        let mut expired = Vec::new();
        let mut next: Option<Instant> = None;
        for (id, slot) in &mut self.slots {
            let Slot::Active(a) = slot else { continue };
            if a.is_expired(now) {
                expired.push(*id);
                continue;
            }
            if a.expire(now) {
                self.events.push_back(Event::RoutesChanged {
                    alloc: *id,
                    routes: a.routes(),
                });
            }
            let e = a.next_expiry();
            next = Some(next.map_or(e, |n| n.min(e)));
        }
        for id in expired {
            self.free(id);
        }
        self.next_sweep = next;
    }

    /// The client's connection closed (TCP/TLS): free everything it held.
    pub fn handle_close(&mut self, _now: Instant) {
        let ids: Vec<AllocId> = self.slots.keys().copied().collect();
        for id in ids {
            self.free(id);
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        // Quotas and gauges are shared: a shard that goes away must give back what it holds.
        let ids: Vec<AllocId> = self.slots.keys().copied().collect();
        for id in ids {
            self.free(id);
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
