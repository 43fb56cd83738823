//! `bedside check`: validates the configs of a deployment and prints what it would listen on
//! and advertise, refusing weak settings that a hospital's review should never pass: a short,
//! placeholder or reused secret, TURN relaying to every address, recording without a usable
//! key-encryption key. It reads secrets only to judge them and never prints them.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::config::{read_secret_file, Config};

/// The verdict: what was found (for people) and what is refused.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub warnings: Vec<String>,
    pub refusals: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.refusals.is_empty()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            let _ = writeln!(out, "  {l}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        for r in &self.refusals {
            let _ = writeln!(out, "refused: {r}");
        }
        let _ = writeln!(
            out,
            "{}",
            if self.ok() {
                "check passed"
            } else {
                "check FAILED: fix the refusals above"
            }
        );
        out
    }
}

const PLACEHOLDERS: [&str; 6] = [
    "changeme",
    "change-me",
    "secret",
    "password",
    "example",
    "xxxxxxxx",
];

/// Why a secret is weak, if it is.
fn weakness(secret: &[u8]) -> Option<&'static str> {
    if secret.len() < 32 {
        return Some("shorter than 32 bytes");
    }
    let distinct: HashSet<u8> = secret.iter().copied().collect();
    if distinct.len() < 10 {
        return Some("too repetitive to be random");
    }
    let lower = String::from_utf8_lossy(secret).to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return Some("contains a placeholder word");
    }
    None
}

/// The first line of a TURN secret file: bedside and bedside-turn use only that one.
fn first_line(path: &Path) -> Result<Vec<u8>, String> {
    read_raw(path).map(|s| s.split(|b| *b == b'\n').next().unwrap_or_default().to_vec())
}

fn read_raw(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).trim().as_bytes().to_vec())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Checks `bedside.toml` and, when given, the TURN and recorder configs of the same site.
pub fn check(config: &Path, turn: Option<&Path>, recorder: Option<&Path>) -> Report {
    let mut r = Report::default();
    let c = match Config::load(config, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            r.refusals.push(e.to_string());
            return r;
        }
    };
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    let scheme = if c.http.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    r.lines
        .push(format!("web + signaling: {scheme}://{}", c.http.listen));
    let h = &c.http;
    r.lines.push(format!(
        "HTTP limits:     headers in {} s, idle {} s, TLS handshake {} s; {} connections per \
         client address, {} in all",
        h.header_read_timeout_seconds,
        h.idle_timeout_seconds,
        h.tls_handshake_timeout_seconds,
        h.max_connections_per_address,
        h.max_connections
    ));
    if h.tls_cert.is_none() && h.max_connections_per_address < h.max_connections {
        r.warnings.push(format!(
            "[http] max_connections_per_address is {}: behind a TLS-terminating proxy every \
             connection comes from the proxy's address, so that caps the whole site; set it to \
             max_connections and cap per client in the proxy",
            h.max_connections_per_address
        ));
    }
    if h.header_read_timeout_seconds > 30 || h.tls_handshake_timeout_seconds > 30 {
        r.warnings.push(
            "[http] header_read_timeout_seconds or tls_handshake_timeout_seconds is over 30: \
             slow clients can hold connections that long"
                .into(),
        );
    }
    if let Some(redirect) = c.http.redirect_listen {
        r.lines
            .push(format!("HTTP redirect:   http://{redirect} -> https"));
    }
    r.lines
        .push(format!("admin, /metrics: http://{}", c.admin.listen));
    let advertised: Vec<String> = c
        .media
        .advertise
        .iter()
        .map(|a| {
            let port = if a.port() == 0 {
                c.media.bind.port()
            } else {
                a.port()
            };
            format!("{}:{port}", a.ip())
        })
        .collect();
    r.lines.push(format!(
        "media (UDP):     bound {}, advertised {}",
        c.media.bind,
        if advertised.is_empty() {
            c.media.bind.to_string()
        } else {
            advertised.join(", ")
        }
    ));
    r.lines.push(format!(
        "TURN URLs:       {}",
        if c.turn.urls.is_empty() {
            "none".into()
        } else {
            c.turn.urls.join(", ")
        }
    ));
    r.lines
        .push(format!("audit log:       {}", c.audit.path.display()));
    match (&c.http.tls_cert, &c.http.tls_key) {
        (Some(cert), Some(key)) => {
            if let Err(e) = crate::tls::load(&crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }) {
                r.refusals.push(e.to_string());
            }
        }
        _ if !c.http.listen.ip().is_loopback() => r.warnings.push(
            "[http] has no TLS certificate: only run it so behind a TLS-terminating proxy".into(),
        ),
        _ => {}
    }
    if !c.admin.listen.ip().is_loopback() {
        r.warnings.push(format!(
            "[admin] listen {} is not loopback: firewall it from patients' networks",
            c.admin.listen
        ));
    }
    if c.tokens.issuer.is_none() {
        r.warnings
            .push("[tokens] issuer is unset: tokens of any issuer are accepted".into());
    }
    if let Some(path) = &c.tokens.hs256_secret_file {
        match read_secret_file(path) {
            Ok(s) => secrets.push(("[tokens] hs256_secret_file".into(), s)),
            Err(e) => r.refusals.push(e.to_string()),
        }
    }
    r.lines.push(format!(
        "join tokens:     {} public key(s), HS256 {}",
        c.tokens.public_keys.len(),
        if c.tokens.hs256_secret_file.is_some() {
            "on"
        } else {
            "off"
        }
    ));
    if let Err(e) = c.token_verifier() {
        r.refusals.push(e.to_string());
    }
    if let Some(path) = &c.turn.secret_file {
        match first_line(path) {
            Ok(s) => secrets.push(("[turn] secret_file".into(), s)),
            Err(e) => r.refusals.push(e),
        }
    }
    if c.recording.enabled {
        r.lines.push(format!(
            "recording:       enabled, consent text version {}",
            c.recording.consent_text_version
        ));
        if let Some(path) = &c.recording.recorder_secret_file {
            match first_line(path) {
                Ok(s) => secrets.push(("[recording] recorder_secret_file".into(), s)),
                Err(e) => r.refusals.push(e),
            }
        }
    } else {
        r.lines.push("recording:       off".into());
    }
    check_webhooks(&c, &mut r, &mut secrets);
    if let Some(path) = turn {
        check_turn(path, &mut r, &mut secrets);
    }
    if let Some(path) = recorder {
        check_recorder(path, &mut r, &mut secrets);
    }
    for (name, s) in &secrets {
        if let Some(why) = weakness(s) {
            r.refusals
                .push(format!("{name}: the secret is weak ({why})"));
        }
    }
    // bedside and bedside-turn share the TURN secret by design, bedside and bedside-recorder
    // the recorder secret; secrets of different purposes must differ.
    let purpose = |name: &str| -> String {
        if name.starts_with("[webhooks") {
            name.to_owned()
        } else if name.contains("turn") {
            "turn".into()
        } else if name.contains("recorder_secret_file") || name == "recorder secret_file" {
            "recorder-secret".into()
        } else {
            name.to_owned()
        }
    };
    for (i, (a, sa)) in secrets.iter().enumerate() {
        for (b, sb) in &secrets[i + 1..] {
            if sa == sb && purpose(a) != purpose(b) {
                r.refusals.push(format!(
                    "{a} and {b} hold the same secret: every secret must be separate"
                ));
            }
        }
    }
    r
}

/// The webhook endpoints: each secret is read to be judged (weak, or shared with any other
/// secret, another endpoint's included).
fn check_webhooks(c: &Config, r: &mut Report, secrets: &mut Vec<(String, Vec<u8>)>) {
    let w = &c.webhooks;
    if !w.enabled() {
        r.lines.push("webhooks:        off".into());
        return;
    }
    r.lines.push(format!(
        "webhooks:        {} endpoint(s), outbox {}, retried for {} s (backoff {} ms to {} s)",
        w.endpoints.len(),
        c.state.dir.join(bedside_store::STORE_FILE).display(),
        w.max_age_seconds,
        w.initial_backoff_ms,
        w.max_backoff_seconds
    ));
    for e in &w.endpoints {
        r.lines.push(format!("  webhook {}: {}", e.name, e.url));
        if e.allow_http && e.url.starts_with("http://") {
            r.warnings.push(format!(
                "[[webhooks.endpoints]] {}: allow_http sends events unencrypted",
                e.name
            ));
        }
        match read_secret_file(&e.secret_file) {
            Ok(s) => secrets.push((format!("[webhooks] endpoint {} secret_file", e.name), s)),
            Err(err) => r.refusals.push(err.to_string()),
        }
    }
}

fn check_turn(path: &Path, r: &mut Report, secrets: &mut Vec<(String, Vec<u8>)>) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return r
                .refusals
                .push(format!("cannot read {}: {e}", path.display()))
        }
    };
    let mut t = match bedside_turn::Config::from_toml(&text, path) {
        Ok(t) => t,
        Err(e) => return r.refusals.push(e.to_string()),
    };
    if let Err(e) = t.validate() {
        return r.refusals.push(format!("{}: {e}", path.display()));
    }
    r.lines.push(format!(
        "TURN listeners:  udp {:?}, tcp {:?}, tls+tcp {:?}",
        t.listen_udp, t.listen_tcp, t.listen_tls
    ));
    for cidr in &t.allow_peer {
        let text = cidr.to_string();
        let prefix: u8 = text
            .rsplit_once('/')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0);
        let v6 = text.contains(':');
        if (!v6 && prefix < 8) || (v6 && prefix < 16) {
            r.refusals.push(format!(
                "TURN allow_peer {text} opens relaying to nearly every address: list only the SFU's media addresses"
            ));
        }
    }
    if t.allow_peer.is_empty() {
        r.lines
            .push("TURN peers:      public addresses only (no allow-list)".into());
    } else {
        r.lines.push(format!(
            "TURN peers:      public addresses and {} allowed range(s)",
            t.allow_peer.len()
        ));
    }
    if let Some(file) = &t.secret_file {
        match first_line(file) {
            Ok(s) => secrets.push(("bedside-turn secret_file".into(), s)),
            Err(e) => r.refusals.push(e),
        }
    }
}

fn check_recorder(path: &Path, r: &mut Report, secrets: &mut Vec<(String, Vec<u8>)>) {
    let c = match bedside_recorder::Config::load(path) {
        Ok(c) => c,
        Err(e) => return r.refusals.push(format!("{}: {e}", path.display())),
    };
    match c.keyring() {
        Ok(_) => r.lines.push(format!(
            "recordings:      {} (KEK id {})",
            c.storage_dir.display(),
            c.kek_id
        )),
        Err(e) => r.refusals.push(format!(
            "recording is configured without a usable key-encryption key: {e}"
        )),
    }
    if let Some(file) = &c.kek_file {
        if let Ok(s) = read_raw(file) {
            secrets.push(("recorder kek_file".into(), s));
        }
    }
    if let Some(url) = &c.control_url {
        r.lines.push(format!("recorder joins:  {url}"));
    }
    if let Some(file) = &c.secret_file {
        match first_line(file) {
            Ok(s) => secrets.push(("recorder secret_file".into(), s)),
            Err(e) => r.refusals.push(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_named() {
        assert_eq!(weakness(b"short"), Some("shorter than 32 bytes"));
        assert_eq!(weakness(&[b'a'; 40]), Some("too repetitive to be random"));
        assert_eq!(
            weakness(b"changeme-changeme-0123456789abcdefgh"),
            Some("contains a placeholder word")
        );
        assert_eq!(weakness(b"k7Q2vX9pL4mN8rT1wZ6yB3cF5hJ0dG2sA8eU4iO7"), None);
    }

    #[test]
    fn webhook_secrets_must_be_strong_and_separate_from_every_other_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let token = file("token", "k7Q2vX9pL4mN8rT1wZ6yB3cF5hJ0dG2sA8eU4iO7");
        let ehr = file("ehr", "Zq8Lr2Wm5Tx1Vb7Nc4Kd9Hf3Jg6Ps0Ya2Ue8Io5");
        let billing = file("billing", "Mb3Xe7Qw1Rt9Yu5Ip2Oa8Sd4Fg6Hj0Kl3Zx7Cv1");
        let config = |ehr_secret: &str, billing_secret: &str| {
            let text = format!(
                "[media]\nbind = \"127.0.0.1:0\"\n[tokens]\nissuer = \"s\"\n\
                 hs256_secret_file = {token:?}\n[state]\ndir = {:?}\n\
                 [[webhooks.endpoints]]\nname = \"ehr\"\nurl = \"https://ehr.example.org/h\"\n\
                 secret_file = {ehr_secret:?}\n\
                 [[webhooks.endpoints]]\nname = \"billing\"\n\
                 url = \"http://127.0.0.1:9/h\"\nsecret_file = {billing_secret:?}\n",
                dir.path().display().to_string()
            );
            let p = dir.path().join("bedside.toml");
            std::fs::write(&p, text).unwrap();
            check(&p, None, None)
        };
        let r = config(&ehr, &billing);
        assert!(r.ok(), "{}", r.render());
        assert!(r.render().contains("webhooks:        2 endpoint(s)"));
        let r = config(&ehr, &ehr);
        assert!(
            r.refusals
                .iter()
                .any(|x| x.contains("endpoint ehr") && x.contains("endpoint billing")),
            "{}",
            r.render()
        );
        let r = config(&token, &billing);
        assert!(
            r.refusals
                .iter()
                .any(|x| x.contains("hs256") && x.contains("endpoint ehr")),
            "{}",
            r.render()
        );
        let weak = file("weak", "changeme-changeme-changeme-0123456789");
        let r = config(&ehr, &weak);
        assert!(
            r.refusals
                .iter()
                .any(|x| x.contains("billing") && x.contains("weak")),
            "{}",
            r.render()
        );
    }
}
