//! `bedside` command line: config → telemetry → run; the work is in the library so tests
//! can run it on port 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use std::sync::Arc;

use bedside::config::{Config, LogFormatName, VisitTypeConfig};
use bedside::devstate;
use bedside::{HttpLimits, RoomLimits, Server, Settings, VisitLimits};
use bedside_audit::AuditLog;
use bedside_proto::{Role, VisitType};
use bedside_sfu::{RoutingTable, SfuConfig};
use bedside_telemetry::LogFormat;
use bedside_token::{sign_hs256, Claims, Verifier};
use clap::{Parser, Subcommand};
use rand::Rng;

#[derive(Parser)]
#[command(name = "bedside", version, about = "Bedside telehealth video server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process on loopback, with a generated dev key; prints join links.
    Dev {
        /// Web client and signaling address (loopback only).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Metrics and health address (loopback only).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
        /// Where the dev key lives (default: $BEDSIDE_STATE_DIR or ~/.local/state/bedside).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The visit id used in the printed links.
        #[arg(long, default_value = "dev-visit")]
        visit: String,
    },
    /// Run with a config file.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate configs and print what would listen and be advertised; refuse weak settings.
    Check {
        #[arg(long)]
        config: PathBuf,
        /// bedside-turn's config, to check its peer policy and that its secret is separate.
        #[arg(long)]
        turn_config: Option<PathBuf>,
        /// bedside-recorder's config, to check its key-encryption key.
        #[arg(long)]
        recorder_config: Option<PathBuf>,
    },
    /// The webhook outbox: list what waits or was given up on, put dead letters back.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// What happened in a visit (asks the running server's admin listener).
    Visits {
        #[command(subcommand)]
        command: VisitsCommand,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print a signed join token.
    Token {
        #[arg(long)]
        visit: String,
        #[arg(long)]
        role: String,
        /// Opaque participant id (default: random).
        #[arg(long)]
        sub: Option<String>,
        /// Display name (PHI: shown to other participants, never logged).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "consult")]
        visit_type: String,
        /// Reason for the visit (PHI: shown to clinicians only, never logged).
        #[arg(long)]
        reason: Option<String>,
        /// The web client's language for this person, a BCP 47 tag (`es`, `en-US`).
        #[arg(long)]
        locale: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Sign with the key this config names instead of the dev key.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// List outbox entries (pending and dead letters), in queue order.
    List {
        #[arg(long)]
        config: PathBuf,
        /// Only dead letters.
        #[arg(long)]
        dead: bool,
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        visit: Option<String>,
        /// At most this many entries (up to 10000).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Put dead letters back in their queues (all, or one endpoint's or visit's).
    Retry {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        visit: Option<String>,
    },
}

#[derive(Subcommand)]
enum VisitsCommand {
    /// A visit that runs, or ended within a day: status, times, durations, who took part.
    Show {
        /// The visit id (the token's `visit` claim).
        visit: String,
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check an audit log's hash chain; writes nothing.
    Verify { file: PathBuf },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            config,
            turn_config,
            recorder_config,
        } => {
            let report =
                bedside::check::check(&config, turn_config.as_deref(), recorder_config.as_deref());
            println!("{}:", config.display());
            print!("{}", report.render());
            if !report.ok() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Visits {
            command: VisitsCommand::Show { visit, config },
        } => {
            let config = Config::load(&config, std::env::vars())?;
            print!("{}", bedside::webhooks::admin::cli_show(&config, &visit)?);
            Ok(())
        }
        Command::Webhooks { command } => {
            let text = match command {
                WebhooksCommand::List {
                    config,
                    dead,
                    endpoint,
                    visit,
                    limit,
                } => {
                    let config = Config::load(&config, std::env::vars())?;
                    let sel = bedside::webhooks::admin::Selection {
                        state: dead.then(|| "dead".to_owned()),
                        endpoint,
                        visit,
                        limit: Some(limit),
                    };
                    bedside::webhooks::admin::cli_list(&config, &sel)?
                }
                WebhooksCommand::Retry {
                    config,
                    endpoint,
                    visit,
                } => {
                    let config = Config::load(&config, std::env::vars())?;
                    let sel = bedside::webhooks::admin::Selection {
                        state: Some("dead".into()),
                        endpoint,
                        visit,
                        limit: None,
                    };
                    bedside::webhooks::admin::cli_retry(&config, &sel)?
                }
            };
            print!("{text}");
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { file },
        } => {
            let report = bedside_audit::verify(&file)?;
            println!(
                "{}: {} entries, chain intact, last hash {}",
                file.display(),
                report.entries,
                report.last_hash
            );
            Ok(())
        }
        Command::Dev {
            listen,
            admin_listen,
            state_dir,
            visit,
        } => {
            bedside_telemetry::init(LogFormat::Text);
            runtime()?.block_on(dev(listen, admin_listen, state_dir, visit))
        }
        Command::Serve { config } => {
            let config = Config::load(&config, std::env::vars())?;
            bedside_telemetry::init(match config.log.format {
                LogFormatName::Json => LogFormat::Json,
                LogFormatName::Text => LogFormat::Text,
            });
            runtime()?.block_on(serve(config))
        }
        Command::Token {
            visit,
            role,
            sub,
            name,
            visit_type,
            reason,
            locale,
            ttl,
            config,
            state_dir,
        } => {
            let role: Role = role
                .parse()
                .map_err(|_| anyhow::anyhow!("unknown role {role:?}; one of: provider, chaperone, supervisor, patient, caregiver, interpreter, recorder"))?;
            let visit_type: VisitType = visit_type.parse().map_err(|_| {
                anyhow::anyhow!("unknown visit type {visit_type:?}; one of: consult, group")
            })?;
            let (secret, issuer) = match config {
                Some(path) => {
                    let config = Config::load(&path, std::env::vars())?;
                    let issuer = config
                        .tokens
                        .issuer
                        .clone()
                        .unwrap_or_else(|| devstate::DEV_ISSUER.to_owned());
                    (config.read_token_secret()?, issuer)
                }
                None => (
                    dev_key(state_dir.as_deref())?,
                    devstate::DEV_ISSUER.to_owned(),
                ),
            };
            if locale
                .as_deref()
                .is_some_and(|l| !bedside_token::is_valid_locale(l))
            {
                bail!("--locale must be a language tag such as es or en-US");
            }
            let token = mint(
                &secret, &issuer, &visit, role, visit_type, sub, name, reason, locale, ttl,
            )?;
            println!("{token}");
            Ok(())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn dev_key(state_dir: Option<&std::path::Path>) -> Result<Vec<u8>> {
    let dir = devstate::state_dir(state_dir);
    devstate::load_or_create_dev_key(&dir).with_context(|| format!("dev key in {}", dir.display()))
}

#[allow(clippy::too_many_arguments)]
fn mint(
    secret: &[u8],
    issuer: &str,
    visit: &str,
    role: Role,
    visit_type: VisitType,
    sub: Option<String>,
    name: Option<String>,
    reason: Option<String>,
    locale: Option<String>,
    ttl: u64,
) -> Result<String> {
    if visit.is_empty() || visit.len() > 256 {
        bail!("--visit must be 1 to 256 characters");
    }
    if role == Role::Recorder {
        bail!(
            "the recorder role joins only with a single-use ticket from a recording job; no join \
             token can carry it"
        );
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut rng = rand::thread_rng();
    let claims = Claims {
        iss: issuer.to_owned(),
        sub: sub.unwrap_or_else(|| format!("dev-{:016x}", rng.gen::<u64>())),
        visit: visit.to_owned(),
        visit_type: Some(visit_type.as_str().to_owned()),
        role: role.as_str().to_owned(),
        exp: now + ttl,
        nbf: Some(now.saturating_sub(5)),
        jti: format!("{:032x}", rng.gen::<u128>()),
        name,
        reason,
        locale,
        fhir: None,
    };
    match sign_hs256(secret, &claims) {
        Err(bedside_token::TokenError::TooLarge) => bail!(
            "the token would be longer than the {} bytes the server accepts; shorten --name, \
             --reason, --sub or --visit",
            bedside_token::MAX_TOKEN_BYTES
        ),
        other => Ok(other?),
    }
}

async fn dev(
    listen: SocketAddr,
    admin_listen: SocketAddr,
    state_dir: Option<PathBuf>,
    visit: String,
) -> Result<()> {
    if !listen.ip().is_loopback() || !admin_listen.ip().is_loopback() {
        bail!("bedside dev listens on loopback only; use `bedside serve --config FILE` to serve a network");
    }
    let secret = dev_key(state_dir.as_deref())?;
    let dir = devstate::state_dir(state_dir.as_deref());
    let turn = start_dev_turn(&dir, listen.ip()).await?;
    let audit_path = dir.join("audit.jsonl");
    let audit = AuditLog::open(&audit_path)
        .with_context(|| format!("opening the dev audit log {}", audit_path.display()))?;
    // The same signaling limits a config file gets by default, so dev behaves like serve.
    let signaling = bedside::config::SignalingConfig::default();
    let settings = Settings {
        verifier: Verifier::hs256(&secret, Some(devstate::DEV_ISSUER), 30),
        join_timeout: Duration::from_secs(signaling.join_timeout_seconds),
        sfu: SfuConfig {
            bind: SocketAddr::new(listen.ip(), 0),
            advertise: Vec::new(),
            routing: Arc::new(RoutingTable::default()),
        },
        limits: Settings::default_limits(),
        audit,
        join_rate: (signaling.join_rate_per_second, signaling.join_burst),
        message_rate: (signaling.message_rate_per_second, signaling.message_burst),
        turn: Some(turn.settings),
        tls: None,
        // The listeners' production defaults (bedside-load connects each participant from
        // its own loopback address, as real participants come from their own).
        http: HttpLimits::default(),
        recording: Some(bedside::RecordingSettings {
            consent: bedside::ConsentText {
                version: "dev-1".into(),
                text: bedside::config::RecordingConfig::default().consent_text,
            },
            recorder_secret: devstate::load_or_create_secret(&dir, "dev-recorder-secret")
                .with_context(|| format!("dev recorder secret in {}", dir.display()))?,
        }),
        webhooks: None,
    };
    let http = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let admin = tokio::net::TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("binding {admin_listen}"))?;
    let server = Server::start(settings).context("starting the media engine")?;
    let web = http.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let recorder_config = start_dev_recorder(&dir, web)?;
    let link = |role: Role, name: &str| {
        mint(
            &secret,
            devstate::DEV_ISSUER,
            &visit,
            role,
            VisitType::Consult,
            None,
            Some(name.to_owned()),
            None,
            None,
            12 * 3600,
        )
        .map(|t| format!("http://{web}/join#token={t}"))
    };
    println!("Bedside dev server: loopback only, a generated dev key; not for patient data.");
    println!("  web:      http://{web}/");
    println!("  admin:    http://{admin_addr}/metrics");
    println!("  media:    udp {}", server.media_addr());
    println!("  turn:     udp {}, tcp {}", turn.udp, turn.tcp);
    println!("  audit:    {}", audit_path.display());
    println!(
        "  recorder: in this process; export with `bedside-recorder export --config {} \
         --recording ID --out DIR`",
        recorder_config.display()
    );
    println!("Open each link in its own browser window (valid 12 hours):");
    println!("  provider: {}", link(Role::Provider, "Dr. Dev")?);
    println!("  patient:  {}", link(Role::Patient, "Pat Dev")?);
    println!("More tokens: bedside token --visit {visit} --role caregiver");
    use std::io::Write;
    std::io::stdout().flush()?;
    server.serve(http, admin, shutdown_signal()).await?;
    Ok(())
}

/// The recorder agent embedded in `bedside dev`: encrypted recordings under the state dir with a
/// dev key-encryption key beside the dev key; writes the `recorder.toml` that `bedside-recorder
/// export` reads. Returns that file's path.
fn start_dev_recorder(dir: &std::path::Path, web: SocketAddr) -> Result<PathBuf> {
    devstate::load_or_create_secret(dir, "dev-recording-kek")
        .with_context(|| format!("dev recording key in {}", dir.display()))?;
    let path = dir.join("recorder.toml");
    let q = |p: PathBuf| toml::Value::String(p.display().to_string()).to_string();
    let text = format!(
        "# Written by `bedside dev`: the embedded recorder's settings (dev only).\n\
         storage_dir = {}\nkek_file = {}\nkek_id = \"dev-kek-1\"\naudit_log = {}\n\
         control_url = \"ws://{web}/v1/recorder\"\nsecret_file = {}\nmedia_ip = \"{}\"\n",
        q(dir.join("recordings")),
        q(dir.join("dev-recording-kek")),
        q(dir.join("recorder-audit.jsonl")),
        q(dir.join("dev-recorder-secret")),
        web.ip(),
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    let config = bedside_recorder::Config::load(&path)?;
    let settings = bedside_recorder::AgentSettings::from_config(&config)?;
    tokio::spawn(async move {
        if let Err(e) = bedside_recorder::run_agent(settings).await {
            tracing::error!(error = %e, "dev recorder stopped");
        }
    });
    Ok(path)
}

/// The TURN server embedded in `bedside dev`: loopback UDP and TCP, relaying to loopback
/// peers (the dev SFU), with a dev secret kept beside the dev key.
struct DevTurn {
    settings: bedside::turn::TurnSettings,
    udp: SocketAddr,
    tcp: SocketAddr,
}

async fn start_dev_turn(dir: &std::path::Path, ip: std::net::IpAddr) -> Result<DevTurn> {
    let secret = devstate::load_or_create_secret(dir, "dev-turn-secret")
        .with_context(|| format!("dev TURN secret in {}", dir.display()))?;
    let std::net::IpAddr::V4(ipv4) = ip else {
        bail!("bedside dev's TURN needs an IPv4 loopback address");
    };
    let mut config = bedside_turn::Config {
        listen_udp: vec![SocketAddr::new(ip, 0)],
        listen_tcp: vec![SocketAddr::new(ip, 0)],
        secret_file: Some(dir.join("dev-turn-secret")),
        relay_ipv4: Some(ipv4),
        allow_peer: vec!["127.0.0.0/8".parse().expect("a valid CIDR literal")],
        udp_workers: 1,
        ..bedside_turn::Config::default()
    };
    config.validate()?;
    let listeners = bedside_turn::Listeners::bind(&config)?;
    let udp = listeners.udp[0].local_addr()?;
    let tcp = listeners.tcp[0].local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = bedside_turn::run(config, listeners, std::future::pending()).await {
            tracing::error!(error = %e, "dev TURN server stopped");
        }
    });
    Ok(DevTurn {
        settings: bedside::turn::TurnSettings {
            urls: vec![
                format!("turn:{udp}?transport=udp"),
                format!("turn:{tcp}?transport=tcp"),
            ],
            secret,
            ttl: Duration::from_secs(12 * 3600),
        },
        udp,
        tcp,
    })
}

async fn serve(config: Config) -> Result<()> {
    let verifier = config.token_verifier()?;
    let audit = AuditLog::open(&config.audit.path)
        .with_context(|| format!("opening [audit] path {}", config.audit.path.display()))?;
    let limits = |v: &VisitTypeConfig| RoomLimits {
        max_participants: v.max_participants,
        max_wait: Duration::from_secs(v.max_wait_seconds),
        grace: Duration::from_secs(v.grace_seconds),
        deny_cooldown: Duration::from_secs(v.deny_cooldown_seconds),
    };
    let settings = Settings {
        verifier,
        join_timeout: Duration::from_secs(config.signaling.join_timeout_seconds),
        sfu: SfuConfig {
            bind: config.media.bind,
            advertise: config.media.advertise.clone(),
            routing: Arc::new(config.routing.clone()),
        },
        limits: VisitLimits {
            consult: limits(&config.visits.consult),
            group: limits(&config.visits.group),
        },
        audit,
        join_rate: (
            config.signaling.join_rate_per_second,
            config.signaling.join_burst,
        ),
        message_rate: (
            config.signaling.message_rate_per_second,
            config.signaling.message_burst,
        ),
        turn: config.turn_settings()?,
        recording: config.recording_settings()?,
        tls: match (&config.http.tls_cert, &config.http.tls_key) {
            (Some(cert), Some(key)) => Some(bedside::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        http: config.http.limits(),
        webhooks: bedside::webhooks::WebhookSettings::from_config(
            &config.webhooks,
            &config.state.dir,
        )?,
    };
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding [http] listen {}", config.http.listen))?;
    let admin = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("binding [admin] listen {}", config.admin.listen))?;
    let server = Server::start(settings).context("starting the server")?;
    if let Some(addr) = config.http.redirect_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding [http] redirect_listen {addr}"))?;
        let https_port = config.http.listen.port();
        tokio::spawn(server.serve_redirect(listener, https_port));
    }
    tracing::info!(
        http_port = http.local_addr()?.port(),
        admin_port = admin.local_addr()?.port(),
        media_port = server.media_addr().port(),
        "bedside serving"
    );
    server.serve(http, admin, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
