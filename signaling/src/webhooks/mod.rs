//! Webhooks: signed events about each visit, delivered at least once, in per-visit order, to the
//! hospital's systems (docs/integration.md).
//!
//! - [`config`]: `[webhooks]` and `[state]`.
//! - `events`: a visit's room outputs → events (sans-IO, in the visit task).
//! - `writer`: a bounded hand-off from the visit tasks to one thread that appends to the
//!   durable outbox ([`bedside_store`]) in batches.
//! - `deliver`: the tokio task that sends due events, retries with backoff, dead-letters.
//! - `fhir`: a visit as a FHIR R4 Encounter (the `visit.encounter` event, the admin listener).
//! - `client`: the HTTP/1.1 client (hyper, tokio-rustls).
//! - `admin`: the admin listener's `/webhooks` routes and the `bedside webhooks` command.

pub mod admin;
mod client;
pub mod config;
mod deliver;
pub(crate) mod events;
pub(crate) mod fhir;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bedside_store::{EmbeddedStore, Outbox};
use tokio::sync::{watch, Notify};

use crate::config::{read_secret_file, ConfigError};
use crate::Metrics;
pub(crate) use events::VisitEvents;
pub(crate) use writer::Emitter;

/// One receiver, ready to use.
pub struct Endpoint {
    pub name: String,
    pub(crate) url: config::Url,
    pub(crate) secret: Vec<u8>,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

/// What `bedside serve` passes to the server when webhooks are on.
pub struct WebhookSettings {
    pub store: Arc<EmbeddedStore>,
    pub endpoints: Vec<Endpoint>,
    pub config: config::WebhooksConfig,
}

impl WebhookSettings {
    /// Reads the endpoints' secrets and CA files and opens the store in `state_dir`; `None`
    /// when no endpoint is configured.
    pub fn from_config(
        c: &config::WebhooksConfig,
        state_dir: &Path,
    ) -> Result<Option<WebhookSettings>, ConfigError> {
        if !c.enabled() {
            return Ok(None);
        }
        let mut endpoints = Vec::new();
        for e in &c.endpoints {
            let url = config::parse_url(&e.url).map_err(|why| {
                ConfigError::Invalid(format!("[[webhooks.endpoints]] {}: url {why}", e.name))
            })?;
            let tls = if url.https {
                Some(client::tls_config(e.ca_file.as_deref()).map_err(|m| {
                    ConfigError::Invalid(format!("[[webhooks.endpoints]] {}: {m}", e.name))
                })?)
            } else {
                None
            };
            endpoints.push(Endpoint {
                name: e.name.clone(),
                url,
                secret: read_secret_file(&e.secret_file)?,
                tls,
            });
        }
        let store = EmbeddedStore::open_in(state_dir, c.limits())
            .map_err(|e| ConfigError::Invalid(format!("[state] dir: {e}")))?;
        Ok(Some(WebhookSettings {
            store: Arc::new(store),
            endpoints,
            config: c.clone(),
        }))
    }
}

/// The running webhooks: the visit tasks' emitter, and the deliverer waiting for
/// [`Running::deliver`].
pub(crate) struct Running {
    pub(crate) emitter: Emitter,
    pub(crate) store: Arc<EmbeddedStore>,
    pub(crate) wake: Arc<Notify>,
    deliverer: std::sync::Mutex<Option<deliver::Deliverer>>,
}

impl Running {
    pub(crate) fn start(settings: WebhookSettings, metrics: &Metrics) -> std::io::Result<Running> {
        let wake = Arc::new(Notify::new());
        let store: Arc<dyn Outbox> = settings.store.clone();
        let names: Vec<String> = settings.endpoints.iter().map(|e| e.name.clone()).collect();
        let emitter = writer::start(store.clone(), names, wake.clone(), metrics.clone())?;
        let c = &settings.config;
        let deliverer = deliver::Deliverer {
            store,
            endpoints: settings
                .endpoints
                .into_iter()
                .map(|e| (e.name.clone(), Arc::new(e)))
                .collect::<HashMap<_, _>>(),
            policy: c.policy(),
            timeouts: client::Timeouts {
                connect: Duration::from_secs(c.connect_timeout_seconds),
                overall: Duration::from_secs(c.timeout_seconds),
            },
            max_in_flight: c.max_in_flight,
            wake: wake.clone(),
            metrics: metrics.clone(),
        };
        Ok(Running {
            emitter,
            store: settings.store,
            wake,
            deliverer: std::sync::Mutex::new(Some(deliverer)),
        })
    }

    /// Spawns the deliverer (once) until `stop`.
    pub(crate) fn deliver(&self, stop: watch::Receiver<bool>) {
        let d = self
            .deliverer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(d) = d {
            tokio::spawn(d.run(stop));
        }
    }
}

/// Wall-clock unix milliseconds: the one place the webhooks read the clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
