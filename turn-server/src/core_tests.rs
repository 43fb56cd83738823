//! Core tests on simulated time: no sockets, no sleeping.

use super::*;
use crate::auth::{rest_password, NonceKey, Secrets};
use crate::metrics::Metrics;
use crate::policy::Cidr;
use crate::policy::PeerPolicy;
use crate::stun::{Builder, Class, Message};

const SECRET: &str = "s3cret";
const REALM: &str = "bedside.test";
const T0_UNIX: u64 = 1_800_000_000;

struct Sim {
    shard: Shard,
    shared: Arc<Shared>,
    t0: Instant,
    now: Instant,
    next_port: u16,
}

fn config(limits: Limits, allow: &[&str]) -> CoreConfig {
    CoreConfig {
        realm: REALM.into(),
        secrets: Secrets::from_file_text(SECRET).unwrap(),
        policy: PeerPolicy::new(allow.iter().map(|c| c.parse::<Cidr>().unwrap()).collect()),
        relay_v4: true,
        relay_v6: true,
        limits,
    }
}

impl Sim {
    fn new(limits: Limits) -> Self {
        Self::with(config(limits, &[]))
    }

    fn with(cfg: CoreConfig) -> Self {
        let shared = Arc::new(Shared::new(cfg, NonceKey::new([1; 32]), Metrics::new(), 0));
        let t0 = Instant::now();
        let shard = Shard::new(Transport::Udp, shared.clone(), (t0, T0_UNIX));
        Sim {
            shard,
            shared,
            t0,
            now: t0,
            next_port: 50000,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.shard.handle_timeout(self.now);
    }

    fn unix(&self) -> u64 {
        T0_UNIX + (self.now - self.t0).as_secs()
    }

    /// Feed `data`, bind any requested relay, return all responses.
    fn send(&mut self, from: SocketAddr, data: &[u8]) -> Vec<Vec<u8>> {
        let relay = self.shard.handle_client_packet(self.now, from, data);
        assert!(relay.is_none(), "requests never relay");
        self.drain_binds();
        std::iter::from_fn(|| self.shard.poll_transmit())
            .map(|t| t.data)
            .collect()
    }

    fn drain_binds(&mut self) {
        while let Some(ev) = self.shard.poll_event() {
            if let Event::BindRelay { alloc, family, .. } = ev {
                let ip: IpAddr = if family == Family::V4 {
                    "198.51.100.1".parse().unwrap()
                } else {
                    "2001:db8::1".parse().unwrap()
                };
                self.next_port += 2;
                let addr = SocketAddr::new(ip, self.next_port);
                self.shard.handle_relay_bound(
                    self.now,
                    alloc,
                    Ok(RelayBound {
                        addr,
                        reservation: None,
                    }),
                );
            }
        }
    }

    fn one(&mut self, from: SocketAddr, data: &[u8]) -> Resp {
        let mut r = self.send(from, data);
        assert_eq!(r.len(), 1, "one response expected");
        Resp(r.remove(0))
    }
}

struct Resp(Vec<u8>);

impl Resp {
    fn msg(&self) -> Message<'_> {
        Message::parse(&self.0).expect("server output parses")
    }
    fn code(&self) -> Option<u16> {
        let m = self.msg();
        if m.class() == Class::Success {
            return None;
        }
        let v = m.get(attr::ERROR_CODE).expect("error code");
        Some(u16::from(v[2]) * 100 + u16::from(v[3]))
    }
    fn nonce(&self) -> Vec<u8> {
        self.msg().get(attr::NONCE).expect("nonce").to_vec()
    }
}

fn client() -> SocketAddr {
    "192.0.2.10:40000".parse().unwrap()
}

/// A client with REST credentials.
struct Cred {
    user: String,
    key: [u8; 16],
    nonce: Vec<u8>,
}

impl Cred {
    fn new(expiry: u64, id: &str, secret: &str) -> Self {
        let user = if id.is_empty() {
            expiry.to_string()
        } else {
            format!("{expiry}:{id}")
        };
        let pass = rest_password(secret.as_bytes(), &user);
        let key = auth::long_term_key(&user, REALM, &pass);
        Cred {
            user,
            key,
            nonce: Vec::new(),
        }
    }

    fn req(&self, m: u16, txid: u8, f: impl FnOnce(&mut Builder<'_>)) -> Vec<u8> {
        let mut v = Vec::new();
        let mut b = Builder::new(&mut v, m, Class::Request, [txid; 12]);
        f(&mut b);
        b.attr(attr::USERNAME, self.user.as_bytes())
            .attr(attr::REALM, REALM.as_bytes())
            .attr(attr::NONCE, &self.nonce)
            .integrity(&self.key)
            .fingerprint();
        v
    }
}

fn unauth(m: u16, f: impl FnOnce(&mut Builder<'_>)) -> Vec<u8> {
    let mut v = Vec::new();
    let mut b = Builder::new(&mut v, m, Class::Request, [99; 12]);
    f(&mut b);
    v
}

fn udp(b: &mut Builder<'_>) {
    b.u32_attr(attr::REQUESTED_TRANSPORT, 17 << 24);
}

/// Allocate with a fresh nonce; returns the credentials and the relayed address.
fn allocate(sim: &mut Sim, from: SocketAddr, id: &str) -> (Cred, SocketAddr) {
    let mut c = Cred::new(sim.unix() + 3600, id, SECRET);
    let r = sim.one(from, &unauth(method::ALLOCATE, udp));
    assert_eq!(r.code(), Some(401));
    c.nonce = r.nonce();
    let r = sim.one(from, &c.req(method::ALLOCATE, 1, udp));
    assert_eq!(r.code(), None, "allocate succeeds");
    let m = r.msg();
    assert!(m.verify_integrity(&c.key), "success is integrity-protected");
    let relay = m.xor_address(attr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    (c, relay)
}

fn peer_attr(p: &str) -> impl FnOnce(&mut Builder<'_>) + '_ {
    move |b| {
        b.xor_addr(attr::XOR_PEER_ADDRESS, p.parse().unwrap());
    }
}

fn channel_bind(ch: u16, p: &str) -> impl FnOnce(&mut Builder<'_>) + '_ {
    move |b| {
        b.u32_attr(attr::CHANNEL_NUMBER, u32::from(ch) << 16)
            .xor_addr(attr::XOR_PEER_ADDRESS, p.parse().unwrap());
    }
}

#[test]
fn binding_needs_no_credentials() {
    let mut sim = Sim::new(Limits::default());
    let r = sim.one(client(), &unauth(method::BINDING, |_| {}));
    assert_eq!(
        r.msg().xor_address(attr::XOR_MAPPED_ADDRESS).unwrap(),
        Some(client())
    );
    assert!(r.msg().get(0x8022).is_none(), "no SOFTWARE attribute");
}

#[test]
fn allocate_and_relay_through_channel_and_send() {
    let mut sim = Sim::new(Limits::default());
    let (c, _) = allocate(&mut sim, client(), "alice");
    assert_eq!(sim.shared.total_allocations(), 1);
    // No permission yet: data is dropped.
    let cd = [0x40, 0x00, 0, 2, 7, 7];
    assert!(
        sim.shard
            .handle_client_packet(sim.now, client(), &cd)
            .is_none(),
        "unbound channel drops"
    );
    let r = sim.one(
        client(),
        &c.req(
            method::CHANNEL_BIND,
            2,
            channel_bind(0x4000, "8.8.8.8:5000"),
        ),
    );
    assert_eq!(r.code(), None);
    let relay = sim
        .shard
        .handle_client_packet(sim.now, client(), &cd)
        .expect("relayed");
    assert_eq!(relay.peer, "8.8.8.8:5000".parse().unwrap());
    assert_eq!(relay.payload, &[7, 7]);
    // Send indication to the permitted IP on another port works, to another IP does not.
    let mut send = Vec::new();
    Builder::new(&mut send, method::SEND, Class::Indication, [5; 12])
        .xor_addr(attr::XOR_PEER_ADDRESS, "8.8.8.8:6000".parse().unwrap())
        .attr(attr::DATA, b"hi");
    assert_eq!(
        sim.shard
            .handle_client_packet(sim.now, client(), &send)
            .unwrap()
            .payload,
        b"hi"
    );
    let mut send2 = Vec::new();
    Builder::new(&mut send2, method::SEND, Class::Indication, [5; 12])
        .xor_addr(attr::XOR_PEER_ADDRESS, "9.9.9.9:6000".parse().unwrap())
        .attr(attr::DATA, b"hi");
    assert!(sim
        .shard
        .handle_client_packet(sim.now, client(), &send2)
        .is_none());
    // Another client address has no allocation: nothing is relayed.
    assert!(sim
        .shard
        .handle_client_packet(sim.now, "192.0.2.11:1".parse().unwrap(), &cd)
        .is_none());
}

#[test]
fn wrong_secret_expired_and_stale_nonce() {
    let mut sim = Sim::new(Limits::default());
    let r = sim.one(client(), &unauth(method::ALLOCATE, udp));
    let nonce = r.nonce();
    let mut wrong = Cred::new(sim.unix() + 600, "x", "not-the-secret");
    wrong.nonce = nonce.clone();
    let r = sim.one(client(), &wrong.req(method::ALLOCATE, 1, udp));
    assert_eq!(r.code(), Some(401));
    assert!(!r.nonce().is_empty(), "401 carries a fresh nonce");
    let mut expired = Cred::new(sim.unix() - 1, "x", SECRET);
    expired.nonce = nonce.clone();
    assert_eq!(
        sim.one(client(), &expired.req(method::ALLOCATE, 1, udp))
            .code(),
        Some(401)
    );
    // A valid credential with a nonce that has aged out gets 438 and a new nonce that works.
    let mut good = Cred::new(sim.unix() + 7200, "", SECRET);
    good.nonce = nonce;
    sim.advance(Duration::from_secs(601));
    let r = sim.one(client(), &good.req(method::ALLOCATE, 1, udp));
    assert_eq!(r.code(), Some(438));
    good.nonce = r.nonce();
    assert_eq!(
        sim.one(client(), &good.req(method::ALLOCATE, 1, udp))
            .code(),
        None
    );
    // A forged nonce is not accepted either.
    let mut forged = Cred::new(sim.unix() + 600, "y", SECRET);
    forged.nonce = b"00000000ffffffff0000000000000000".to_vec();
    assert_eq!(
        sim.one(
            "192.0.2.12:1".parse().unwrap(),
            &forged.req(method::ALLOCATE, 1, udp)
        )
        .code(),
        Some(438)
    );
    // Tampered message: the FINGERPRINT no longer matches and it is dropped unanswered.
    let mut t = good.req(method::ALLOCATE, 3, udp);
    t[27] ^= 1;
    assert!(sim.send("192.0.2.13:1".parse().unwrap(), &t).is_empty());
    // The nonce is bound to the client address that got it.
    let t = good.req(method::ALLOCATE, 3, udp);
    assert_eq!(
        sim.one("192.0.2.13:1".parse().unwrap(), &t).code(),
        Some(438)
    );
}

#[test]
fn lifetimes_expire_allocation_permission_and_channel() {
    let mut sim = Sim::new(Limits::default());
    let (c, _) = allocate(&mut sim, client(), "a");
    assert_eq!(
        sim.one(
            client(),
            &c.req(
                method::CHANNEL_BIND,
                2,
                channel_bind(0x4001, "8.8.8.8:5000")
            )
        )
        .code(),
        None
    );
    let cd = [0x40, 0x01, 0, 1, 9];
    sim.advance(Duration::from_secs(299));
    assert!(sim
        .shard
        .handle_client_packet(sim.now, client(), &cd)
        .is_some());
    sim.advance(Duration::from_secs(2));
    assert!(
        sim.shard
            .handle_client_packet(sim.now, client(), &cd)
            .is_none(),
        "permission expired at 300 s"
    );
    let routes = std::iter::from_fn(|| sim.shard.poll_event())
        .any(|e| matches!(e, Event::RoutesChanged { .. }));
    assert!(routes, "peer→client routes are withdrawn on expiry");
    // Requested lifetime is capped at 3600 s.
    let r = sim.one(
        client(),
        &c.req(method::REFRESH, 3, |b| {
            b.u32_attr(attr::LIFETIME, 100_000);
        }),
    );
    assert_eq!(
        r.msg().get(attr::LIFETIME),
        Some(&3600u32.to_be_bytes()[..])
    );
    sim.advance(Duration::from_secs(3599));
    assert_eq!(sim.shard.allocation_count(), 1);
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.shard.allocation_count(), 0, "allocation expired");
    assert_eq!(sim.shared.total_allocations(), 0, "quota released");
    assert!(std::iter::from_fn(|| sim.shard.poll_event())
        .any(|e| matches!(e, Event::AllocationFreed { .. })));
}

#[test]
fn requests_after_deallocation_get_437() {
    let mut sim = Sim::new(Limits::default());
    let (c, _) = allocate(&mut sim, client(), "a");
    let r = sim.one(
        client(),
        &c.req(method::REFRESH, 2, |b| {
            b.u32_attr(attr::LIFETIME, 0);
        }),
    );
    assert_eq!(r.code(), None);
    assert_eq!(sim.shared.total_allocations(), 0);
    assert_eq!(
        sim.one(
            client(),
            &c.req(method::CREATE_PERMISSION, 3, peer_attr("8.8.8.8:1"))
        )
        .code(),
        Some(437)
    );
    assert_eq!(
        sim.one(client(), &c.req(method::REFRESH, 4, |_| {})).code(),
        Some(437)
    );
    assert!(sim
        .shard
        .handle_client_packet(sim.now, client(), &[0x40, 0, 0, 0])
        .is_none());
}

#[test]
fn retransmitted_allocate_gets_same_answer_and_new_one_437() {
    let mut sim = Sim::new(Limits::default());
    let (c, relay) = allocate(&mut sim, client(), "a");
    let r = sim.one(client(), &c.req(method::ALLOCATE, 1, udp));
    assert_eq!(
        r.msg().xor_address(attr::XOR_RELAYED_ADDRESS).unwrap(),
        Some(relay)
    );
    assert_eq!(
        sim.one(client(), &c.req(method::ALLOCATE, 2, udp)).code(),
        Some(437)
    );
}

#[test]
fn policy_refuses_every_bypass_form_with_403() {
    let mut sim = Sim::new(Limits::default());
    let (c, _) = allocate(&mut sim, client(), "a");
    let mut n = 10;
    for peer in [
        "127.0.0.1:1",
        "0.0.0.0:1",
        "10.0.0.1:1",
        "169.254.169.254:80",
        "100.64.0.1:1",
        "224.0.0.1:1",
        "255.255.255.255:1",
    ] {
        n += 1;
        assert_eq!(
            sim.one(
                client(),
                &c.req(method::CREATE_PERMISSION, n, peer_attr(peer))
            )
            .code(),
            Some(403),
            "{peer}"
        );
        n += 1;
        assert_eq!(
            sim.one(
                client(),
                &c.req(method::CHANNEL_BIND, n, channel_bind(0x4000, peer))
            )
            .code(),
            Some(403),
            "{peer}"
        );
    }
    // IPv6 spellings on an IPv6 allocation from another client.
    let v6client: SocketAddr = "[2001:db8::99]:4000".parse().unwrap();
    let mut c6 = Cred::new(sim.unix() + 600, "b", SECRET);
    c6.nonce = sim.one(v6client, &unauth(method::ALLOCATE, udp)).nonce();
    let r = sim.one(
        v6client,
        &c6.req(method::ALLOCATE, 1, |b| {
            b.u32_attr(attr::REQUESTED_TRANSPORT, 17 << 24)
                .u32_attr(attr::REQUESTED_ADDRESS_FAMILY, 2 << 24);
        }),
    );
    assert_eq!(r.code(), None);
    for peer in [
        "[::1]:1",
        "[::]:1",
        "[::ffff:127.0.0.1]:1",
        "[::127.0.0.1]:1",
        "[64:ff9b::7f00:1]:1",
        "[2002:7f00:1::1]:1",
        "[fe80::1]:1",
        "[fd00::1]:1",
        "[ff02::1]:1",
    ] {
        n += 1;
        assert_eq!(
            sim.one(
                v6client,
                &c6.req(method::CREATE_PERMISSION, n, peer_attr(peer))
            )
            .code(),
            Some(403),
            "{peer}"
        );
        n += 1;
        assert_eq!(
            sim.one(
                v6client,
                &c6.req(method::CHANNEL_BIND, n, channel_bind(0x4001, peer))
            )
            .code(),
            Some(403),
            "{peer}"
        );
    }
    // Family mismatch is 443; a forbidden Send is dropped, never relayed.
    assert_eq!(
        sim.one(
            client(),
            &c.req(
                method::CREATE_PERMISSION,
                200,
                peer_attr("[2606:4700::1]:1")
            )
        )
        .code(),
        Some(443)
    );
    let mut send = Vec::new();
    Builder::new(&mut send, method::SEND, Class::Indication, [5; 12])
        .xor_addr(attr::XOR_PEER_ADDRESS, "127.0.0.1:1".parse().unwrap())
        .attr(attr::DATA, b"x");
    assert!(sim
        .shard
        .handle_client_packet(sim.now, client(), &send)
        .is_none());
}

#[test]
fn allow_list_opens_loopback() {
    let mut sim = Sim::with(config(Limits::default(), &["127.0.0.0/8"]));
    let (c, _) = allocate(&mut sim, client(), "a");
    assert_eq!(
        sim.one(
            client(),
            &c.req(method::CREATE_PERMISSION, 2, peer_attr("127.0.0.1:9"))
        )
        .code(),
        None
    );
    assert_eq!(
        sim.one(
            client(),
            &c.req(method::CREATE_PERMISSION, 3, peer_attr("10.0.0.1:9"))
        )
        .code(),
        Some(403)
    );
}

#[test]
fn quotas_per_user_total_and_permissions() {
    let limits = Limits {
        max_allocations: 3,
        max_allocations_per_user: 2,
        max_permissions: 2,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let addr = |p: u16| SocketAddr::new("192.0.2.10".parse().unwrap(), p);
    let (c, _) = allocate(&mut sim, addr(1), "u1");
    allocate(&mut sim, addr(2), "u1");
    let mut third = Cred::new(sim.unix() + 600, "u1", SECRET);
    third.nonce = c.nonce.clone();
    assert_eq!(
        sim.one(addr(3), &third.req(method::ALLOCATE, 1, udp))
            .code(),
        Some(486),
        "per-user quota"
    );
    allocate(&mut sim, addr(4), "u2");
    let mut u3 = Cred::new(sim.unix() + 600, "u3", SECRET);
    u3.nonce = c.nonce.clone();
    assert_eq!(
        sim.one(addr(5), &u3.req(method::ALLOCATE, 1, udp)).code(),
        Some(486),
        "total quota"
    );
    // Permissions per allocation.
    assert_eq!(
        sim.one(
            addr(1),
            &c.req(method::CREATE_PERMISSION, 2, peer_attr("8.8.8.1:1"))
        )
        .code(),
        None
    );
    assert_eq!(
        sim.one(
            addr(1),
            &c.req(method::CREATE_PERMISSION, 3, peer_attr("8.8.8.2:1"))
        )
        .code(),
        None
    );
    assert_eq!(
        sim.one(
            addr(1),
            &c.req(method::CREATE_PERMISSION, 4, peer_attr("8.8.8.1:2"))
        )
        .code(),
        None,
        "refresh is free"
    );
    assert_eq!(
        sim.one(
            addr(1),
            &c.req(method::CREATE_PERMISSION, 5, peer_attr("8.8.8.3:1"))
        )
        .code(),
        Some(508)
    );
    // Closing frees everything and gives the quota back.
    sim.shard.handle_close(sim.now);
    assert_eq!(sim.shared.total_allocations(), 0);
}

#[test]
fn bandwidth_per_allocation() {
    let limits = Limits {
        bandwidth_per_allocation: 1000,
        ..Limits::default()
    };
    let mut sim = Sim::new(limits);
    let (c, _) = allocate(&mut sim, client(), "a");
    assert_eq!(
        sim.one(
            client(),
            &c.req(method::CHANNEL_BIND, 2, channel_bind(0x4000, "8.8.8.8:1"))
        )
        .code(),
        None
    );
    let mut cd = vec![0x40, 0x00, 0x01, 0xF4];
    cd.extend_from_slice(&[0; 500]);
    assert!(sim
        .shard
        .handle_client_packet(sim.now, client(), &cd)
        .is_some());
    assert!(sim
        .shard
        .handle_client_packet(sim.now, client(), &cd)
        .is_some());
    assert!(
        sim.shard
            .handle_client_packet(sim.now, client(), &cd)
            .is_none(),
        "over 1000 B/s"
    );
    sim.advance(Duration::from_millis(600));
    assert!(
        sim.shard
            .handle_client_packet(sim.now, client(), &cd)
            .is_some(),
        "refilled"
    );
}

#[test]
fn allocate_validation_errors() {
    let mut sim = Sim::new(Limits::default());
    let mut c = Cred::new(sim.unix() + 600, "a", SECRET);
    c.nonce = sim.one(client(), &unauth(method::ALLOCATE, udp)).nonce();
    assert_eq!(
        sim.one(client(), &c.req(method::ALLOCATE, 1, |_| {}))
            .code(),
        Some(400),
        "no REQUESTED-TRANSPORT"
    );
    assert_eq!(
        sim.one(
            client(),
            &c.req(method::ALLOCATE, 2, |b| {
                b.u32_attr(attr::REQUESTED_TRANSPORT, 6 << 24);
            })
        )
        .code(),
        Some(442)
    );
    assert_eq!(
        sim.one(
            client(),
            &c.req(method::ALLOCATE, 3, |b| {
                b.u32_attr(attr::REQUESTED_TRANSPORT, 17 << 24)
                    .u32_attr(attr::REQUESTED_ADDRESS_FAMILY, 3 << 24);
            })
        )
        .code(),
        Some(440)
    );
    assert_eq!(
        sim.one(
            client(),
            &c.req(method::ALLOCATE, 4, |b| {
                b.u32_attr(attr::REQUESTED_TRANSPORT, 17 << 24)
                    .attr(0x0031, b"x");
            })
        )
        .code(),
        Some(420)
    );
    assert_eq!(
        sim.one(
            client(),
            &c.req(method::ALLOCATE, 5, |b| {
                b.u32_attr(attr::REQUESTED_TRANSPORT, 17 << 24)
                    .u32_attr(attr::EVEN_PORT, 0)
                    .attr(attr::RESERVATION_TOKEN, &[0; 8]);
            })
        )
        .code(),
        Some(400)
    );
    // Channel number out of range.
    let (c2, _) = allocate(&mut sim, "192.0.2.50:1".parse().unwrap(), "b");
    assert_eq!(
        sim.one(
            "192.0.2.50:1".parse().unwrap(),
            &c2.req(method::CHANNEL_BIND, 9, channel_bind(0x3FFF, "8.8.8.8:1"))
        )
        .code(),
        Some(400)
    );
    assert_eq!(
        sim.one(
            "192.0.2.50:1".parse().unwrap(),
            &c2.req(method::CHANNEL_BIND, 10, channel_bind(0x4000, "8.8.8.8:1"))
        )
        .code(),
        None
    );
    assert_eq!(
        sim.one(
            "192.0.2.50:1".parse().unwrap(),
            &c2.req(method::CHANNEL_BIND, 11, channel_bind(0x4000, "8.8.4.4:1"))
        )
        .code(),
        Some(400),
        "channel already bound elsewhere"
    );
    // Wrong username on an existing allocation.
    let mut other = Cred::new(sim.unix() + 600, "zzz", SECRET);
    other.nonce = c2.nonce.clone();
    assert_eq!(
        sim.one(
            "192.0.2.50:1".parse().unwrap(),
            &other.req(method::REFRESH, 12, |_| {})
        )
        .code(),
        Some(441)
    );
}

#[test]
fn relay_bind_failure_releases_quota() {
    let mut sim = Sim::new(Limits::default());
    let mut c = Cred::new(sim.unix() + 600, "a", SECRET);
    c.nonce = sim.one(client(), &unauth(method::ALLOCATE, udp)).nonce();
    assert!(sim
        .shard
        .handle_client_packet(
            sim.now,
            client(),
            &c.req(method::ALLOCATE, 1, |b| {
                b.u32_attr(attr::REQUESTED_TRANSPORT, 17 << 24)
                    .attr(attr::RESERVATION_TOKEN, &[1; 8]);
            })
        )
        .is_none());
    let Some(Event::BindRelay { alloc, port, .. }) = sim.shard.poll_event() else {
        panic!("bind requested")
    };
    assert_eq!(port, PortRequest::Reserved([1; 8]));
    sim.shard
        .handle_relay_bound(sim.now, alloc, Err(BindError::BadReservation));
    let r = Resp(sim.shard.poll_transmit().unwrap().data);
    assert_eq!(r.code(), Some(508));
    assert_eq!(sim.shared.total_allocations(), 0);
}

#[test]
fn garbage_never_panics_and_gets_no_answer() {
    use rand::{Rng, SeedableRng};
    let mut sim = Sim::new(Limits::default());
    let (c, _) = allocate(&mut sim, client(), "a");
    let seeds = [
        c.req(method::CHANNEL_BIND, 2, channel_bind(0x4000, "8.8.8.8:1")),
        c.req(
            method::CREATE_PERMISSION,
            3,
            peer_attr("[::ffff:8.8.8.8]:1"),
        ),
        c.req(method::REFRESH, 4, |_| {}),
        vec![0x40, 0, 0, 4, 1, 2, 3, 4],
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..50_000 {
        let mut b = seeds[i % seeds.len()].clone();
        for _ in 0..rng.gen_range(1..4) {
            let at = rng.gen_range(0..b.len());
            b[at] = rng.gen();
        }
        b.truncate(rng.gen_range(0..=b.len()));
        let _ = sim.shard.handle_client_packet(sim.now, client(), &b);
        sim.drain_binds();
        while let Some(t) = sim.shard.poll_transmit() {
            Message::parse(&t.data).expect("every answer is well-formed");
        }
    }
}
