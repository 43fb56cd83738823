//! What the web client shows about the others, over real sockets: the token's `locale` in
//! `joined`, `media_state` relayed in participant infos, whether a provider is there for the
//! waiting room, and each participant's recording consent for clinicians only.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_token_locale_comes_back_in_joined_and_a_bad_one_is_refused() {
    let server = start().await;
    let mut c = claims("loc-visit", "patient");
    c.locale = Some("es-MX".into());
    let (_ws, j) = join_with(&server, &c).await;
    assert_eq!(j["locale"], "es-MX");
    let (_ws, j) = joined(&server, "loc-visit", "provider").await;
    assert!(j.get("locale").is_none(), "no claim, no field: {j}");

    let mut c = claims("loc-visit", "patient");
    c.locale = Some("<script>".into());
    let mut ws = connect(&server).await;
    let t = bedside_token::sign_hs256(SECRET, &c).unwrap();
    send(&mut ws, json!({"type": "join", "v": 1, "token": t})).await;
    expect_error(&mut ws, "invalid_token").await;
    assert_eq!(close_code(&mut ws).await, Some(1008));
}

#[tokio::test]
async fn media_state_is_relayed_to_the_others_and_refused_when_malformed() {
    let server = start().await;
    let (mut doc, _) = joined(&server, "media-visit", "provider").await;
    let (mut pat, jp) = joined(&server, "media-visit", "patient").await;
    // Said while waiting (no camera): the provider learns it on admission.
    send(
        &mut pat,
        json!({"type": "media_state", "audio": "on", "video": "none"}),
    )
    .await;
    still_alive(&mut pat).await;
    send(
        &mut doc,
        json!({"type": "admit", "participant": jp["participant"]}),
    )
    .await;
    let admitted = recv_type(&mut pat, "admitted").await;
    assert!(admitted["participants"][0].get("media").is_none());
    let j = recv_type(&mut doc, "participant_joined").await;
    assert_eq!(
        j["participant"]["media"],
        json!({"audio": "on", "video": "none"})
    );
    // A mute reaches the provider.
    send(
        &mut pat,
        json!({"type": "media_state", "audio": "off", "video": "none"}),
    )
    .await;
    let u = recv_type(&mut doc, "participant_updated").await;
    assert_eq!(u["participant"]["participant"], jp["participant"]);
    assert_eq!(
        u["participant"]["media"],
        json!({"audio": "off", "video": "none"})
    );
    // Unknown values and unknown fields are refused; the session goes on.
    for bad in [
        json!({"type": "media_state", "audio": "loud", "video": "on"}),
        json!({"type": "media_state", "audio": "on", "video": "on", "screen": "on"}),
        json!({"type": "media_state", "audio": "on"}),
    ] {
        send(&mut pat, bad).await;
        expect_error(&mut pat, "invalid_message").await;
    }
    still_alive(&mut pat).await;
    // The provider's own state reaches the patient too.
    send(
        &mut doc,
        json!({"type": "media_state", "audio": "on", "video": "off"}),
    )
    .await;
    let u = recv_type(&mut pat, "participant_updated").await;
    assert_eq!(u["participant"]["role"], "provider");
    assert_eq!(
        u["participant"]["media"],
        json!({"audio": "on", "video": "off"})
    );
}

#[tokio::test]
async fn the_waiting_room_is_told_whether_a_provider_is_there() {
    let server = start().await;
    let (mut pat, _) = joined(&server, "presence-visit", "patient").await;
    let w = recv_type(&mut pat, "waiting").await;
    assert_eq!(w["clinician_present"], false, "{w}");
    let (doc, _) = joined(&server, "presence-visit", "provider").await;
    let w = recv_type(&mut pat, "waiting").await;
    assert_eq!(w["clinician_present"], true, "{w}");
    drop(doc);
    let w = recv_type(&mut pat, "waiting").await;
    assert_eq!(w["clinician_present"], false, "{w}");
}

const RECORDER_SECRET: &str = "recorder-secret-recorder-secret-0123456789";

#[tokio::test]
async fn clinicians_see_who_consented_and_patients_do_not() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = start_with(|s| {
        s.recording = Some(bedside::RecordingSettings {
            consent: bedside::ConsentText {
                version: "c-1".into(),
                text: "May we record?".into(),
            },
            recorder_secret: RECORDER_SECRET.as_bytes().to_vec(),
        })
    })
    .await;
    let mut req = format!("ws://{}/v1/recorder", server.http)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {RECORDER_SECRET}").parse().unwrap(),
    );
    let (_agent, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let (mut doc, mut pat) = provider_and_patient(&server, "consent-visit").await;
    send(&mut doc, json!({"type": "record_start"})).await;
    let c = recv_type(&mut doc, "consents").await;
    let entries = c["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{c}");
    assert!(entries.iter().all(|e| e["consent"] == "asked"), "{c}");
    recv_type(&mut pat, "consent_request").await;
    send(
        &mut pat,
        json!({"type": "consent_accept", "text_version": "c-1"}),
    )
    .await;
    let c = loop {
        let c = recv_type(&mut doc, "consents").await;
        if c["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["consent"] == "accepted")
        {
            break c;
        }
    };
    assert_eq!(c["entries"].as_array().unwrap().len(), 2, "{c}");
    // The patient hears of the recording, never of anyone's consent.
    send(&mut doc, json!({"type": "record_stop"})).await;
    let c = recv_type(&mut doc, "consents").await;
    assert_eq!(c["entries"], json!([]));
    loop {
        let m = recv(&mut pat).await.unwrap();
        assert_ne!(m["type"], "consents", "{m}");
        if m["type"] == "recording" && m["active"] == false {
            break;
        }
    }
}
