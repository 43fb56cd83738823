//! `[webhooks]` and `[state]`: where events go, how they are retried, where the outbox lives.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// The state directory: the embedded store ([`bedside_store::STORE_FILE`]) lives here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: PathBuf::from("/var/lib/bedside"),
        }
    }
}

/// Signed webhooks to the hospital's systems (docs/integration.md). Off while `endpoints` is
/// empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    pub endpoints: Vec<EndpointConfig>,
    /// Seconds to open the TCP connection and finish the TLS handshake.
    pub connect_timeout_seconds: u64,
    /// Seconds one attempt may take in all, until the response status arrives.
    pub timeout_seconds: u64,
    /// The first retry's delay in milliseconds; each later one doubles, up to
    /// `max_backoff_seconds`, with jitter.
    pub initial_backoff_ms: u64,
    pub max_backoff_seconds: u64,
    /// Seconds an event is retried before it becomes a dead letter (at least 86400).
    pub max_age_seconds: u64,
    /// Events one endpoint's queue for one visit may hold; beyond it new events are dropped
    /// (and counted).
    pub max_events_per_visit: u64,
    /// Events the outbox may hold in all, dead letters included.
    pub max_events: u64,
    /// Deliveries in flight at once, each to a different visit's queue.
    pub max_in_flight: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        let limits = bedside_store::Limits::default();
        WebhooksConfig {
            endpoints: Vec::new(),
            connect_timeout_seconds: 5,
            timeout_seconds: 10,
            initial_backoff_ms: 1000,
            max_backoff_seconds: 3600,
            max_age_seconds: 86_400,
            max_events_per_visit: limits.max_per_queue,
            max_events: limits.max_total,
            max_in_flight: 32,
        }
    }
}

/// One receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// A stable name (letters, digits, `-`, `_`; up to 64): the outbox's queues are kept under
    /// it, so renaming an endpoint leaves its undelivered events behind.
    pub name: String,
    /// `https://…` (or `http://` to a loopback address, or anywhere with `allow_http`).
    pub url: String,
    /// File whose contents (trimmed) are this endpoint's signing secret: at least 32 bytes, and
    /// separate from every other secret.
    pub secret_file: PathBuf,
    /// Allow `http://` to an address that is not loopback (events then cross the network in
    /// clear: only inside a trusted segment).
    #[serde(default)]
    pub allow_http: bool,
    /// PEM file of the CA certificates that sign the receiver's certificate (a hospital's own
    /// CA); default: the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl WebhooksConfig {
    pub fn enabled(&self) -> bool {
        !self.endpoints.is_empty()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let mut names = std::collections::HashSet::new();
        for e in &self.endpoints {
            if e.name.is_empty()
                || e.name.len() > bedside_store::MAX_DESTINATION
                || !e
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                return bad(format!(
                    "[[webhooks.endpoints]] name {:?} must be 1 to 64 letters, digits, `-` or `_`",
                    e.name
                ));
            }
            if !names.insert(e.name.as_str()) {
                return bad(format!(
                    "[[webhooks.endpoints]] name {:?} is used twice",
                    e.name
                ));
            }
            let url = parse_url(&e.url).map_err(|why| {
                ConfigError::Invalid(format!("[[webhooks.endpoints]] {}: url {why}", e.name))
            })?;
            if !url.https && !url.loopback && !e.allow_http {
                return bad(format!(
                    "[[webhooks.endpoints]] {}: url is http:// to a host that is not loopback; \
                     use https://, or set allow_http = true for a trusted network segment",
                    e.name
                ));
            }
        }
        let ranges: [(&str, u64, u64, u64); 5] = [
            (
                "connect_timeout_seconds",
                self.connect_timeout_seconds,
                1,
                60,
            ),
            ("timeout_seconds", self.timeout_seconds, 1, 300),
            ("initial_backoff_ms", self.initial_backoff_ms, 10, 60_000),
            ("max_backoff_seconds", self.max_backoff_seconds, 1, 86_400),
            ("max_age_seconds", self.max_age_seconds, 86_400, 30 * 86_400),
        ];
        for (key, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                return bad(format!("[webhooks] {key} must be between {lo} and {hi}"));
            }
        }
        if self.max_backoff_seconds * 1000 < self.initial_backoff_ms {
            return bad("[webhooks] max_backoff_seconds is below initial_backoff_ms".into());
        }
        if !(1..=1_000_000).contains(&self.max_events_per_visit)
            || !(1..=10_000_000).contains(&self.max_events)
        {
            return bad(
                "[webhooks] max_events_per_visit must be between 1 and 1000000, max_events \
                 between 1 and 10000000"
                    .into(),
            );
        }
        if !(1..=1024).contains(&self.max_in_flight) {
            return bad("[webhooks] max_in_flight must be between 1 and 1024".into());
        }
        Ok(())
    }

    pub(crate) fn limits(&self) -> bedside_store::Limits {
        bedside_store::Limits {
            max_per_queue: self.max_events_per_visit,
            max_total: self.max_events,
            ..bedside_store::Limits::default()
        }
    }

    pub(crate) fn policy(&self) -> super::deliver::Policy {
        super::deliver::Policy {
            initial: Duration::from_millis(self.initial_backoff_ms),
            max: Duration::from_secs(self.max_backoff_seconds),
            max_age: Duration::from_secs(self.max_age_seconds),
        }
    }
}

/// What the deliverer needs of an endpoint's URL.
#[derive(Debug, Clone)]
pub(crate) struct Url {
    pub(crate) https: bool,
    /// The host name or address (IPv6 without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path and query, at least `/`.
    pub(crate) path: String,
    /// The `Host` header's value.
    pub(crate) authority: String,
    pub(crate) loopback: bool,
}

pub(crate) fn parse_url(text: &str) -> Result<Url, &'static str> {
    if text.len() > 2048 {
        return Err("is longer than 2048 bytes");
    }
    let uri: hyper::Uri = text.parse().map_err(|_| "is not a valid URL")?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("must start with https:// or http://"),
    };
    let authority = uri.authority().ok_or("has no host")?;
    if authority.as_str().contains('@') {
        return Err("must not carry a user name or password");
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err("has no host");
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    Ok(Url {
        https,
        port,
        path: uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned()),
        authority: authority.as_str().to_owned(),
        host,
        loopback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> EndpointConfig {
        EndpointConfig {
            name: "ehr".into(),
            url: url.into(),
            secret_file: "/s".into(),
            allow_http: false,
            ca_file: None,
        }
    }

    fn with(endpoints: Vec<EndpointConfig>) -> WebhooksConfig {
        WebhooksConfig {
            endpoints,
            ..WebhooksConfig::default()
        }
    }

    #[test]
    fn urls_must_be_https_unless_loopback_or_allowed() {
        assert!(with(vec![endpoint("https://ehr.example.org/hooks")])
            .validate()
            .is_ok());
        assert!(with(vec![endpoint("http://127.0.0.1:9000/h")])
            .validate()
            .is_ok());
        assert!(with(vec![endpoint("http://[::1]:9000/h")])
            .validate()
            .is_ok());
        let e = with(vec![endpoint("http://ehr.example.org/h")])
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("allow_http"), "{e}");
        let mut allowed = endpoint("http://10.1.2.3/h");
        allowed.allow_http = true;
        assert!(with(vec![allowed]).validate().is_ok());
        for bad in [
            "ftp://x/",
            "https://",
            "not a url",
            "https://u:p@ehr.example.org/",
        ] {
            assert!(with(vec![endpoint(bad)]).validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_unique_and_plain_and_retries_last_a_day() {
        let e = with(vec![endpoint("https://a/"), endpoint("https://b/")])
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("used twice"), "{e}");
        let mut odd = endpoint("https://a/");
        odd.name = "e h r".into();
        assert!(with(vec![odd]).validate().is_err());
        let short = WebhooksConfig {
            max_age_seconds: 3600,
            ..with(vec![endpoint("https://a/")])
        };
        assert!(short
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_age_seconds"));
    }

    #[test]
    fn urls_are_taken_apart_for_the_client() {
        let u = parse_url("https://[::1]:8443/hook?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str(), u.loopback),
            ("::1", 8443, "/hook?x=1", true)
        );
        let u = parse_url("http://ehr.example.org").unwrap();
        assert_eq!((u.port, u.path.as_str(), u.https), (80, "/", false));
    }
}
