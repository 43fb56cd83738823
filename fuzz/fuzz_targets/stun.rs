//! STUN and ChannelData parsing, TCP framing, and the TURN core fed arbitrary client bytes.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bedside_turn::auth::{NonceKey, Secrets};
use bedside_turn::core::{CoreConfig, Limits, Shard, Shared, Transport};
use bedside_turn::metrics::Metrics;
use bedside_turn::policy::PeerPolicy;
use bedside_turn::stun::{tcp_frame_len, ChannelData, Message};
use libfuzzer_sys::fuzz_target;

fn shared() -> Arc<Shared> {
    static S: OnceLock<Arc<Shared>> = OnceLock::new();
    S.get_or_init(|| {
        let config = CoreConfig {
            realm: "fuzz".into(),
            secrets: Secrets::from_file_text("secret").expect("non-empty"),
            policy: PeerPolicy::default(),
            relay_v4: true,
            relay_v6: true,
            limits: Limits::default(),
        };
        Arc::new(Shared::new(
            config,
            NonceKey::new([0; 32]),
            Metrics::new(),
            0,
        ))
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let _ = m.verify_integrity(b"k");
        let _ = m.attributes().count();
        let _ = m.xor_address(0x0012);
    }
    let _ = ChannelData::parse(data);
    let _ = tcp_frame_len(data);
    let now = Instant::now();
    let mut shard = Shard::new(Transport::Udp, shared(), (now, 1_800_000_000));
    let from = "192.0.2.1:1".parse().expect("valid address");
    let _ = shard.handle_client_packet(now, from, data);
    while shard.poll_transmit().is_some() {}
});
