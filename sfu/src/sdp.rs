//! A small, total reader of the parts of a client's SDP offer that must be checked before
//! str0m sees it: which `mid`s the client sends and of which kind (for the publish policy), how
//! many m-lines it has and which ICE candidates it carries (for the limits below). str0m parses
//! the SDP fully afterwards; this only has to be right about direction and counts and never
//! panic. It also checks one trickled candidate's shape, for the same limits.

use bedside_proto::TrackKind;

/// Remote ICE candidates one media session may give, trickled or in offers (distinct lines; a
/// repeat of one already given is free). A browser gathers a host candidate per network
/// interface and address family (often hidden behind one mDNS name), a server-reflexive one
/// per STUN server and interface, and a relay one per TURN URL (UDP, TCP, TLS) and interface:
/// a handful, a few dozen on a multi-homed machine with several TURN transports. str0m pairs
/// every remote candidate with every local one on the single media thread, so this bounds
/// that work per session.
pub const MAX_REMOTE_CANDIDATES: usize = 50;

/// The longest candidate line accepted, in bytes (without `a=`). RFC 8839 sets no bound; a
/// browser's line with its extensions (`generation`, `ufrag`, `network-id`, `network-cost`) is
/// under 200 bytes, a relay or TCP candidate included.
pub const MAX_CANDIDATE_BYTES: usize = 512;

/// The longest foundation (RFC 8839 §5.1: 1 to 32 ice-chars).
pub const MAX_FOUNDATION_CHARS: usize = 32;

/// The longest `sdpMid` accepted with a trickled candidate, in bytes. Browsers use short mids
/// ("0", "1"): a mid travels in every RTP packet's header extension, whose one-byte form holds
/// at most 16 bytes.
pub const MAX_MID_BYTES: usize = 32;

/// m-lines an offer may have that are not disabled (port 0). A client's offer holds its own
/// sending sections (at most one per source) and, after renegotiation, a receive-only section
/// for every track the server sends it: about two per other participant. That fits visits of
/// some 30 publishing participants, beyond which the 64 KiB message limit stops a browser's
/// offer (its video sections take 1–2 KiB each) anyway.
pub const MAX_ACTIVE_M_LINES: usize = 64;

/// m-lines an offer may have in all. str0m keeps stopped (port 0) sections instead of reusing
/// them when it offers, so a long visit with people coming and going accumulates them in
/// every later offer of both sides; they are cheap, but not free to parse and re-offer.
pub const MAX_M_LINES: usize = 256;

/// What the limits need from a client's offer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OfferShape<'a> {
    /// The `(mid, kind)` of every audio or video section the offer sends on.
    pub sends: Vec<(String, TrackKind)>,
    /// Every m-line, of any media and port.
    pub m_lines: usize,
    /// m-lines not disabled with port 0.
    pub active_m_lines: usize,
    /// The value of every `a=candidate` line (`candidate:…`, without `a=`), in order.
    pub candidates: Vec<&'a str>,
}

/// Reads what the limits and the publish policy need from an offer; `None` if a sending section
/// has no `mid`, or the text is not SDP at all. Sending means `sendonly` or `sendrecv` (the
/// default) and not disabled with port 0.
pub fn read_offer(sdp: &str) -> Option<OfferShape<'_>> {
    if !sdp.trim_start().starts_with("v=") {
        return None;
    }
    struct Section {
        kind: Option<TrackKind>,
        disabled: bool,
        mid: Option<String>,
        sends: bool,
    }
    let mut sections: Vec<Section> = Vec::new();
    let mut candidates = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("m=") {
            let mut parts = rest.split_whitespace();
            let kind = match parts.next() {
                Some("audio") => Some(TrackKind::Audio),
                Some("video") => Some(TrackKind::Video),
                _ => None,
            };
            let disabled = parts.next() == Some("0");
            sections.push(Section {
                kind,
                disabled,
                mid: None,
                sends: true,
            });
            continue;
        }
        // Session-level candidates count too: str0m's parser takes them wherever they are.
        if let Some(c) = line.strip_prefix("a=") {
            if c.starts_with("candidate:") {
                candidates.push(c);
                continue;
            }
        }
        let Some(s) = sections.last_mut() else {
            continue;
        };
        match line {
            "a=sendonly" | "a=sendrecv" => s.sends = true,
            "a=recvonly" | "a=inactive" => s.sends = false,
            _ => {
                if let Some(mid) = line.strip_prefix("a=mid:") {
                    s.mid = Some(mid.trim().to_owned());
                }
            }
        }
    }
    let mut shape = OfferShape {
        m_lines: sections.len(),
        active_m_lines: sections.iter().filter(|s| !s.disabled).count(),
        candidates,
        ..OfferShape::default()
    };
    for s in sections {
        let Some(kind) = s.kind else {
            continue;
        };
        if s.disabled || !s.sends {
            continue;
        }
        shape.sends.push((s.mid?, kind));
    }
    Some(shape)
}

/// The `(mid, kind)` of every audio or video section the offer sends on (see [`read_offer`]).
pub fn offered_sends(sdp: &str) -> Option<Vec<(String, TrackKind)>> {
    read_offer(sdp).map(|o| o.sends)
}

/// Why a remote candidate was refused before parsing. The texts are shown to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CandidateError {
    #[error("an ICE candidate is limited to {MAX_CANDIDATE_BYTES} bytes")]
    TooLong,
    #[error("an ICE candidate starts with `candidate:` and a foundation of 1 to {MAX_FOUNDATION_CHARS} letters, digits, `+` or `/`")]
    BadFoundation,
    #[error("sdpMid is limited to {MAX_MID_BYTES} bytes")]
    MidTooLong,
    #[error("this media session has the most ICE candidates allowed ({MAX_REMOTE_CANDIDATES})")]
    TooMany,
}

/// The candidate text as str0m and the per-session set of candidates see it: trimmed, without
/// `a=`. Empty means end of candidates.
pub fn candidate_text(candidate: &str) -> &str {
    let t = candidate.trim();
    t.strip_prefix("a=").unwrap_or(t)
}

/// Checks one candidate line's size and foundation, in time bounded by
/// [`MAX_CANDIDATE_BYTES`] whatever its length. The rest is left to str0m's parser. The empty
/// end-of-candidates line passes.
pub fn check_candidate(candidate: &str) -> Result<(), CandidateError> {
    // Measured before trimming: a megabyte of spaces around a candidate is no candidate.
    if candidate.len() > MAX_CANDIDATE_BYTES + "a=".len() {
        return Err(CandidateError::TooLong);
    }
    let text = candidate_text(candidate);
    if text.is_empty() {
        return Ok(());
    }
    if text.len() > MAX_CANDIDATE_BYTES {
        return Err(CandidateError::TooLong);
    }
    let foundation = text
        .strip_prefix("candidate:")
        .and_then(|rest| rest.split(' ').next())
        .ok_or(CandidateError::BadFoundation)?;
    // ice-char = ALPHA / DIGIT / "+" / "/" (RFC 8839 §5.1).
    let ice_chars = foundation
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if foundation.is_empty() || foundation.len() > MAX_FOUNDATION_CHARS || !ice_chars {
        return Err(CandidateError::BadFoundation);
    }
    Ok(())
}

/// Checks the `sdpMid` that came with a trickled candidate (the server does not use it).
pub fn check_mid(mid: &str) -> Result<(), CandidateError> {
    if mid.len() > MAX_MID_BYTES {
        return Err(CandidateError::MidTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendrecv\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=sendonly\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:4\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:5\r\n";

    #[test]
    fn finds_sending_sections_only() {
        assert_eq!(
            offered_sends(OFFER).unwrap(),
            vec![
                ("0".to_string(), TrackKind::Audio),
                ("1".to_string(), TrackKind::Video),
                ("5".to_string(), TrackKind::Audio),
            ]
        );
    }

    #[test]
    fn garbage_is_refused_or_harmless() {
        assert!(offered_sends("").is_none());
        assert!(offered_sends("hello").is_none());
        assert!(offered_sends("v=0\r\nm=audio 9 X 0\r\na=sendonly\r\n").is_none());
        assert_eq!(
            offered_sends("v=0\r\nm=\r\nm=video\r\na=mid:\r\n"),
            Some(vec![(String::new(), TrackKind::Video)])
        );
        // Random bytes never panic.
        let alphabet = b"v=0\r\nm=audio video 0 9 a=mid:sendonly recvonly\n";
        let mut x = 12345u64;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = offered_sends(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn counts_m_lines_and_finds_candidates_at_any_level() {
        let sdp = format!(
            "{OFFER}a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\n\
             a=end-of-candidates\r\n"
        );
        let sdp = sdp.replacen(
            "t=0 0\r\n",
            "t=0 0\r\na=candidate:2 1 udp 1 192.0.2.2 5000 typ host\r\n",
            1,
        );
        let shape = read_offer(&sdp).unwrap();
        assert_eq!(shape.m_lines, 6);
        assert_eq!(shape.active_m_lines, 5, "the port 0 section is disabled");
        assert_eq!(
            shape.candidates,
            vec![
                "candidate:2 1 udp 1 192.0.2.2 5000 typ host",
                "candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host",
            ]
        );
        assert_eq!(shape.sends.len(), 3);
    }

    #[test]
    fn hundreds_of_sending_sections_are_all_counted() {
        let mut sdp = String::from("v=0\r\ns=-\r\n");
        for i in 0..380 {
            sdp.push_str(&format!("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{i}\r\n"));
        }
        let shape = read_offer(&sdp).unwrap();
        assert_eq!(shape.m_lines, 380);
        assert_eq!(shape.active_m_lines, 380);
        assert_eq!(shape.sends.len(), 380);
    }

    #[test]
    fn browser_candidates_pass() {
        for c in [
            "candidate:842163049 1 udp 1677729535 192.0.2.7 61904 typ srflx raddr 0.0.0.0 rport 0 \
             generation 0 ufrag Yq0s network-cost 999",
            "candidate:3442447574 1 udp 2122260223 6d4b2ea6-1c42-4a4f-9c6b-2c2d0b7f3c11.local 54400 \
             typ host generation 0 ufrag Yq0s network-id 1 network-cost 10",
            "candidate:1 1 TCP 2105524479 192.0.2.7 9 typ host tcptype active",
            "a=candidate:Ha0a+/Zz 1 udp 41885439 198.51.100.4 3478 typ relay raddr 192.0.2.7 rport 61904",
            "  candidate:0 1 udp 1 10.0.0.1 1 typ host  ",
            "",
            "   ",
        ] {
            assert_eq!(check_candidate(c), Ok(()), "{c}");
        }
        assert_eq!(check_mid("0"), Ok(()));
        assert_eq!(check_mid("sdparta_12"), Ok(()));
    }

    #[test]
    fn oversized_or_odd_candidates_are_refused_cheaply() {
        let long_foundation = format!("candidate:{} 1 udp 1 192.0.2.1 9 typ host", "f".repeat(33));
        assert_eq!(
            check_candidate(&long_foundation),
            Err(CandidateError::BadFoundation)
        );
        let at_limit = format!("candidate:{} 1 udp 1 192.0.2.1 9 typ host", "f".repeat(32));
        assert_eq!(check_candidate(&at_limit), Ok(()));
        for bad in [
            "candidate: 1 udp 1 192.0.2.1 9 typ host",
            "candidate:a-b 1 udp 1 192.0.2.1 9 typ host",
            "candidate:\u{e9}t\u{e9} 1 udp 1 192.0.2.1 9 typ host",
            "1 1 udp 1 192.0.2.1 9 typ host",
            "candidate:",
        ] {
            assert_eq!(
                check_candidate(bad),
                Err(CandidateError::BadFoundation),
                "{bad}"
            );
        }
        // 30 KB foundations (what a flood sent) and long extension tails.
        let huge = format!(
            "candidate:{} 1 udp 1 192.0.2.1 9 typ host",
            "f".repeat(30_000)
        );
        assert_eq!(check_candidate(&huge), Err(CandidateError::TooLong));
        let tail = format!(
            "candidate:1 1 udp 1 192.0.2.1 9 typ host {}",
            "x ".repeat(300)
        );
        assert_eq!(check_candidate(&tail), Err(CandidateError::TooLong));
        let padded = format!(
            "{}candidate:1 1 udp 1 192.0.2.1 9 typ host",
            " ".repeat(600)
        );
        assert_eq!(check_candidate(&padded), Err(CandidateError::TooLong));
        assert_eq!(check_mid(&"m".repeat(33)), Err(CandidateError::MidTooLong));
    }
}
