//! Protocol robustness over real sockets, as a client written from docs/signaling.md alone
//! would meet it: unknown fields, candidate floods, offers with too many tracks, message
//! floods and invalid UTF-8 are each refused with their documented code or close code, and the
//! server goes on serving everyone else promptly.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn a_known_message_with_an_unknown_field_is_refused_and_does_nothing() {
    let server = start().await;
    let mut fresh = connect(&server).await;
    send(&mut fresh, json!({"type": "ping", "now": true})).await;
    expect_error(&mut fresh, "invalid_message").await;
    still_alive(&mut fresh).await;

    let (mut doc, mut pat) = provider_and_patient(&server, "v").await;
    send(&mut pat, json!({"type": "leave", "now": true})).await;
    expect_error(&mut pat, "invalid_message").await;
    still_alive(&mut pat).await;
    for kind in [
        "ping",
        "admit_all",
        "end_visit",
        "record_start",
        "record_stop",
        "record_pause",
        "record_resume",
    ] {
        send(&mut doc, json!({"type": kind, "now": true})).await;
        expect_error(&mut doc, "invalid_message").await;
    }
    // Nobody left and the visit did not end: the next thing the provider hears of the patient
    // is their real `leave`.
    still_alive(&mut doc).await;
    send(&mut pat, json!({"type": "leave"})).await;
    recv_type(&mut pat, "left").await;
    let msg = recv(&mut doc).await.unwrap();
    assert_eq!(msg["type"], "participant_left", "{msg}");
}
