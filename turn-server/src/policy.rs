//! Peer address policy: which peers a client may relay to.
//!
//! Every IPv6 form that embeds an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96,
//! 6to4 2002::/16) is normalised to that IPv4 address first, so a forbidden IPv4 address cannot
//! be reached through an IPv6 spelling (coturn CVE-2020-26262, CVE-2026-27624).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A CIDR block such as `10.1.0.0/16` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {0:?}: expected ADDRESS/PREFIX, e.g. 10.0.0.0/8 or 2001:db8::/32")]
pub struct CidrError(String);

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Does the block contain `ip` (compared in the block's own family)?
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError(s.to_owned());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| err())?;
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().map_err(|_| err())?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Cidr::new(addr, prefix).ok_or_else(err)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The IPv4 address embedded in an IPv6 address, if it has one of the known embedding forms.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        // IPv4-mapped ::ffff:a.b.c.d and the deprecated IPv4-compatible ::a.b.c.d. `::` and `::1`
        // fall in the second form too and become 0.0.0.0 and 0.0.0.1, both refused as 0.0.0.0/8.
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail); // NAT64 well-known prefix 64:ff9b::/96
    }
    if s[..6] == [0x64, 0xff9b, 1, 0, 0, 0] {
        return Some(tail); // local-use NAT64 prefix 64:ff9b:1::/48 in its /96 form
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])); // 6to4 2002:AABB:CCDD::/48
    }
    None
}

/// `ip` with any embedded IPv4 address pulled out.
pub fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn v4_forbidden(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 0                                     // 0.0.0.0/8 "this network"
        || o[0] == 10                             // RFC 1918
        || o[0] == 127                            // loopback
        || (o[0] == 100 && (o[1] & 0xC0) == 64)   // 100.64.0.0/10 carrier-grade NAT
        || (o[0] == 169 && o[1] == 254)           // link-local (cloud metadata lives here)
        || (o[0] == 172 && (o[1] & 0xF0) == 16)   // RFC 1918
        || (o[0] == 192 && o[1] == 168)           // RFC 1918
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 192 && o[1] == 0 && o[2] == 2) // TEST-NET-1
        || (o[0] == 198 && (o[1] & 0xFE) == 18)   // 198.18.0.0/15 benchmarking
        || (o[0] == 198 && o[1] == 51 && o[2] == 100) // TEST-NET-2
        || (o[0] == 203 && o[1] == 0 && o[2] == 113) // TEST-NET-3
        || o[0] >= 224 // multicast 224/4, reserved 240/4 and broadcast
}

fn v6_forbidden(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xFE00) == 0xFC00 // unique-local fc00::/7
        || (s[0] & 0xFFC0) == 0xFE80 // link-local fe80::/10
        || (s[0] & 0xFFC0) == 0xFEC0 // deprecated site-local fec0::/10
        || (s[0] & 0xFF00) == 0xFF00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation 3fff::/20
        || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0) // benchmarking 2001:2::/48
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32 embeds a client address
        || (s[0] == 0x0064 && s[1] == 0xff9b) // other NAT64 forms we do not decode
}

/// Peer policy: the default deny-list plus an operator allow-list.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    allow: Vec<Cidr>,
}

impl PeerPolicy {
    pub fn new(allow: Vec<Cidr>) -> Self {
        PeerPolicy { allow }
    }

    /// May a client relay to `ip`?
    pub fn permits(&self, ip: IpAddr) -> bool {
        let n = normalise(ip);
        if self.allow.iter().any(|c| c.contains(n) || c.contains(ip)) {
            return true;
        }
        match n {
            IpAddr::V4(v4) => !v4_forbidden(v4),
            IpAddr::V6(v6) => !v6_forbidden(v6),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_policy_refuses_internal_ranges() {
        let pol = PeerPolicy::default();
        for bad in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "127.0.0.1",
            "127.255.0.9",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.1.1.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "2001:2::1",
            "fec0::1",
            "3fff::1",
        ] {
            assert!(!pol.permits(p(bad)), "{bad} must be refused");
        }
        for good in [
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "2606:4700::1111",
        ] {
            assert!(pol.permits(p(good)), "{good} must be allowed");
        }
    }

    #[test]
    fn every_ipv6_embedding_of_a_forbidden_ipv4_is_refused() {
        let pol = PeerPolicy::default();
        for bad in [
            "::ffff:127.0.0.1", // IPv4-mapped
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1", // IPv4-compatible
            "::10.1.2.3",
            "::ffff:0.0.0.0",
            "64:ff9b::7f00:1",   // NAT64 of 127.0.0.1
            "64:ff9b::a00:1",    // NAT64 of 10.0.0.1
            "64:ff9b:1::c0a8:1", // local-use NAT64
            "2002:7f00:1::1",    // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::",  // 6to4 of 169.254.169.254
            "2002:c0a8:0001::1", // 6to4 of 192.168.0.1
        ] {
            assert!(!pol.permits(p(bad)), "{bad} must be refused");
        }
        // An embedded public address is as good as the address itself.
        assert!(pol.permits(p("::ffff:8.8.8.8")));
        assert!(pol.permits(p("64:ff9b::808:808")));
        assert!(pol.permits(p("2002:808:808::1")));
    }

    #[test]
    fn allow_list_opens_exactly_its_ranges() {
        let pol = PeerPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "fd00::/64".parse().unwrap(),
        ]);
        assert!(pol.permits(p("127.0.0.1")));
        assert!(
            pol.permits(p("::ffff:127.0.0.1")),
            "normalised form matches the allow-list"
        );
        assert!(pol.permits(p("fd00::5")));
        assert!(!pol.permits(p("fd00:0:0:1::5")));
        assert!(!pol.permits(p("10.0.0.1")));
    }

    #[test]
    fn cidr_parsing() {
        assert!("10.0.0.0/8".parse::<Cidr>().is_ok());
        assert!("10.0.0.1".parse::<Cidr>().is_ok());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("::/129".parse::<Cidr>().is_err());
        assert!("nonsense/8".parse::<Cidr>().is_err());
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(p("1.2.3.4")));
        assert!(!all.contains(p("::1")));
    }
}
