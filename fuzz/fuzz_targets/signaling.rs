//! Signaling messages as a client sends them, and the parts of an SDP offer the publish policy
//! reads before str0m: neither may panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = bedside_proto::decode_client_message(text);
    let _ = bedside_sfu::sdp::offered_sends(text);
});
