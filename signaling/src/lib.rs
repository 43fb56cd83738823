//! `bedside`: the front door. HTTP serves the web client, `/v1/signal` carries WebSocket
//! signaling, visits are tracked here, and the SFU media engine runs inside this process.
//!
//! [`run`] takes already-bound listeners and a shutdown future, so tests bind port 0.

pub mod check;
pub mod config;
pub mod devstate;
mod http;
mod limiter;
mod listener;
mod metrics;
mod recorders;
mod room;
mod session;
pub mod tls;
pub mod turn;
mod visits;
mod web;
pub mod webhooks;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bedside_audit::AuditLog;
use bedside_proto::{IceServer, ParticipantId};
use bedside_sfu::{Sfu, SfuConfig, SfuMetrics};
use bedside_token::Verifier;
use tokio::net::TcpListener;

pub use listener::HttpLimits;
pub use metrics::Metrics;
pub use room::{ConsentText, RoomLimits};
pub use visits::VisitLimits;

/// What a running server is made of; built once at start-up, shared read-only.
pub struct Settings {
    pub verifier: Verifier,
    pub join_timeout: Duration,
    pub sfu: SfuConfig,
    pub limits: VisitLimits,
    pub audit: AuditLog,
    /// Join attempts allowed per second from one client address, and the burst above that.
    pub join_rate: (f64, u32),
    /// Messages allowed per second on one WebSocket, and the burst above that.
    pub message_rate: (f64, u32),
    /// TURN servers and the REST secret for participants' credentials; none: no relay.
    pub turn: Option<turn::TurnSettings>,
    /// HTTPS certificate and key for the public listener; none: plain HTTP (dev, or TLS
    /// terminated in front of bedside).
    pub tls: Option<tls::TlsFiles>,
    /// Deadlines and connection caps of the public listeners.
    pub http: HttpLimits,
    /// Recording (off unless enabled in config): the consent text and the secret recorder
    /// agents authenticate with.
    pub recording: Option<RecordingSettings>,
    /// Webhooks (off unless `[webhooks]` names endpoints): the outbox store and the endpoints.
    pub webhooks: Option<webhooks::WebhookSettings>,
}

/// What recording needs on the signaling side.
#[derive(Clone)]
pub struct RecordingSettings {
    pub consent: ConsentText,
    /// Recorder agents present this as a bearer token on `/v1/recorder`.
    pub recorder_secret: Vec<u8>,
}

impl Settings {
    /// Settings for a server on loopback with a media socket on a free port, the default
    /// routing table and limits, no TURN and no TLS: tests and tools start from this and
    /// change what they need, so a new field does not break them.
    pub fn loopback(verifier: Verifier, audit: AuditLog) -> Settings {
        Settings {
            verifier,
            join_timeout: Duration::from_secs(10),
            sfu: SfuConfig {
                bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                advertise: Vec::new(),
                routing: Arc::new(bedside_sfu::RoutingTable::default()),
            },
            limits: Self::default_limits(),
            audit,
            join_rate: (100.0, 1000),
            message_rate: (
                config::SignalingConfig::DEFAULT_MESSAGE_RATE,
                config::SignalingConfig::DEFAULT_MESSAGE_BURST,
            ),
            turn: None,
            tls: None,
            http: HttpLimits::default(),
            recording: None,
            webhooks: None,
        }
    }

    /// Limits for tests and `bedside dev`.
    pub fn default_limits() -> VisitLimits {
        let limits = |max| RoomLimits {
            max_participants: max,
            max_wait: Duration::from_secs(3600),
            grace: Duration::from_secs(30),
            deny_cooldown: Duration::from_secs(120),
        };
        VisitLimits {
            consult: limits(10),
            group: limits(20),
        }
    }
}

/// Shared state of the request handlers.
pub(crate) struct AppState {
    pub(crate) verifier: Verifier,
    pub(crate) join_timeout: Duration,
    pub(crate) sfu: Sfu,
    pub(crate) visits: visits::Visits,
    pub(crate) visit_context: visits::VisitContext,
    pub(crate) metrics: Metrics,
    pub(crate) audit: AuditLog,
    pub(crate) join_limiter: limiter::JoinLimiter,
    /// Every socket's message bucket: per second, burst.
    pub(crate) message_rate: (f64, u32),
    pub(crate) routing: Arc<bedside_sfu::RoutingTable>,
    pub(crate) turn: Option<turn::TurnSettings>,
    pub(crate) recorders: Option<recorders::Recorders>,
    pub(crate) webhooks: Option<webhooks::Running>,
    next_participant: AtomicU64,
}

/// Appends to the audit log; a failure is logged (codes only) and the request goes on.
pub(crate) fn record_audit(log: &AuditLog, event: bedside_audit::AuditEvent) {
    if let Err(e) = log.append(event) {
        tracing::warn!(error = %e, "audit log append failed");
    }
}

impl AppState {
    pub(crate) fn mint_participant_id(&self) -> ParticipantId {
        ParticipantId::from_raw(self.next_participant.fetch_add(1, Ordering::Relaxed))
    }

    /// The ICE servers a participant is given at join: TURN with fresh REST credentials
    /// whose user part is the participant's opaque session id.
    pub(crate) fn ice_servers(&self, participant: ParticipantId) -> Vec<IceServer> {
        self.turn
            .iter()
            .map(|t| t.ice_server(&participant.to_string()))
            .collect()
    }
}

/// A started server: the media engine is up; [`Server::serve`] runs the listeners.
pub struct Server {
    state: Arc<AppState>,
    tls: Option<(tls::TlsFiles, Arc<rustls::ServerConfig>)>,
    /// Open connections of the public listeners, under `Settings::http`'s caps.
    connections: Arc<listener::Connections>,
}

impl Server {
    /// Starts the media engine and prepares the handlers.
    pub fn start(settings: Settings) -> std::io::Result<Server> {
        let metrics = Metrics::new();
        let sfu_metrics = SfuMetrics::new(&metrics.registry)
            .map_err(|e| std::io::Error::other(format!("metrics registry: {e}")))?;
        let tls = match settings.tls {
            Some(files) => {
                let config = tls::load(&files).map_err(std::io::Error::other)?;
                Some((files, config))
            }
            None => None,
        };
        let routing = settings.sfu.routing.clone();
        let connections = listener::Connections::new(settings.http, &metrics);
        let sfu = Sfu::start(settings.sfu, sfu_metrics)?;
        let recorders = settings.recording.as_ref().map(|r| {
            recorders::Recorders::new(r.recorder_secret.clone(), metrics.recorder_agents.clone())
        });
        let webhooks = settings
            .webhooks
            .map(|w| webhooks::Running::start(w, &metrics))
            .transpose()?;
        let visit_context = visits::VisitContext {
            sfu: sfu.clone(),
            audit: settings.audit.clone(),
            metrics: metrics.clone(),
            limits: settings.limits,
            recorders: recorders.clone(),
            consent: settings.recording.map(|r| r.consent),
            webhooks: webhooks.as_ref().map(|w| w.emitter.clone()),
        };
        Ok(Server {
            state: Arc::new(AppState {
                verifier: settings.verifier,
                join_timeout: settings.join_timeout,
                sfu,
                visits: visits::Visits::default(),
                visit_context,
                metrics,
                audit: settings.audit,
                join_limiter: limiter::JoinLimiter::new(settings.join_rate.0, settings.join_rate.1),
                message_rate: settings.message_rate,
                routing,
                turn: settings.turn,
                recorders,
                webhooks,
                next_participant: AtomicU64::new(1),
            }),
            tls,
            connections,
        })
    }

    /// The media engine's UDP address.
    pub fn media_addr(&self) -> std::net::SocketAddr {
        self.state.sfu.local_addr()
    }

    /// Serves the public and admin listeners until `shutdown` resolves.
    pub async fn serve(
        self,
        http: TcpListener,
        admin: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(w) = &self.state.webhooks {
            w.deliver(stop_rx.clone());
        }
        let admin = axum::serve(admin, http::admin_router(self.state.clone()))
            .with_graceful_shutdown(wait_for(stop_rx.clone()));
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let (transport, watcher) = match self.tls {
            Some((files, config)) => {
                let live = tls::LiveConfig::new(config);
                let watcher = tokio::spawn(tls::watch(files, live.clone()));
                (listener::Transport::Tls(live), Some(watcher))
            }
            None => (listener::Transport::Plain, None),
        };
        let https = matches!(transport, listener::Transport::Tls(_));
        let public = listener::serve(
            http,
            http::public_router(self.state.clone(), https),
            transport,
            self.connections.clone(),
            wait_for(stop_rx),
        );
        let ((), admin) = tokio::join!(public, admin);
        if let Some(w) = watcher {
            w.abort();
        }
        if let Some(w) = &self.state.webhooks {
            // Events the visits emitted until now reach the store before the process exits.
            let _ = tokio::time::timeout(Duration::from_secs(5), w.emitter.flush()).await;
        }
        admin
    }

    /// Serves a plain-HTTP listener that redirects every request to HTTPS on `https_port`,
    /// under the same deadlines and caps as the public listener (whose count it shares).
    pub fn serve_redirect(
        &self,
        listener: TcpListener,
        https_port: u16,
    ) -> impl Future<Output = ()> + Send + 'static {
        listener::serve(
            listener,
            http::redirect_router(https_port),
            listener::Transport::Plain,
            self.connections.clone(),
            std::future::pending(),
        )
    }
}

async fn wait_for(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
