//! The media engine's first look at a datagram on the shared UDP port (STUN, DTLS, RTP, RTCP
//! demultiplexing), and str0m's SDP parser that every client offer and answer goes through.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = str0m::net::DatagramRecv::try_from(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = str0m::change::SdpOffer::from_sdp_string(text);
        let _ = str0m::Candidate::from_sdp_string(text);
    }
});
