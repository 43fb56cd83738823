//! bedside-load against an in-process bedside on port 0: one visit of three participants, each
//! publishing audio and video over real ICE, DTLS and SRTP, each hearing and seeing the other
//! two with little loss.

use std::time::Duration;

use bedside::{Server, Settings};
use bedside_audit::AuditLog;
use bedside_load::{run_step, MediaShape, StepConfig, TokenSource};
use bedside_token::Verifier;

const SECRET: &[u8] = b"load-test-secret-load-test-secret";
const ISSUER: &str = "load-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_each_receive_the_other_two() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::loopback(
        Verifier::hs256(SECRET, Some(ISSUER), 5),
        AuditLog::open(&dir.path().join("audit.jsonl")).unwrap(),
    );
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = http.local_addr().unwrap();
    let server = Server::start(settings).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(http, admin, async {
        let _ = stopped.await;
    }));

    let cfg = StepConfig {
        signal_url: format!("ws://{addr}/v1/signal"),
        visits: 1,
        participants: 3,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(3),
        shape: MediaShape {
            audio_bytes: 100,
            video_fps: 30,
            video_frame_bytes: 300_000 / 8 / 30,
        },
        video_kbps: 300,
        tokens: TokenSource::Hs256 {
            secret: SECRET.to_vec(),
            issuer: ISSUER.into(),
        },
        // The server shares this process; its CPU figure would include the load generator.
        server_pid: None,
        setup_timeout: Duration::from_secs(10),
        join_interval: Duration::from_millis(20),
        visit_prefix: "load-test".into(),
    };
    let r = tokio::task::spawn_blocking(move || run_step(&cfg))
        .await
        .unwrap()
        .unwrap();
    drop(stop);
    eprint!(
        "{}",
        bedside_load::report::markdown(std::slice::from_ref(&r))
    );

    assert_eq!(r.ready, 3, "every participant receives every track: {r:#?}");
    assert_eq!(r.per_participant.len(), 3);
    for p in &r.per_participant {
        assert_eq!(p.error, None, "participant {} ran to the end", p.index);
        assert_eq!(p.tracks.len(), 4, "audio and video of two others");
        for t in &p.tracks {
            // 3 s of 50 audio or 30 video frames per second.
            let floor = if t.video { 60 } else { 100 };
            assert!(
                t.expected >= floor && t.received >= floor,
                "participant {} track {}: {t:?}",
                p.index,
                t.track
            );
            assert!(
                t.loss < 0.02,
                "participant {} track {}: {t:?}",
                p.index,
                t.track
            );
        }
    }
    assert!(r.loss < 0.01, "loss {}", r.loss);
    // Video frames of 1250 bytes take more than one packet each; audio one.
    assert!(r.forwarded_packets > r.received_frames);
    assert!(
        r.audio_delay.samples > 0 && r.audio_delay.p50_us < 50_000,
        "{:?}",
        r.audio_delay
    );
}
