//! Framing of peer data towards the client, in place in a receive buffer: the payload is read
//! at [`HEADROOM`] and the ChannelData or Data-indication header is written in front of it, so
//! the peer→client path copies nothing and allocates nothing.

use std::net::SocketAddr;
use std::ops::Range;

use crate::allocation::PeerRoute;
use crate::stun::{attr, encode_xor_address, HEADER_LEN, MAGIC_COOKIE};

/// Bytes kept free before the payload: STUN header + XOR-PEER-ADDRESS (IPv6) + DATA header.
pub const HEADROOM: usize = HEADER_LEN + 24 + 4;
/// Bytes kept free after the payload for padding.
pub const TAILROOM: usize = 3;

/// Frame the `n` payload bytes at `buf[HEADROOM..]` for the client. `pad` pads ChannelData to a
/// multiple of 4 (required on TCP). Returns the range to send, or `None` if `buf` is too short.
pub fn frame_for_client(
    buf: &mut [u8],
    n: usize,
    peer: SocketAddr,
    route: PeerRoute,
    pad: bool,
    txid: [u8; 12],
) -> Option<Range<usize>> {
    if buf.len() < HEADROOM + n + TAILROOM || n > usize::from(u16::MAX) - 64 {
        return None;
    }
    let padded = (n + 3) & !3;
    match route {
        PeerRoute::Channel(ch) => {
            let start = HEADROOM - 4;
            buf[start..start + 2].copy_from_slice(&ch.to_be_bytes());
            buf[start + 2..start + 4].copy_from_slice(&(n as u16).to_be_bytes());
            let end = if pad {
                buf[HEADROOM + n..HEADROOM + padded].fill(0);
                HEADROOM + padded
            } else {
                HEADROOM + n
            };
            Some(start..end)
        }
        PeerRoute::DataIndication => {
            let mut xa = [0u8; 20];
            let alen = encode_xor_address(peer, &txid, &mut xa);
            let start = HEADROOM - 4 - (4 + alen) - HEADER_LEN;
            let mut at = start;
            let typ = DATA_INDICATION;
            let body = (4 + alen + 4 + padded) as u16;
            for chunk in [
                &typ.to_be_bytes()[..],
                &body.to_be_bytes()[..],
                &MAGIC_COOKIE.to_be_bytes()[..],
                &txid[..],
            ] {
                buf[at..at + chunk.len()].copy_from_slice(chunk);
                at += chunk.len();
            }
            buf[at..at + 2].copy_from_slice(&attr::XOR_PEER_ADDRESS.to_be_bytes());
            buf[at + 2..at + 4].copy_from_slice(&(alen as u16).to_be_bytes());
            buf[at + 4..at + 4 + alen].copy_from_slice(&xa[..alen]);
            at += 4 + alen;
            buf[at..at + 2].copy_from_slice(&attr::DATA.to_be_bytes());
            buf[at + 2..at + 4].copy_from_slice(&(n as u16).to_be_bytes());
            buf[HEADROOM + n..HEADROOM + padded].fill(0);
            Some(start..HEADROOM + padded)
        }
    }
}

/// Message type of a Data indication (method 0x007, class indication) on the wire.
const DATA_INDICATION: u16 = 0x0017;

/// Cheap, non-cryptographic transaction ids for Data indications (they need only be unique).
#[derive(Debug, Clone)]
pub struct TxidGen(u64);

impl TxidGen {
    pub fn new(seed: u64) -> Self {
        TxidGen(seed | 1)
    }

    pub fn next_txid(&mut self) -> [u8; 12] {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let mut t = [0u8; 12];
        t[..8].copy_from_slice(&v.to_le_bytes());
        t[8..].copy_from_slice(&(v >> 17).to_le_bytes()[..4]);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun::{method, Builder, ChannelData, Class, Message};

    #[test]
    fn data_indication_parses_back() {
        for peer in ["192.0.2.1:4000", "[2001:db8::7]:4000"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let mut buf = vec![0u8; HEADROOM + 5 + TAILROOM];
            buf[HEADROOM..HEADROOM + 5].copy_from_slice(b"hello");
            let r = frame_for_client(&mut buf, 5, peer, PeerRoute::DataIndication, false, [4; 12])
                .unwrap();
            let m = Message::parse(&buf[r]).unwrap();
            assert_eq!((m.method(), m.class()), (method::DATA, Class::Indication));
            assert_eq!(m.xor_address(attr::XOR_PEER_ADDRESS).unwrap(), Some(peer));
            assert_eq!(m.get(attr::DATA), Some(&b"hello"[..]));
        }
    }

    #[test]
    fn data_indication_type_constant() {
        let mut v = Vec::new();
        Builder::new(&mut v, method::DATA, Class::Indication, [0; 12]);
        assert_eq!(u16::from_be_bytes([v[0], v[1]]), DATA_INDICATION);
    }

    #[test]
    fn channel_data_padding() {
        let peer: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let mut buf = vec![0xAA; HEADROOM + 5 + TAILROOM];
        let r =
            frame_for_client(&mut buf, 5, peer, PeerRoute::Channel(0x4001), true, [0; 12]).unwrap();
        assert_eq!(r.len(), 12);
        let cd = ChannelData::parse(&buf[r]).unwrap();
        assert_eq!((cd.channel, cd.payload.len()), (0x4001, 5));
        let r = frame_for_client(
            &mut buf,
            5,
            peer,
            PeerRoute::Channel(0x4001),
            false,
            [0; 12],
        )
        .unwrap();
        assert_eq!(r.len(), 9);
        assert!(frame_for_client(
            &mut buf,
            6,
            peer,
            PeerRoute::Channel(0x4001),
            false,
            [0; 12]
        )
        .is_none());
    }
}
