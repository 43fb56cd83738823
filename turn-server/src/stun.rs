//! STUN message and ChannelData framing (RFC 8489, RFC 8656), zero-copy and panic-free.
//!
//! [`Message::parse`] validates the whole framing once (header, attribute lengths, the position
//! of MESSAGE-INTEGRITY and FINGERPRINT) and then hands out borrowed attribute values; it never
//! allocates. [`Builder`] writes responses into a caller-owned `Vec<u8>`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The fixed value in every RFC 5389+ STUN header.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// STUN header size.
pub const HEADER_LEN: usize = 20;
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// STUN methods this server knows.
pub mod method {
    pub const BINDING: u16 = 0x001;
    pub const ALLOCATE: u16 = 0x003;
    pub const REFRESH: u16 = 0x004;
    pub const SEND: u16 = 0x006;
    pub const DATA: u16 = 0x007;
    pub const CREATE_PERMISSION: u16 = 0x008;
    pub const CHANNEL_BIND: u16 = 0x009;
}

/// Attribute types this server reads or writes.
pub mod attr {
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    pub const EVEN_PORT: u16 = 0x0018;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const DONT_FRAGMENT: u16 = 0x001A;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    pub const FINGERPRINT: u16 = 0x8028;
}

/// STUN message class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x000,
            Class::Indication => 0x010,
            Class::Success => 0x100,
            Class::Error => 0x110,
        }
    }
}

/// Why a datagram or frame is not a valid STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("shorter than a STUN header")]
    Truncated,
    #[error("not a STUN message (first bits or magic cookie)")]
    NotStun,
    #[error("length field does not match the message size")]
    BadLength,
    #[error("attribute runs past the end of the message")]
    BadAttribute,
    #[error("FINGERPRINT is not the last attribute or does not match")]
    BadFingerprint,
    #[error("attribute value is malformed")]
    BadValue,
}

/// A validated STUN message borrowing its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    raw: &'a [u8],
    method: u16,
    class: Class,
    /// Offset of the MESSAGE-INTEGRITY attribute header, if present.
    integrity_at: Option<usize>,
    has_fingerprint: bool,
}

/// Is this the start of a STUN message (first two bits zero)? ChannelData starts with 01.
pub fn looks_like_stun(buf: &[u8]) -> bool {
    buf.first().is_some_and(|b| b & 0xC0 == 0)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

impl<'a> Message<'a> {
    /// Validate `raw` as exactly one STUN message.
    pub fn parse(raw: &'a [u8]) -> Result<Self, StunError> {
        if raw.len() < HEADER_LEN {
            return Err(StunError::Truncated);
        }
        let typ = be16(raw, 0).ok_or(StunError::Truncated)?;
        if typ & 0xC000 != 0 || be32(raw, 4) != Some(MAGIC_COOKIE) {
            return Err(StunError::NotStun);
        }
        let len = usize::from(be16(raw, 2).ok_or(StunError::Truncated)?);
        if len % 4 != 0 || HEADER_LEN + len != raw.len() {
            return Err(StunError::BadLength);
        }
        let mut at = HEADER_LEN;
        let mut integrity_at = None;
        let mut has_fingerprint = false;
        while at < raw.len() {
            if has_fingerprint {
                return Err(StunError::BadFingerprint);
            }
            let t = be16(raw, at).ok_or(StunError::BadAttribute)?;
            let l = usize::from(be16(raw, at + 2).ok_or(StunError::BadAttribute)?);
            let end = at + 4 + pad4(l);
            if end > raw.len() {
                return Err(StunError::BadAttribute);
            }
            match t {
                attr::MESSAGE_INTEGRITY if integrity_at.is_none() => {
                    if l != 20 {
                        return Err(StunError::BadValue);
                    }
                    integrity_at = Some(at);
                }
                attr::FINGERPRINT => {
                    if l != 4 {
                        return Err(StunError::BadValue);
                    }
                    let want = crc32_with_len(raw, at).ok_or(StunError::BadFingerprint)?;
                    if be32(raw, at + 4) != Some(want ^ FINGERPRINT_XOR) {
                        return Err(StunError::BadFingerprint);
                    }
                    has_fingerprint = true;
                }
                _ => {}
            }
            at = end;
        }
        let class = match typ & 0x0110 {
            0x000 => Class::Request,
            0x010 => Class::Indication,
            0x100 => Class::Success,
            _ => Class::Error,
        };
        let method = (typ & 0x000F) | ((typ & 0x00E0) >> 1) | ((typ & 0x3E00) >> 2);
        Ok(Message {
            raw,
            method,
            class,
            integrity_at,
            has_fingerprint,
        })
    }

    pub fn method(&self) -> u16 {
        self.method
    }

    pub fn class(&self) -> Class {
        self.class
    }

    pub fn transaction_id(&self) -> [u8; 12] {
        let mut t = [0u8; 12];
        t.copy_from_slice(&self.raw[8..20]);
        t
    }

    pub fn has_fingerprint(&self) -> bool {
        self.has_fingerprint
    }

    pub fn has_integrity(&self) -> bool {
        self.integrity_at.is_some()
    }

    /// Attributes before MESSAGE-INTEGRITY (later ones, except FINGERPRINT, must be ignored).
    pub fn attributes(&self) -> Attributes<'a> {
        let end = self.integrity_at.unwrap_or(self.raw.len());
        Attributes {
            raw: self.raw,
            at: HEADER_LEN,
            end,
        }
    }

    /// First value of attribute `t` that is covered by MESSAGE-INTEGRITY.
    pub fn get(&self, t: u16) -> Option<&'a [u8]> {
        self.attributes().find(|(at, _)| *at == t).map(|(_, v)| v)
    }

    /// Comprehension-required attribute types not in `known`, at most 8.
    pub fn unknown_required(&self, known: &[u16]) -> Vec<u16> {
        self.attributes()
            .map(|(t, _)| t)
            .filter(|t| *t < 0x8000 && !known.contains(t))
            .take(8)
            .collect()
    }

    /// Check MESSAGE-INTEGRITY (HMAC-SHA1) with `key` in constant time.
    pub fn verify_integrity(&self, key: &[u8]) -> bool {
        let Some(at) = self.integrity_at else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
            return false;
        };
        // The length field must cover up to and including MESSAGE-INTEGRITY.
        let covered = (at + 24 - HEADER_LEN) as u16;
        mac.update(&self.raw[0..2]);
        mac.update(&covered.to_be_bytes());
        mac.update(&self.raw[4..at]);
        mac.verify_slice(&self.raw[at + 4..at + 24]).is_ok()
    }

    /// Decode an XOR-*-ADDRESS attribute value.
    pub fn xor_address(&self, t: u16) -> Result<Option<SocketAddr>, StunError> {
        match self.get(t) {
            None => Ok(None),
            Some(v) => decode_xor_address(v, &self.transaction_id()).map(Some),
        }
    }
}

/// CRC-32 of `raw[..upto]` with the header length adjusted to end after a FINGERPRINT at `upto`.
fn crc32_with_len(raw: &[u8], upto: usize) -> Option<u32> {
    let len = u16::try_from(upto + 8 - HEADER_LEN).ok()?;
    let mut h = crc32fast::Hasher::new();
    h.update(raw.get(0..2)?);
    h.update(&len.to_be_bytes());
    h.update(raw.get(4..upto)?);
    Some(h.finalize())
}

/// Iterator over `(type, value)` pairs of a validated message.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    raw: &'a [u8],
    at: usize,
    end: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.at + 4 > self.end {
            return None;
        }
        let t = be16(self.raw, self.at)?;
        let l = usize::from(be16(self.raw, self.at + 2)?);
        let v = self.raw.get(self.at + 4..self.at + 4 + l)?;
        self.at += 4 + pad4(l);
        Some((t, v))
    }
}

/// Decode the value of an XOR-MAPPED/PEER/RELAYED-ADDRESS attribute.
pub fn decode_xor_address(v: &[u8], txid: &[u8; 12]) -> Result<SocketAddr, StunError> {
    let family = *v.get(1).ok_or(StunError::BadValue)?;
    let port = be16(v, 2).ok_or(StunError::BadValue)? ^ (MAGIC_COOKIE >> 16) as u16;
    match (family, v.len()) {
        (0x01, 8) => {
            let x = be32(v, 4).ok_or(StunError::BadValue)? ^ MAGIC_COOKIE;
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(x)), port))
        }
        (0x02, 20) => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(txid);
            let mut ip = [0u8; 16];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = v[4 + i] ^ key[i];
            }
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => Err(StunError::BadValue),
    }
}

/// Encode an XOR address value into `out` (8 or 20 bytes), returning the length written.
pub fn encode_xor_address(addr: SocketAddr, txid: &[u8; 12], out: &mut [u8; 20]) -> usize {
    let xport = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    out[0] = 0;
    out[2..4].copy_from_slice(&xport.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = 0x01;
            out[4..8].copy_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
            8
        }
        IpAddr::V6(ip) => {
            out[1] = 0x02;
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(txid);
            for (i, b) in ip.octets().iter().enumerate() {
                out[4 + i] = b ^ key[i];
            }
            20
        }
    }
}

/// Writes one STUN message into a `Vec<u8>`.
#[derive(Debug)]
pub struct Builder<'v> {
    out: &'v mut Vec<u8>,
    start: usize,
    txid: [u8; 12],
}

impl<'v> Builder<'v> {
    /// Start a message of `method`/`class` with `txid`, appended to `out`.
    pub fn new(out: &'v mut Vec<u8>, method: u16, class: Class, txid: [u8; 12]) -> Self {
        let start = out.len();
        let m = method & 0x0FFF;
        let typ = (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | class.bits();
        out.extend_from_slice(&typ.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&txid);
        Builder { out, start, txid }
    }

    fn set_len(&mut self) {
        let len = (self.out.len() - self.start - HEADER_LEN) as u16;
        self.out[self.start + 2..self.start + 4].copy_from_slice(&len.to_be_bytes());
    }

    pub fn attr(&mut self, t: u16, v: &[u8]) -> &mut Self {
        self.out.extend_from_slice(&t.to_be_bytes());
        self.out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        self.out.extend_from_slice(v);
        let pad = pad4(v.len()) - v.len();
        self.out.extend_from_slice(&[0u8; 3][..pad]);
        self.set_len();
        self
    }

    pub fn u32_attr(&mut self, t: u16, v: u32) -> &mut Self {
        self.attr(t, &v.to_be_bytes())
    }

    pub fn xor_addr(&mut self, t: u16, addr: SocketAddr) -> &mut Self {
        let mut v = [0u8; 20];
        let n = encode_xor_address(addr, &self.txid, &mut v);
        self.attr(t, &v[..n])
    }

    pub fn error(&mut self, code: u16, reason: &str) -> &mut Self {
        let mut v = Vec::with_capacity(4 + reason.len());
        v.extend_from_slice(&[0, 0, (code / 100) as u8, (code % 100) as u8]);
        v.extend_from_slice(reason.as_bytes());
        self.attr(attr::ERROR_CODE, &v)
    }

    /// Append MESSAGE-INTEGRITY computed with `key`.
    pub fn integrity(&mut self, key: &[u8]) -> &mut Self {
        let len = (self.out.len() - self.start - HEADER_LEN + 24) as u16;
        self.out[self.start + 2..self.start + 4].copy_from_slice(&len.to_be_bytes());
        let tag = match Hmac::<Sha1>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(&self.out[self.start..]);
                mac.finalize().into_bytes()
            }
            Err(_) => return self, // HMAC accepts keys of any length; unreachable in practice.
        };
        let tag: [u8; 20] = tag.into();
        self.attr(attr::MESSAGE_INTEGRITY, &tag)
    }

    /// Append FINGERPRINT (must be last).
    pub fn fingerprint(&mut self) -> &mut Self {
        let len = (self.out.len() - self.start - HEADER_LEN + 8) as u16;
        self.out[self.start + 2..self.start + 4].copy_from_slice(&len.to_be_bytes());
        let crc = crc32fast::hash(&self.out[self.start..]) ^ FINGERPRINT_XOR;
        self.attr(attr::FINGERPRINT, &crc.to_be_bytes())
    }
}

/// A ChannelData message (RFC 8656 §12.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    pub channel: u16,
    pub payload: &'a [u8],
}

/// Lowest and highest valid channel numbers. RFC 8656 narrowed the range to 0x4FFF, but RFC 5766
/// clients (coturn's among them) still pick numbers up to 0x7FFE, so those are accepted too.
pub const CHANNEL_MIN: u16 = 0x4000;
pub const CHANNEL_MAX: u16 = 0x7FFE;

impl<'a> ChannelData<'a> {
    /// Parse a ChannelData message; `buf` may carry up to 3 bytes of padding after the payload.
    pub fn parse(buf: &'a [u8]) -> Result<Self, StunError> {
        let channel = be16(buf, 0).ok_or(StunError::Truncated)?;
        if !(CHANNEL_MIN..=CHANNEL_MAX).contains(&channel) {
            return Err(StunError::NotStun);
        }
        let len = usize::from(be16(buf, 2).ok_or(StunError::Truncated)?);
        let payload = buf.get(4..4 + len).ok_or(StunError::BadLength)?;
        if buf.len() > pad4(4 + len) {
            return Err(StunError::BadLength);
        }
        Ok(ChannelData { channel, payload })
    }
}

/// Size of the next complete frame (STUN or padded ChannelData) at the start of a TCP byte
/// stream: `Ok(None)` when more bytes are needed, `Err` when the stream is not TURN framing.
pub fn tcp_frame_len(buf: &[u8]) -> Result<Option<usize>, StunError> {
    let Some(first) = buf.first() else {
        return Ok(None);
    };
    let Some(len) = be16(buf, 2) else {
        return Ok(None);
    };
    let len = usize::from(len);
    match first >> 6 {
        0 => {
            if len % 4 != 0 {
                return Err(StunError::BadLength);
            }
            Ok((buf.len() >= HEADER_LEN + len).then_some(HEADER_LEN + len))
        }
        1 => {
            let total = pad4(4 + len);
            Ok((buf.len() >= total).then_some(total))
        }
        _ => Err(StunError::NotStun),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: u16) -> Vec<u8> {
        let mut v = Vec::new();
        Builder::new(&mut v, method, Class::Request, [7; 12]);
        v
    }

    #[test]
    fn round_trip_with_integrity_and_fingerprint() {
        let mut v = Vec::new();
        let peer: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        Builder::new(&mut v, method::CHANNEL_BIND, Class::Request, [3; 12])
            .u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
            .xor_addr(attr::XOR_PEER_ADDRESS, peer)
            .attr(attr::USERNAME, b"abc")
            .integrity(b"key")
            .fingerprint();
        let m = Message::parse(&v).unwrap();
        assert_eq!(m.method(), method::CHANNEL_BIND);
        assert_eq!(m.class(), Class::Request);
        assert!(m.has_fingerprint());
        assert!(m.verify_integrity(b"key"));
        assert!(!m.verify_integrity(b"other"));
        assert_eq!(m.xor_address(attr::XOR_PEER_ADDRESS).unwrap(), Some(peer));
        assert_eq!(m.get(attr::USERNAME), Some(&b"abc"[..]));
    }

    #[test]
    fn class_and_method_encoding() {
        for (c, m) in [
            (Class::Success, method::ALLOCATE),
            (Class::Error, method::REFRESH),
        ] {
            let mut v = Vec::new();
            Builder::new(&mut v, m, c, [0; 12]);
            let p = Message::parse(&v).unwrap();
            assert_eq!((p.class(), p.method()), (c, m));
        }
        // Allocate error response is 0x0113 on the wire.
        let mut v = Vec::new();
        Builder::new(&mut v, method::ALLOCATE, Class::Error, [0; 12]);
        assert_eq!(&v[..2], &[0x01, 0x13]);
    }

    #[test]
    fn rejects_bad_framing() {
        let good = request(method::BINDING);
        assert_eq!(
            Message::parse(&good[..19]).unwrap_err(),
            StunError::Truncated
        );
        let mut bad = good.clone();
        bad[4] ^= 1;
        assert_eq!(Message::parse(&bad).unwrap_err(), StunError::NotStun);
        let mut bad = good.clone();
        bad[3] = 4; // says 4 bytes of attributes, has none
        assert_eq!(Message::parse(&bad).unwrap_err(), StunError::BadLength);
        let mut bad = good.clone();
        bad.extend_from_slice(&[0, 6, 0, 9, 1, 2, 3, 4]); // attribute longer than the message
        bad[3] = 8;
        assert_eq!(Message::parse(&bad).unwrap_err(), StunError::BadAttribute);
        let mut bad = good.clone();
        bad[3] = 2; // not a multiple of 4
        bad.extend_from_slice(&[0, 0]);
        assert_eq!(Message::parse(&bad).unwrap_err(), StunError::BadLength);
        // oversized: trailing bytes after the declared length
        let mut bad = good.clone();
        bad.extend_from_slice(&[0; 4]);
        assert_eq!(Message::parse(&bad).unwrap_err(), StunError::BadLength);
    }

    #[test]
    fn rejects_bad_fingerprint_and_attributes_after_it() {
        let mut v = Vec::new();
        Builder::new(&mut v, method::BINDING, Class::Request, [1; 12]).fingerprint();
        assert!(Message::parse(&v).is_ok());
        let mut bad = v.clone();
        let n = bad.len();
        bad[n - 1] ^= 0xFF;
        assert_eq!(Message::parse(&bad).unwrap_err(), StunError::BadFingerprint);
        let mut after = v.clone();
        after.extend_from_slice(&[0x80, 0x22, 0, 0]);
        let l = (after.len() - HEADER_LEN) as u16;
        after[2..4].copy_from_slice(&l.to_be_bytes());
        assert!(Message::parse(&after).is_err());
    }

    #[test]
    fn bad_xor_address_values() {
        assert!(decode_xor_address(&[0, 1, 0], &[0; 12]).is_err());
        assert!(decode_xor_address(&[0, 1, 0, 0, 1, 2, 3], &[0; 12]).is_err());
        assert!(decode_xor_address(&[0, 3, 0, 0, 1, 2, 3, 4], &[0; 12]).is_err());
        assert!(decode_xor_address(&[0, 2, 0, 0, 1, 2, 3, 4], &[0; 12]).is_err());
    }

    #[test]
    fn channel_data_framing() {
        let cd = [0x40, 0x01, 0, 3, 1, 2, 3, 0];
        let p = ChannelData::parse(&cd).unwrap();
        assert_eq!((p.channel, p.payload), (0x4001, &[1u8, 2, 3][..]));
        assert!(ChannelData::parse(&cd[..5]).is_err());
        assert!(ChannelData::parse(&[0x7F, 0xFF, 0, 0]).is_err());
        assert!(ChannelData::parse(&[0x80, 0, 0, 0]).is_err());
        assert!(ChannelData::parse(&[0x40, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert_eq!(tcp_frame_len(&cd[..7]), Ok(None));
        assert_eq!(tcp_frame_len(&cd), Ok(Some(8)));
        assert_eq!(tcp_frame_len(&[0xC0, 0, 0, 0]), Err(StunError::NotStun));
        let b = request(method::BINDING);
        assert_eq!(tcp_frame_len(&b[..10]), Ok(None));
        assert_eq!(tcp_frame_len(&b), Ok(Some(20)));
    }

    /// Random and mutated inputs never panic the parsers (CI stand-in for the fuzz target).
    #[test]
    fn random_input_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x0BED_51DE);
        let mut seed = Vec::new();
        Builder::new(&mut seed, method::ALLOCATE, Class::Request, [9; 12])
            .u32_attr(attr::REQUESTED_TRANSPORT, 17 << 24)
            .xor_addr(attr::XOR_PEER_ADDRESS, "[::1]:9".parse().unwrap())
            .attr(attr::USERNAME, b"1:x")
            .integrity(b"k")
            .fingerprint();
        for i in 0..200_000 {
            let buf: Vec<u8> = if i % 2 == 0 {
                let n = rng.gen_range(0..120);
                (0..n).map(|_| rng.gen()).collect()
            } else {
                let mut b = seed.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..b.len());
                    b[at] = rng.gen();
                }
                b.truncate(rng.gen_range(0..=b.len()));
                b
            };
            exercise(&buf);
        }
    }

    pub(crate) fn exercise(buf: &[u8]) {
        if let Ok(m) = Message::parse(buf) {
            let _ = m.verify_integrity(b"k");
            for t in [attr::XOR_PEER_ADDRESS, attr::XOR_RELAYED_ADDRESS] {
                let _ = m.xor_address(t);
            }
            let _ = m.unknown_required(&[]);
            let _ = m.attributes().count();
        }
        let _ = ChannelData::parse(buf);
        let _ = tcp_frame_len(buf);
    }
}
