//! The one typed config tree of `bedside`: defaults → TOML file → `BEDSIDE_*`
//! environment → [`Config::validate`], then read-only. `deploy/config/bedside.example.toml`
//! documents every key; keep the two in step.
//!
//! Environment overrides name a key by its path with `__` between levels:
//! `BEDSIDE_HTTP__LISTEN=0.0.0.0:443` sets `[http] listen`. Variables without `__`
//! (`BEDSIDE_LOG`, `BEDSIDE_STATE_DIR`) are not config keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bedside_sfu::RoutingTable;
use serde::Deserialize;

/// Everything `bedside serve` needs.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpConfig,
    pub admin: AdminConfig,
    pub media: MediaConfig,
    pub tokens: TokenConfig,
    pub signaling: SignalingConfig,
    pub log: LogConfig,
    pub visits: VisitsConfig,
    /// Who publishes and receives what, per visit type (`docs/roles.md`). Default: the table in
    /// docs/roles.md. A visit type given here replaces that type's defaults whole.
    pub routing: RoutingTable,
    pub audit: AuditConfig,
    pub turn: TurnConfig,
    pub recording: RecordingConfig,
    /// The state directory (the embedded store with the webhook outbox).
    pub state: crate::webhooks::config::StateConfig,
    /// Signed webhooks to the hospital's systems (docs/integration.md).
    pub webhooks: crate::webhooks::config::WebhooksConfig,
}

/// Recording (docs/design.md "Recording"): off unless enabled. The recorder itself
/// (`bedside-recorder run`) has its own config with the storage and the key-encryption key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    pub enabled: bool,
    /// Version of the consent text, stored with every consent decision (letters, digits,
    /// `.`, `-`, `_`; up to 64). Change it whenever `consent_text` changes.
    pub consent_text_version: String,
    /// What participants are asked to agree to.
    pub consent_text: String,
    /// File whose first line is the secret recorder agents authenticate with on
    /// `/v1/recorder` (the same file as the recorder's `secret_file`).
    pub recorder_secret_file: Option<PathBuf>,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: false,
            consent_text_version: "1".into(),
            consent_text: "Your clinician would like to record this visit. The recording is \
                           encrypted and kept as your care provider's policy requires. Only \
                           participants who agree are recorded, and you can withdraw at any \
                           time."
                .into(),
            recorder_secret_file: None,
        }
    }
}

/// The TURN servers participants are sent to (`bedside-turn`), and the shared REST secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// `turn:`/`turns:` URLs handed to every participant, one per transport and port, e.g.
    /// `turn:turn.example.org:3478?transport=udp`, `turns:turn.example.org:443?transport=tcp`.
    /// Empty: no TURN (participants behind strict firewalls cannot connect).
    pub urls: Vec<String>,
    /// File with the TURN REST shared secret (the first line of bedside-turn's `secret_file`).
    pub secret_file: Option<PathBuf>,
    /// Seconds the handed-out credentials stay valid (longer than the longest visit).
    pub credential_ttl_seconds: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            urls: Vec::new(),
            secret_file: None,
            credential_ttl_seconds: 12 * 3600,
        }
    }
}

/// Limits per visit type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisitsConfig {
    pub consult: VisitTypeConfig,
    pub group: VisitTypeConfig,
}

impl Default for VisitsConfig {
    fn default() -> Self {
        VisitsConfig {
            consult: VisitTypeConfig {
                max_participants: 10,
                ..VisitTypeConfig::default()
            },
            group: VisitTypeConfig {
                max_participants: 20,
                ..VisitTypeConfig::default()
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisitTypeConfig {
    /// Most participants at once, waiting and admitted together.
    pub max_participants: usize,
    /// Seconds a participant may wait for admission before the wait ends with a message.
    pub max_wait_seconds: u64,
    /// Seconds a dropped participant keeps their place in the queue or their admission.
    pub grace_seconds: u64,
    /// Seconds during which someone a clinician denied is refused (`denied`) when they knock
    /// again with a token of the same `sub`; 0 turns the cool-down off.
    pub deny_cooldown_seconds: u64,
}

impl Default for VisitTypeConfig {
    fn default() -> Self {
        VisitTypeConfig {
            max_participants: 10,
            max_wait_seconds: 3600,
            grace_seconds: 30,
            deny_cooldown_seconds: 120,
        }
    }
}

/// The append-only audit log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The JSON-lines file; created if missing, continued (after verifying its chain) if not.
    pub path: PathBuf,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: PathBuf::from("/var/lib/bedside/audit.jsonl"),
        }
    }
}

/// The public listener: web client and WebSocket signaling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port of the web client and `/v1/signal`.
    pub listen: SocketAddr,
    /// PEM certificate chain for HTTPS/WSS on `listen`; reloaded on SIGHUP or file change.
    /// Unset (with `tls_key`): plain HTTP, for TLS terminated by a proxy in front.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Optional plain-HTTP listener that redirects everything to HTTPS (e.g. `0.0.0.0:80`).
    pub redirect_listen: Option<SocketAddr>,
    /// Seconds a client has to send a complete request header; also how long a keep-alive
    /// connection may wait for its next request.
    pub header_read_timeout_seconds: u64,
    /// Seconds without a byte in either direction before an HTTP connection is closed
    /// (WebSocket sessions excepted).
    pub idle_timeout_seconds: u64,
    /// Seconds a client has to complete the TLS handshake.
    pub tls_handshake_timeout_seconds: u64,
    /// Connections open at once from one client address (an IPv6 /64 counts as one).
    pub max_connections_per_address: usize,
    /// Connections open at once on the public listeners in all.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let limits = crate::HttpLimits::default();
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            tls_cert: None,
            tls_key: None,
            redirect_listen: None,
            header_read_timeout_seconds: limits.header_read_timeout.as_secs(),
            idle_timeout_seconds: limits.idle_timeout.as_secs(),
            tls_handshake_timeout_seconds: limits.tls_handshake_timeout.as_secs(),
            max_connections_per_address: limits.max_connections_per_address,
            max_connections: limits.max_connections,
        }
    }
}

impl HttpConfig {
    /// The listeners' deadlines and caps.
    pub fn limits(&self) -> crate::HttpLimits {
        crate::HttpLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            tls_handshake_timeout: Duration::from_secs(self.tls_handshake_timeout_seconds),
            max_connections_per_address: self.max_connections_per_address,
            max_connections: self.max_connections,
        }
    }
}

/// The admin listener: `/metrics` and health, never exposed to patients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

/// The SFU's media socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// The one UDP socket every media peer shares.
    pub bind: SocketAddr,
    /// Addresses put in the server's ICE candidates (its public or LAN addresses). Required
    /// when `bind` is `0.0.0.0` or `::`. Port 0 means the bound port.
    pub advertise: Vec<SocketAddr>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 50000)),
            advertise: Vec::new(),
        }
    }
}

/// How join tokens are verified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// The `iss` every token must carry (the scheduling system's name).
    pub issuer: Option<String>,
    /// File holding the HS256 shared secret (at least 32 bytes; surrounding whitespace ignored).
    pub hs256_secret_file: Option<PathBuf>,
    /// Public keys of the scheduling system (preferred over HS256). With keys and no HS256
    /// secret, HS256 tokens are refused.
    pub public_keys: Vec<PublicKeyConfig>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            issuer: None,
            hs256_secret_file: None,
            public_keys: Vec::new(),
            leeway_seconds: 30,
        }
    }
}

/// One public key for join tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    /// The `kid` in the header of tokens signed with this key (needed when several keys of
    /// one algorithm are configured, e.g. during rotation).
    pub kid: Option<String>,
    /// `"EdDSA"` (Ed25519) or `"RS256"`.
    pub algorithm: bedside_token::PublicAlgorithm,
    /// PEM file with the public key (SubjectPublicKeyInfo).
    pub pem_file: PathBuf,
}

/// WebSocket signaling limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalingConfig {
    /// Seconds a new socket may take to send `join` before it is closed.
    pub join_timeout_seconds: u64,
    /// Join attempts per second allowed from one client address (sustained).
    pub join_rate_per_second: f64,
    /// Join attempts one client address may make in a burst.
    pub join_burst: u32,
    /// Messages per second allowed on one WebSocket (sustained), before and after `join`.
    pub message_rate_per_second: f64,
    /// Messages one WebSocket may send in a burst.
    pub message_burst: u32,
}

impl SignalingConfig {
    /// The web client sends a few messages a minute once a visit runs, and bursts when media
    /// starts: an offer, a candidate per interface and TURN transport, answers to the server's
    /// offers as others join. 50 at once covers a multi-homed machine with every TURN
    /// transport; 20 a second sustained is several times any legitimate use.
    pub const DEFAULT_MESSAGE_RATE: f64 = 20.0;
    pub const DEFAULT_MESSAGE_BURST: u32 = 50;
}

impl Default for SignalingConfig {
    fn default() -> Self {
        SignalingConfig {
            join_timeout_seconds: 10,
            join_rate_per_second: 2.0,
            join_burst: 20,
            message_rate_per_second: Self::DEFAULT_MESSAGE_RATE,
            message_burst: Self::DEFAULT_MESSAGE_BURST,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatName {
    /// One JSON object per line (for log shippers).
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormatName,
}

/// Why a config could not be used. Messages name the key and never echo secret values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name} does not name a config key: {message}")]
    Env { name: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads `path`, applies `BEDSIDE_*` overrides from `env`, and validates.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_and_env(&text, path, env)
    }

    fn from_toml_and_env(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.message().to_owned(),
                })?;
        for (name, value) in env {
            let Some(key) = name.strip_prefix("BEDSIDE_") else {
                continue;
            };
            if !key.contains("__") {
                continue;
            }
            let parts: Vec<String> = key.split("__").map(|p| p.to_ascii_lowercase()).collect();
            set_path(&mut tree, &parts, parse_env_value(&value)).map_err(|message| {
                ConfigError::Env {
                    name: name.clone(),
                    message,
                }
            })?;
        }
        let config: Config =
            toml::Value::Table(tree)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.message().to_owned(),
                })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types cannot: combinations, files, lengths.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.media.bind.ip().is_unspecified() && self.media.advertise.is_empty() {
            return Err(ConfigError::Invalid(
                "[media] bind is a wildcard address, so [media] advertise must list the \
                 addresses clients reach the media port on"
                    .into(),
            ));
        }
        if let Some(a) = self
            .media
            .advertise
            .iter()
            .find(|a| a.ip().is_unspecified())
        {
            return Err(ConfigError::Invalid(format!(
                "[media] advertise contains the wildcard address {a}; name a reachable address"
            )));
        }
        if self.tokens.hs256_secret_file.is_none() && self.tokens.public_keys.is_empty() {
            return Err(ConfigError::Invalid(
                "[tokens] needs public_keys (preferred) or hs256_secret_file to verify join tokens"
                    .into(),
            ));
        }
        if self.tokens.leeway_seconds > 300 {
            return Err(ConfigError::Invalid(
                "[tokens] leeway_seconds is over 300; a clock that far off needs fixing".into(),
            ));
        }
        if self.signaling.join_timeout_seconds == 0 || self.signaling.join_timeout_seconds > 300 {
            return Err(ConfigError::Invalid(
                "[signaling] join_timeout_seconds must be between 1 and 300".into(),
            ));
        }
        let rate = self.signaling.join_rate_per_second;
        if rate.is_nan() || rate <= 0.0 || self.signaling.join_burst == 0 {
            return Err(ConfigError::Invalid(
                "[signaling] join_rate_per_second and join_burst must be above 0".into(),
            ));
        }
        // Below 1 a second or 10 at once the web client's own bursts (media start) would be
        // refused; the upper bounds keep the limit a limit.
        let rate = self.signaling.message_rate_per_second;
        if !(1.0..=1000.0).contains(&rate) || !(10..=10_000).contains(&self.signaling.message_burst)
        {
            return Err(ConfigError::Invalid(
                "[signaling] message_rate_per_second must be between 1 and 1000, message_burst \
                 between 10 and 10000"
                    .into(),
            ));
        }
        for (name, v) in [
            ("consult", &self.visits.consult),
            ("group", &self.visits.group),
        ] {
            if !(2..=1000).contains(&v.max_participants) {
                return Err(ConfigError::Invalid(format!(
                    "[visits.{name}] max_participants must be between 2 and 1000"
                )));
            }
            if !(60..=86_400).contains(&v.max_wait_seconds) {
                return Err(ConfigError::Invalid(format!(
                    "[visits.{name}] max_wait_seconds must be between 60 and 86400"
                )));
            }
            if v.grace_seconds > 600 {
                return Err(ConfigError::Invalid(format!(
                    "[visits.{name}] grace_seconds must be at most 600"
                )));
            }
            if v.deny_cooldown_seconds > 86_400 {
                return Err(ConfigError::Invalid(format!(
                    "[visits.{name}] deny_cooldown_seconds must be at most 86400"
                )));
            }
        }
        if !self.turn.urls.is_empty() && self.turn.secret_file.is_none() {
            return Err(ConfigError::Invalid(
                "[turn] urls are set, so [turn] secret_file must name the TURN REST secret".into(),
            ));
        }
        if let Some(u) = self.turn.urls.iter().find(|u| {
            !(u.starts_with("turn:") || u.starts_with("turns:") || u.starts_with("stun:"))
        }) {
            return Err(ConfigError::Invalid(format!(
                "[turn] urls: {u:?} is not a turn:, turns: or stun: URL"
            )));
        }
        if !(60..=7 * 86_400).contains(&self.turn.credential_ttl_seconds) {
            return Err(ConfigError::Invalid(
                "[turn] credential_ttl_seconds must be between 60 and 604800".into(),
            ));
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "[http] set both tls_cert and tls_key, or neither".into(),
            ));
        }
        for (key, value, max) in [
            (
                "header_read_timeout_seconds",
                self.http.header_read_timeout_seconds,
                300,
            ),
            ("idle_timeout_seconds", self.http.idle_timeout_seconds, 3600),
            (
                "tls_handshake_timeout_seconds",
                self.http.tls_handshake_timeout_seconds,
                300,
            ),
        ] {
            if !(1..=max).contains(&value) {
                return Err(ConfigError::Invalid(format!(
                    "[http] {key} must be between 1 and {max}"
                )));
            }
        }
        if !(1..=1_000_000).contains(&self.http.max_connections) {
            return Err(ConfigError::Invalid(
                "[http] max_connections must be between 1 and 1000000".into(),
            ));
        }
        if self.http.max_connections_per_address == 0
            || self.http.max_connections_per_address > self.http.max_connections
        {
            return Err(ConfigError::Invalid(
                "[http] max_connections_per_address must be between 1 and max_connections".into(),
            ));
        }
        if self.http.redirect_listen.is_some() && self.http.tls_cert.is_none() {
            return Err(ConfigError::Invalid(
                "[http] redirect_listen needs tls_cert and tls_key (it redirects to HTTPS)".into(),
            ));
        }
        if self.recording.enabled {
            let v = &self.recording.consent_text_version;
            if v.is_empty()
                || v.len() > 64
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
            {
                return Err(ConfigError::Invalid(
                    "[recording] consent_text_version must be 1 to 64 letters, digits, `.`, `-` \
                     or `_`"
                        .into(),
                ));
            }
            if self.recording.consent_text.trim().is_empty()
                || self.recording.consent_text.len() > 4000
            {
                return Err(ConfigError::Invalid(
                    "[recording] consent_text must be 1 to 4000 bytes".into(),
                ));
            }
            if self.recording.recorder_secret_file.is_none() {
                return Err(ConfigError::Invalid(
                    "[recording] enabled needs recorder_secret_file (recorder agents authenticate \
                     with it)"
                        .into(),
                ));
            }
        }
        self.webhooks.validate()?;
        if self.http.listen == self.admin.listen {
            return Err(ConfigError::Invalid(
                "[http] listen and [admin] listen must differ: metrics stay off the public port"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Reads the HS256 secret named by `[tokens] hs256_secret_file`.
    pub fn read_token_secret(&self) -> Result<Vec<u8>, ConfigError> {
        let path =
            self.tokens.hs256_secret_file.as_ref().ok_or_else(|| {
                ConfigError::Invalid("[tokens] hs256_secret_file is not set".into())
            })?;
        read_secret_file(path)
    }

    /// The TURN settings from `[turn]`, reading the secret file; none when no URLs are set.
    pub fn turn_settings(&self) -> Result<Option<crate::turn::TurnSettings>, ConfigError> {
        let (false, Some(path)) = (self.turn.urls.is_empty(), &self.turn.secret_file) else {
            return Ok(None);
        };
        let secret = read_first_line_secret(path, "TURN")?;
        Ok(Some(crate::turn::TurnSettings {
            urls: self.turn.urls.clone(),
            secret,
            ttl: std::time::Duration::from_secs(self.turn.credential_ttl_seconds),
        }))
    }

    /// The recording settings from `[recording]`, reading the recorder secret; none when off.
    pub fn recording_settings(&self) -> Result<Option<crate::RecordingSettings>, ConfigError> {
        let (true, Some(path)) = (self.recording.enabled, &self.recording.recorder_secret_file)
        else {
            return Ok(None);
        };
        let secret = read_first_line_secret(path, "recorder")?;
        Ok(Some(crate::RecordingSettings {
            consent: crate::ConsentText {
                version: self.recording.consent_text_version.clone(),
                text: self.recording.consent_text.clone(),
            },
            recorder_secret: secret,
        }))
    }

    /// Builds the join-token verifier from `[tokens]`, reading the secret and key files.
    pub fn token_verifier(&self) -> Result<bedside_token::Verifier, ConfigError> {
        let secret = match &self.tokens.hs256_secret_file {
            Some(path) => Some(read_secret_file(path)?),
            None => None,
        };
        let mut keys = Vec::new();
        for k in &self.tokens.public_keys {
            let pem = std::fs::read(&k.pem_file).map_err(|source| ConfigError::Read {
                path: k.pem_file.clone(),
                source,
            })?;
            keys.push(bedside_token::PublicKey {
                kid: k.kid.clone(),
                algorithm: k.algorithm,
                pem,
            });
        }
        bedside_token::Verifier::new(
            secret.as_deref(),
            &keys,
            self.tokens.issuer.as_deref(),
            self.tokens.leeway_seconds,
        )
        .map_err(|e| ConfigError::Invalid(format!("[tokens]: {e}")))
    }
}

/// Reads the first line of a secret file shared with another program (bedside-turn,
/// bedside-recorder), trimmed; refuses secrets under 32 bytes.
fn read_first_line_secret(path: &Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let secret = text.lines().next().unwrap_or("").trim().as_bytes().to_vec();
    if secret.len() < 32 {
        return Err(ConfigError::Invalid(format!(
            "the {what} secret in {} is shorter than 32 bytes",
            path.display()
        )));
    }
    Ok(secret)
}

/// Reads a secret file, trimming surrounding whitespace; refuses secrets under 32 bytes.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let secret = text.trim().as_bytes().to_vec();
    if secret.len() < 32 {
        return Err(ConfigError::Invalid(format!(
            "the secret in {} is shorter than 32 bytes",
            path.display()
        )));
    }
    Ok(secret)
}

fn parse_env_value(value: &str) -> toml::Value {
    // `key = <value>` parses numbers, booleans and arrays; anything else is a plain string.
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn set_path(tree: &mut toml::Table, parts: &[String], value: toml::Value) -> Result<(), String> {
    match parts {
        [] => Err("empty key".into()),
        [last] => {
            tree.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = tree
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("{first} is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [http]
        listen = "0.0.0.0:8443"
        [media]
        bind = "0.0.0.0:50000"
        advertise = ["192.0.2.10:0"]
        [tokens]
        issuer = "scheduler"
        hs256_secret_file = "/etc/bedside/token-secret"
    "#;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_toml_and_env(
            text,
            Path::new("test.toml"),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn a_good_config_loads_with_defaults_filled_in() {
        let c = load(GOOD, &[]).unwrap();
        assert_eq!(c.admin.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(c.tokens.leeway_seconds, 30);
        assert_eq!(c.log.format, LogFormatName::Json);
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let c = load(
            GOOD,
            &[
                ("BEDSIDE_HTTP__LISTEN", "127.0.0.1:1234"),
                ("BEDSIDE_TOKENS__LEEWAY_SECONDS", "5"),
                ("BEDSIDE_LOG__FORMAT", "text"),
                ("BEDSIDE_LOG", "debug"),
                ("PATH", "/bin"),
            ],
        )
        .unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(c.tokens.leeway_seconds, 5);
        assert_eq!(c.log.format, LogFormatName::Text);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_the_key_named() {
        let e = load(&format!("{GOOD}\n[extra]\nx = 1"), &[]).unwrap_err();
        assert!(e.to_string().contains("extra"), "{e}");
        let e = load(GOOD, &[("BEDSIDE_HTTP__LISTN", "1.2.3.4:5")]).unwrap_err();
        assert!(e.to_string().contains("listn"), "{e}");
        let e = load(&GOOD.replace("0.0.0.0:8443", "not-an-address"), &[]).unwrap_err();
        assert!(e.to_string().contains("test.toml"), "{e}");
    }

    #[test]
    fn validation_refuses_unusable_combinations() {
        let e = load(&GOOD.replace(r#"advertise = ["192.0.2.10:0"]"#, ""), &[]).unwrap_err();
        assert!(e.to_string().contains("advertise"), "{e}");
        let e = load(&GOOD.replace("hs256_secret_file", "#"), &[]).unwrap_err();
        assert!(e.to_string().contains("hs256_secret_file"), "{e}");
        let with_key = GOOD.replace(
            r#"hs256_secret_file = "/etc/bedside/token-secret""#,
            "[[tokens.public_keys]]\nkid = \"k1\"\nalgorithm = \"EdDSA\"\npem_file = \"/k.pem\"",
        );
        let c = load(&with_key, &[]).unwrap();
        assert_eq!(c.tokens.public_keys.len(), 1);
        let bad_alg = with_key.replace("EdDSA", "HS512");
        assert!(load(&bad_alg, &[]).is_err());
        let e = load(GOOD, &[("BEDSIDE_ADMIN__LISTEN", "0.0.0.0:8443")]).unwrap_err();
        assert!(e.to_string().contains("must differ"), "{e}");
        for (key, value) in [
            ("BEDSIDE_SIGNALING__MESSAGE_RATE_PER_SECOND", "0.5"),
            ("BEDSIDE_SIGNALING__MESSAGE_RATE_PER_SECOND", "nan"),
            ("BEDSIDE_SIGNALING__MESSAGE_BURST", "5"),
        ] {
            let e = load(GOOD, &[(key, value)]).unwrap_err();
            assert!(e.to_string().contains("message_rate_per_second"), "{e}");
        }
        let c = load(GOOD, &[("BEDSIDE_SIGNALING__MESSAGE_BURST", "80")]).unwrap();
        assert_eq!(c.signaling.message_burst, 80);
        assert_eq!(c.signaling.message_rate_per_second, 20.0);
    }

    #[test]
    fn http_limits_default_and_are_checked() {
        let c = load(GOOD, &[]).unwrap();
        let limits = c.http.limits();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.tls_handshake_timeout, Duration::from_secs(10));
        assert_eq!(limits.max_connections_per_address, 50);
        assert_eq!(limits.max_connections, 10_000);
        let c = load(
            GOOD,
            &[("BEDSIDE_HTTP__MAX_CONNECTIONS_PER_ADDRESS", "500")],
        )
        .unwrap();
        assert_eq!(c.http.limits().max_connections_per_address, 500);
        for (key, value) in [
            ("BEDSIDE_HTTP__HEADER_READ_TIMEOUT_SECONDS", "0"),
            ("BEDSIDE_HTTP__IDLE_TIMEOUT_SECONDS", "86400"),
            ("BEDSIDE_HTTP__TLS_HANDSHAKE_TIMEOUT_SECONDS", "0"),
            ("BEDSIDE_HTTP__MAX_CONNECTIONS", "0"),
            ("BEDSIDE_HTTP__MAX_CONNECTIONS_PER_ADDRESS", "0"),
            ("BEDSIDE_HTTP__MAX_CONNECTIONS_PER_ADDRESS", "20000"),
        ] {
            let e = load(GOOD, &[(key, value)]).unwrap_err().to_string();
            let name = key["BEDSIDE_HTTP__".len()..].to_ascii_lowercase();
            assert!(e.contains(&name), "{key}={value}: {e}");
        }
    }

    #[test]
    fn short_secrets_are_refused_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "hunter2\n").unwrap();
        let e = read_secret_file(&path).unwrap_err().to_string();
        assert!(e.contains("shorter than 32"));
        assert!(!e.contains("hunter2"));
        std::fs::write(&path, format!("{}\n", "k".repeat(40))).unwrap();
        assert_eq!(read_secret_file(&path).unwrap().len(), 40);
    }

    #[test]
    fn public_keys_from_files_build_a_verifier_that_refuses_hs256() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("k.pem");
        std::fs::write(
            &pem,
            include_str!("../../crates/token/tests/keys/test-only-rs256-public.pem"),
        )
        .unwrap();
        let text = format!(
            "[media]\nbind = \"127.0.0.1:0\"\n[tokens]\nissuer = \"s\"\n\
             [[tokens.public_keys]]\nalgorithm = \"RS256\"\npem_file = {:?}\n",
            pem.display().to_string()
        );
        let c = load(&text, &[]).unwrap();
        let v = c.token_verifier().unwrap();
        let claims = bedside_token::Claims {
            iss: "s".into(),
            sub: "x".into(),
            visit: "v".into(),
            visit_type: None,
            role: "patient".into(),
            exp: u64::MAX / 2,
            nbf: None,
            jti: "j".into(),
            name: None,
            reason: None,
            locale: None,
            fhir: None,
        };
        let hs = bedside_token::sign_hs256(&[7u8; 32], &claims).unwrap();
        assert!(
            v.verify(&hs).is_err(),
            "HS256 refused where a public key is configured"
        );
        let rs = bedside_token::sign_with_pem(
            bedside_token::PublicAlgorithm::Rs256,
            None,
            include_bytes!("../../crates/token/tests/keys/test-only-rs256-private.pem"),
            &claims,
        )
        .unwrap();
        assert_eq!(v.verify(&rs).unwrap().role, bedside_proto::Role::Patient);
        // A missing key file is named in the error.
        let missing = text.replace(&pem.display().to_string(), "/nonexistent/key.pem");
        let e = load(&missing, &[]).unwrap().token_verifier().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/key.pem"), "{e}");
    }

    #[test]
    fn the_example_config_in_deploy_is_valid() {
        let text = include_str!("../../deploy/config/bedside.example.toml");
        load(text, &[]).unwrap();
    }
}
