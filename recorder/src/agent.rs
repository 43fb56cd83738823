//! The recorder agent: a control WebSocket to `bedside` (`/v1/recorder`, bearer secret) that
//! receives recording jobs and runs one [`crate::session`] per job. Reconnects with backoff
//! (1 s doubling to 30 s) whenever the connection fails or drops.

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bedside_audit::AuditLog;
use bedside_proto::RecorderJob;
use bedside_recording::Keyring;
use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use crate::session::{run_session, SessionParams};
use crate::{Config, RecorderError};

/// First delay before reconnecting.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest delay between reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// WebSocket ping interval on the control connection; silence for three of them is a dead
/// connection.
const CONTROL_PING: Duration = Duration::from_secs(20);

/// Everything the agent needs, for `bedside-recorder run` or in-process use (`bedside dev`).
pub struct AgentSettings {
    /// `wss://host:port/v1/recorder` or `ws://host:port/v1/recorder`.
    pub control_url: String,
    /// TLS for a `wss://` control URL (and the signaling URL beside it); `None` for `ws://`.
    pub tls: Option<Arc<ClientConfig>>,
    /// The recorder secret (bearer token on the control connection).
    pub secret: String,
    /// Address the media UDP sockets bind to.
    pub media_ip: IpAddr,
    pub storage_dir: PathBuf,
    pub keyring: Arc<Keyring>,
    pub audit: AuditLog,
    /// The retention sweep runs with this config at start and then daily, so expired
    /// recordings go without a separate timer; `None`: no sweeping.
    pub retention: Option<Config>,
}

impl std::fmt::Debug for AgentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSettings")
            .field("secret", &"<redacted>")
            .field("storage_dir", &self.storage_dir)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl AgentSettings {
    /// Settings from a validated config: reads the secret file and the KEKs, opens the audit
    /// log, and for `wss://` builds the TLS config (system CAs plus `ca_file`). Errors if
    /// `control_url` or `secret_file` is missing, or `ca_file` cannot be used.
    pub fn from_config(config: &Config) -> Result<AgentSettings, RecorderError> {
        let control_url = config.control_url.clone().ok_or_else(|| {
            RecorderError::Config(
                "`run` needs control_url (wss:// or ws://HOST:PORT/v1/recorder)".into(),
            )
        })?;
        let secret_file = config.secret_file.as_ref().ok_or_else(|| {
            RecorderError::Config("`run` needs secret_file (the recorder secret)".into())
        })?;
        signal_url(&control_url)?;
        let tls = if uses_tls(&control_url) {
            Some(crate::tls::client_config(config.ca_file.as_deref())?)
        } else if config.ca_file.is_some() {
            return Err(RecorderError::Config(
                "ca_file is only used with a wss:// control_url".into(),
            ));
        } else {
            None
        };
        Ok(AgentSettings {
            control_url,
            tls,
            secret: crate::read_secret(secret_file)?,
            media_ip: config.media_ip,
            storage_dir: config.storage_dir.clone(),
            keyring: Arc::new(config.keyring()?),
            audit: AuditLog::open(&config.audit_log)?,
            retention: Some(config.clone()),
        })
    }
}

/// Checks a control URL: `wss://` or `ws://`, with a host and a path ending in
/// `/v1/recorder`.
pub fn check_control_url(url: &str) -> Result<(), RecorderError> {
    signal_url(url).map(|_| ())
}

/// Whether a (checked) control URL is `wss://`.
pub fn uses_tls(control_url: &str) -> bool {
    control_url.starts_with("wss://")
}

/// The signaling URL beside a control URL: same scheme, its path's final `/v1/recorder`
/// becomes `/v1/signal`.
pub fn signal_url(control_url: &str) -> Result<String, RecorderError> {
    let bad = |why: &str| RecorderError::Config(format!("control_url: {why}"));
    let (scheme, rest) = if let Some(rest) = control_url.strip_prefix("wss://") {
        ("wss", rest)
    } else if let Some(rest) = control_url.strip_prefix("ws://") {
        ("ws", rest)
    } else {
        return Err(bad("must start with wss:// or ws://"));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("needs a host[:port] and no user info"));
    }
    if path.contains(['?', '#']) {
        return Err(bad("no query or fragment"));
    }
    let prefix = path
        .strip_suffix("/v1/recorder")
        .ok_or_else(|| bad("the path must end in /v1/recorder"))?;
    Ok(format!("{scheme}://{authority}{prefix}/v1/signal"))
}

/// How often the agent runs the retention sweep.
const SWEEP_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Runs `sweep` now and then every [`SWEEP_INTERVAL`]; failures are logged and retried at the
/// next interval (a recording being written is young, so it is never a candidate).
async fn sweep_daily(config: Config) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        let c = config.clone();
        let swept =
            tokio::task::spawn_blocking(move || crate::sweep(&c, bedside_recording::now_unix_ms()))
                .await;
        match swept {
            Ok(Ok(report)) => info!(
                deleted = report.deleted.len(),
                kept = report.kept,
                skipped = report.skipped.len(),
                "retention sweep"
            ),
            Ok(Err(e)) => warn!(error = %e, "retention sweep failed"),
            Err(_) => warn!("retention sweep panicked"),
        }
    }
}

/// The next reconnection delay.
pub fn next_backoff(current: Duration) -> Duration {
    (current * 2).clamp(BACKOFF_MIN, BACKOFF_MAX)
}

/// Runs the agent forever (reconnecting as needed). Fails only on settings it cannot use.
pub async fn run_agent(settings: AgentSettings) -> Result<(), RecorderError> {
    run_agent_until(settings, std::future::pending()).await
}

/// Runs the agent until `shutdown` completes; then every running session finishes its
/// recording (streams and metadata) before this returns.
pub async fn run_agent_until(
    settings: AgentSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RecorderError> {
    let signal = signal_url(&settings.control_url)?;
    let mut request = settings
        .control_url
        .as_str()
        .into_client_request()
        .map_err(|e| RecorderError::Config(format!("control_url: {e}")))?;
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", settings.secret))
        .map_err(|_| RecorderError::Config("the recorder secret is not a valid header".into()))?;
    auth.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, auth);

    let sweeper = settings
        .retention
        .clone()
        .map(|config| tokio::spawn(sweep_daily(config)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sessions: JoinSet<()> = JoinSet::new();
    let mut backoff = BACKOFF_MIN;
    tokio::pin!(shutdown);
    'outer: loop {
        let connected = tokio::select! {
            c = crate::tls::connect(request.clone(), settings.tls.as_ref()) => c,
            () = &mut shutdown => break 'outer,
        };
        let started = Instant::now();
        match connected {
            Ok((mut ws, _)) => {
                info!("control connection up");
                let mut ping = tokio::time::interval(CONTROL_PING);
                ping.reset();
                let mut last_heard = Instant::now();
                loop {
                    tokio::select! {
                        () = &mut shutdown => {
                            let _ = ws.close(None).await;
                            break 'outer;
                        }
                        Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                            if done.is_err() {
                                warn!("a recording session task panicked");
                            }
                        }
                        _ = ping.tick() => {
                            if last_heard.elapsed() > CONTROL_PING * 3 {
                                warn!("control connection silent; reconnecting");
                                break;
                            }
                            if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                                break;
                            }
                        }
                        msg = ws.next() => {
                            last_heard = Instant::now();
                            match msg {
                                Some(Ok(Message::Text(text))) => match serde_json::from_str::<RecorderJob>(&text) {
                                    Ok(job) => spawn_job(&mut sessions, &settings, &signal, job, stop_rx.clone()),
                                    Err(_) => debug!(bytes = text.len(), "unknown control message ignored"),
                                },
                                Some(Ok(Message::Close(_))) | None => {
                                    info!("control connection closed by the server");
                                    break;
                                }
                                Some(Ok(_)) => {}
                                Some(Err(e)) => {
                                    warn!(error = %e, "control connection failed");
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            Err(e) => warn!(
                error = %crate::tls::describe(&e),
                "cannot connect the control connection"
            ),
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff = BACKOFF_MIN;
        }
        info!(
            delay_ms = backoff.as_millis() as u64,
            "reconnecting after a delay"
        );
        let delay = tokio::time::sleep(backoff);
        tokio::pin!(delay);
        loop {
            tokio::select! {
                () = &mut delay => break,
                () = &mut shutdown => break 'outer,
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        backoff = next_backoff(backoff);
    }
    info!(
        sessions = sessions.len(),
        "shutting down: finishing recordings"
    );
    let _ = stop_tx.send(true);
    if let Some(sweeper) = sweeper {
        sweeper.abort();
    }
    while sessions.join_next().await.is_some() {}
    Ok(())
}

fn spawn_job(
    sessions: &mut JoinSet<()>,
    settings: &AgentSettings,
    signal: &str,
    job: RecorderJob,
    stop: watch::Receiver<bool>,
) {
    let RecorderJob::Record { visit, ticket } = job;
    info!(visit = %visit, "recording job received");
    let params = SessionParams {
        signal_url: signal.to_owned(),
        tls: settings.tls.clone(),
        ticket,
        visit: visit.clone(),
        media_ip: settings.media_ip,
        storage_dir: settings.storage_dir.clone(),
        keyring: Arc::clone(&settings.keyring),
        audit: settings.audit.clone(),
    };
    sessions.spawn(async move {
        match run_session(params, stop).await {
            Ok((id, end)) => {
                info!(visit = %visit, recording = %id, end = ?end, "recording session ended")
            }
            Err(e) => warn!(visit = %visit, error = %e, "recording session failed"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_url_replaces_the_recorder_path() {
        assert_eq!(
            signal_url("ws://127.0.0.1:8080/v1/recorder").unwrap(),
            "ws://127.0.0.1:8080/v1/signal"
        );
        assert_eq!(
            signal_url("ws://bedside.internal/prefix/v1/recorder").unwrap(),
            "ws://bedside.internal/prefix/v1/signal"
        );
        assert_eq!(
            signal_url("wss://bedside.hospital:8443/v1/recorder").unwrap(),
            "wss://bedside.hospital:8443/v1/signal"
        );
        assert!(uses_tls("wss://h/v1/recorder") && !uses_tls("ws://h/v1/recorder"));
        for bad in [
            "wss:///v1/recorder",
            "wss://h/v1/signal",
            "http://h/v1/recorder",
            "https://h/v1/recorder",
            "WSS://h/v1/recorder",
            "ws:///v1/recorder",
            "ws://h/v1/signal",
            "ws://h",
            "ws://u:p@h/v1/recorder",
            "ws://h/v1/recorder?x=1",
        ] {
            assert!(signal_url(bad).is_err(), "{bad}");
        }
        assert!(signal_url("https://h/v1/recorder")
            .unwrap_err()
            .to_string()
            .contains("must start with wss:// or ws://"));
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds() {
        let mut d = BACKOFF_MIN;
        let mut seen = vec![d.as_secs()];
        for _ in 0..7 {
            d = next_backoff(d);
            seen.push(d.as_secs());
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
