//! The tokio shell around the sans-IO core: binds sockets, runs read loops, owns nothing else.

pub(crate) mod http;
pub mod relay;
pub(crate) mod tcp;
pub mod tls;
pub(crate) mod udp;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Semaphore};

use crate::auth::{NonceKey, Secrets};
use crate::config::Config;
use crate::core::{CoreConfig, Shared};
use crate::metrics::Metrics;
use crate::policy::PeerPolicy;
use relay::RelayPorts;
use tls::TlsState;

/// What every task needs.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) ports: RelayPorts,
    pub(crate) tls: Option<TlsState>,
    pub(crate) epoch: (Instant, u64),
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) idle_timeout_secs: u64,
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read secret file {0}: {1}")]
    Secret(std::path::PathBuf, String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("socket setup failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Bound sockets. Tests bind port 0 with [`Listeners::bind`] and read the ports back.
#[derive(Debug)]
pub struct Listeners {
    /// One entry per UDP read loop (several per address, SO_REUSEPORT).
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: Vec<std::net::TcpListener>,
    pub tls: Vec<std::net::TcpListener>,
    pub metrics: Option<std::net::TcpListener>,
}

fn bind_udp(addr: SocketAddr, n: usize) -> Result<Vec<std::net::UdpSocket>, StartError> {
    let mut out = Vec::new();
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let err = |source| StartError::Bind { addr, source };
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .map_err(err)?;
        if addr.is_ipv6() {
            s.set_only_v6(true).map_err(err)?;
        }
        s.set_reuse_port(true).map_err(err)?;
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.bind(&addr.into()).map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        let s: std::net::UdpSocket = s.into();
        // Later shards join the same port even when the first was bound to port 0.
        addr = s.local_addr().map_err(err)?;
        out.push(s);
    }
    Ok(out)
}

impl Listeners {
    /// Bind every listener the configuration names.
    pub fn bind(config: &Config) -> Result<Self, StartError> {
        let workers = if config.udp_workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.udp_workers
        };
        let mut udp = Vec::new();
        for a in &config.listen_udp {
            udp.extend(bind_udp(*a, workers)?);
        }
        let tcp_bind =
            |a: &SocketAddr| tcp::bind(*a).map_err(|source| StartError::Bind { addr: *a, source });
        let tcp = config
            .listen_tcp
            .iter()
            .map(tcp_bind)
            .collect::<Result<_, _>>()?;
        let tls = config
            .listen_tls
            .iter()
            .map(tcp_bind)
            .collect::<Result<_, _>>()?;
        let metrics = config.metrics_listen.as_ref().map(tcp_bind).transpose()?;
        Ok(Listeners {
            udp,
            tcp,
            tls,
            metrics,
        })
    }
}

/// Build the shared state from a validated config (reads the secret file and certificate).
fn context(config: &Config) -> Result<Ctx, StartError> {
    let secret_path = config.secret_file.clone().unwrap_or_default();
    let text = std::fs::read_to_string(&secret_path)
        .map_err(|e| StartError::Secret(secret_path.clone(), e.to_string()))?;
    let secrets = Secrets::from_file_text(&text)
        .ok_or_else(|| StartError::Secret(secret_path.clone(), "no secret in file".into()))?;
    let core = CoreConfig {
        realm: config.realm.clone(),
        secrets,
        policy: PeerPolicy::new(config.allow_peer.clone()),
        relay_v4: config.relay_ipv4.is_some(),
        relay_v6: config.relay_ipv6.is_some(),
        limits: config.limits(),
    };
    let shared = Arc::new(Shared::new(
        core,
        NonceKey::new(rand::random()),
        Metrics::new(),
        config.bandwidth_total,
    ));
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(TlsState::new(c.clone(), k.clone())?),
        _ => None,
    };
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Ctx {
        shared,
        ports: RelayPorts::new(
            config.relay_ipv4.map(IpAddr::V4),
            config.relay_ipv6.map(IpAddr::V6),
            config.external_ipv4.map(IpAddr::V4),
            config.external_ipv6.map(IpAddr::V6),
            config.relay_port_min,
            config.relay_port_max,
        ),
        tls,
        epoch: (Instant::now(), unix),
        connections: Arc::new(Semaphore::new(config.max_connections)),
        idle_timeout_secs: config.tcp_idle_timeout,
    })
}

/// Run the server on already bound `listeners` until `shutdown` completes.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let ctx = Arc::new(context(&config)?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for s in listeners.udp {
        tasks.spawn(udp::run_shard(s, ctx.clone(), stop_rx.clone()));
    }
    for (list, tls) in [(listeners.tcp, ctx.tls.is_some()), (listeners.tls, true)] {
        for l in list {
            let l = tokio::net::TcpListener::from_std(l)?;
            tasks.spawn(tcp::accept_loop(l, tls, ctx.clone(), stop_rx.clone()));
        }
    }
    if let Some(m) = listeners.metrics {
        let m = tokio::net::TcpListener::from_std(m)?;
        tasks.spawn(http::serve_metrics(m, ctx.clone(), stop_rx.clone()));
    }
    tasks.spawn(housekeeping(ctx.clone(), stop_rx.clone()));
    tracing::info!("bedside-turn serving");
    shutdown.await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Global bandwidth refill, certificate reload on SIGHUP and on file change.
async fn housekeeping(ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>) {
    let mut refill = tokio::time::interval(crate::budget::TICK);
    let mut poll = tokio::time::interval(std::time::Duration::from_secs(5));
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        tokio::select! {
            _ = refill.tick(), if ctx.shared.budget.is_limited() => ctx.shared.budget.refill(),
            _ = poll.tick() => {
                if let Some(t) = &ctx.tls {
                    t.reload(true, &ctx.shared.metrics);
                }
            }
            Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                if let Some(t) = &ctx.tls {
                    t.reload(false, &ctx.shared.metrics);
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}
