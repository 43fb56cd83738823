//! A small, total reader of the parts of an SDP offer the publish policy needs: which `mid`s
//! the client sends, and of which kind. str0m parses the SDP fully afterwards; this only has to
//! be right about direction and never panic.

use bedside_proto::TrackKind;

/// The `(mid, kind)` of every audio or video section the offer sends on (`sendonly` or
/// `sendrecv`, which is the default, and not disabled with port 0). `None` if a sending
/// section has no `mid`, or the text is not SDP at all.
pub fn offered_sends(sdp: &str) -> Option<Vec<(String, TrackKind)>> {
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
    let mut out = Vec::new();
    for s in sections {
        let Some(kind) = s.kind else {
            continue;
        };
        if s.disabled || !s.sends {
            continue;
        }
        out.push((s.mid?, kind));
    }
    Some(out)
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
}
