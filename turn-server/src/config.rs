//! Configuration: defaults → TOML file (`--config`) → `BEDSIDE_TURN_*` environment → flags,
//! then [`Config::validate`]. Never logged as a whole (it names the secret file and addresses).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::core::Limits;
use crate::policy::Cidr;

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid(msg.into()))
}

/// Every key of `turn.toml` (see deploy/config/turn.example.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// UDP listen addresses (TURN/STUN over UDP).
    pub listen_udp: Vec<SocketAddr>,
    /// TCP listen addresses (plain TCP; TLS also detected here when a certificate is set).
    pub listen_tcp: Vec<SocketAddr>,
    /// TLS and plain TCP on one port, told apart by the first byte (443 in production).
    pub listen_tls: Vec<SocketAddr>,
    /// PEM certificate chain for TLS; reloaded on SIGHUP or when the file changes.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    pub tls_key: Option<PathBuf>,
    /// File with the TURN REST shared secret(s), one per line; all are accepted.
    pub secret_file: Option<PathBuf>,
    /// Authentication realm.
    pub realm: String,
    /// Peer CIDRs allowed despite the default deny-list (e.g. the SFU's own media addresses).
    pub allow_peer: Vec<Cidr>,
    /// Prometheus `/metrics` listener; unset = no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Local IPv4 address relay sockets bind to (default: the first specific IPv4 listener).
    pub relay_ipv4: Option<Ipv4Addr>,
    /// Local IPv6 address relay sockets bind to (default: the first specific IPv6 listener;
    /// none = no IPv6 relays, Allocate for IPv6 answered 440).
    pub relay_ipv6: Option<Ipv6Addr>,
    /// IPv4 address advertised to clients when the relay address is behind 1:1 NAT.
    pub external_ipv4: Option<Ipv4Addr>,
    /// IPv6 address advertised to clients instead of `relay_ipv6`.
    pub external_ipv6: Option<Ipv6Addr>,
    /// Relay port range (inclusive).
    pub relay_port_min: u16,
    pub relay_port_max: u16,
    /// Allocations in total; more are answered 486.
    pub max_allocations: usize,
    /// Allocations per REST user id; more are answered 486.
    pub max_allocations_per_user: usize,
    /// Permissions (and channels) per allocation; more are answered 508.
    pub max_permissions_per_allocation: usize,
    /// Relayed bytes per second per allocation and direction; 0 = unlimited.
    pub bandwidth_per_allocation: u64,
    /// Relayed bytes per second for the whole server; 0 = unlimited.
    pub bandwidth_total: u64,
    /// Allocation lifetime when the client asks for none, seconds.
    pub allocation_lifetime_default: u64,
    /// Longest allocation lifetime, seconds (at most 3600).
    pub allocation_lifetime_max: u64,
    /// Permission lifetime, seconds (at most 300).
    pub permission_lifetime: u64,
    /// Channel binding lifetime, seconds (at most 600).
    pub channel_lifetime: u64,
    /// Nonce lifetime, seconds.
    pub nonce_lifetime: u64,
    /// UDP read loops per UDP listen address (SO_REUSEPORT); 0 = one per CPU.
    pub udp_workers: usize,
    /// Open TCP/TLS client connections at most.
    pub max_connections: usize,
    /// Seconds a TCP/TLS connection may stay without an allocation or a complete message.
    pub tcp_idle_timeout: u64,
}

impl Default for Config {
    fn default() -> Self {
        let l = Limits::default();
        Config {
            listen_udp: vec![SocketAddr::from(([0, 0, 0, 0], 3478))],
            listen_tcp: vec![SocketAddr::from(([0, 0, 0, 0], 3478))],
            listen_tls: vec![],
            tls_cert: None,
            tls_key: None,
            secret_file: None,
            realm: "bedside".into(),
            allow_peer: vec![],
            metrics_listen: None,
            relay_ipv4: None,
            relay_ipv6: None,
            external_ipv4: None,
            external_ipv6: None,
            relay_port_min: 49152,
            relay_port_max: 65535,
            max_allocations: l.max_allocations,
            max_allocations_per_user: l.max_allocations_per_user,
            max_permissions_per_allocation: l.max_permissions,
            bandwidth_per_allocation: 0,
            bandwidth_total: 0,
            allocation_lifetime_default: l.allocation_default_lifetime.as_secs(),
            allocation_lifetime_max: l.allocation_max_lifetime.as_secs(),
            permission_lifetime: l.permission_lifetime.as_secs(),
            channel_lifetime: l.channel_lifetime.as_secs(),
            nonce_lifetime: l.nonce_lifetime.as_secs(),
            udp_workers: 0,
            max_connections: 4096,
            tcp_idle_timeout: 30,
        }
    }
}

/// Command line; every flag also reads `BEDSIDE_TURN_<FLAG>` (lists comma-separated).
#[derive(Debug, Parser)]
#[command(name = "bedside-turn", about = "Bedside TURN/STUN relay", version)]
pub struct Args {
    /// TOML configuration file.
    #[arg(long, env = "BEDSIDE_TURN_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "BEDSIDE_TURN_LISTEN_UDP", value_delimiter = ',')]
    pub listen_udp: Vec<SocketAddr>,
    #[arg(long, env = "BEDSIDE_TURN_LISTEN_TCP", value_delimiter = ',')]
    pub listen_tcp: Vec<SocketAddr>,
    #[arg(long, env = "BEDSIDE_TURN_LISTEN_TLS", value_delimiter = ',')]
    pub listen_tls: Vec<SocketAddr>,
    #[arg(long, env = "BEDSIDE_TURN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "BEDSIDE_TURN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    #[arg(long, env = "BEDSIDE_TURN_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    #[arg(long, env = "BEDSIDE_TURN_REALM")]
    pub realm: Option<String>,
    /// Peer CIDR allowed despite the default deny-list (repeatable).
    #[arg(long, env = "BEDSIDE_TURN_ALLOW_PEER", value_delimiter = ',')]
    pub allow_peer: Vec<Cidr>,
    #[arg(long, env = "BEDSIDE_TURN_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[arg(long, env = "BEDSIDE_TURN_RELAY_IPV4")]
    pub relay_ipv4: Option<Ipv4Addr>,
    #[arg(long, env = "BEDSIDE_TURN_RELAY_IPV6")]
    pub relay_ipv6: Option<Ipv6Addr>,
    #[arg(long, env = "BEDSIDE_TURN_EXTERNAL_IPV4")]
    pub external_ipv4: Option<Ipv4Addr>,
    #[arg(long, env = "BEDSIDE_TURN_EXTERNAL_IPV6")]
    pub external_ipv6: Option<Ipv6Addr>,
    #[arg(long, env = "BEDSIDE_TURN_RELAY_PORT_MIN")]
    pub relay_port_min: Option<u16>,
    #[arg(long, env = "BEDSIDE_TURN_RELAY_PORT_MAX")]
    pub relay_port_max: Option<u16>,
    #[arg(long, env = "BEDSIDE_TURN_MAX_ALLOCATIONS")]
    pub max_allocations: Option<usize>,
    #[arg(long, env = "BEDSIDE_TURN_MAX_ALLOCATIONS_PER_USER")]
    pub max_allocations_per_user: Option<usize>,
    #[arg(long, env = "BEDSIDE_TURN_MAX_PERMISSIONS_PER_ALLOCATION")]
    pub max_permissions_per_allocation: Option<usize>,
    #[arg(long, env = "BEDSIDE_TURN_BANDWIDTH_PER_ALLOCATION")]
    pub bandwidth_per_allocation: Option<u64>,
    #[arg(long, env = "BEDSIDE_TURN_BANDWIDTH_TOTAL")]
    pub bandwidth_total: Option<u64>,
    #[arg(long, env = "BEDSIDE_TURN_ALLOCATION_LIFETIME_DEFAULT")]
    pub allocation_lifetime_default: Option<u64>,
    #[arg(long, env = "BEDSIDE_TURN_ALLOCATION_LIFETIME_MAX")]
    pub allocation_lifetime_max: Option<u64>,
    #[arg(long, env = "BEDSIDE_TURN_PERMISSION_LIFETIME")]
    pub permission_lifetime: Option<u64>,
    #[arg(long, env = "BEDSIDE_TURN_CHANNEL_LIFETIME")]
    pub channel_lifetime: Option<u64>,
    #[arg(long, env = "BEDSIDE_TURN_NONCE_LIFETIME")]
    pub nonce_lifetime: Option<u64>,
    #[arg(long, env = "BEDSIDE_TURN_UDP_WORKERS")]
    pub udp_workers: Option<usize>,
    #[arg(long, env = "BEDSIDE_TURN_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    #[arg(long, env = "BEDSIDE_TURN_TCP_IDLE_TIMEOUT")]
    pub tcp_idle_timeout: Option<u64>,
}

impl Config {
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            source: Box::new(e),
        })
    }

    /// Defaults, then the file named by `--config`, then environment and flags.
    pub fn load(args: Args) -> Result<Self, ConfigError> {
        let mut c = match &args.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                Self::from_toml(&text, p)?
            }
            None => Config::default(),
        };
        macro_rules! over {
            (vec $($f:ident),*) => { $( if !args.$f.is_empty() { c.$f = args.$f.clone(); } )* };
            (opt $($f:ident),*) => { $( if args.$f.is_some() { c.$f = args.$f.clone(); } )* };
            (val $($f:ident),*) => { $( if let Some(v) = args.$f.clone() { c.$f = v; } )* };
        }
        over!(vec listen_udp, listen_tcp, listen_tls, allow_peer);
        over!(opt tls_cert, tls_key, secret_file, metrics_listen, relay_ipv4, relay_ipv6, external_ipv4, external_ipv6);
        over!(val realm, relay_port_min, relay_port_max, max_allocations, max_allocations_per_user,
            max_permissions_per_allocation, bandwidth_per_allocation, bandwidth_total,
            allocation_lifetime_default, allocation_lifetime_max, permission_lifetime,
            channel_lifetime, nonce_lifetime, udp_workers, max_connections, tcp_idle_timeout);
        c.validate()?;
        Ok(c)
    }

    /// Check every rule and fill in derived relay addresses.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        if self.listen_udp.is_empty() && self.listen_tcp.is_empty() && self.listen_tls.is_empty() {
            return invalid("no listener: set listen_udp, listen_tcp or listen_tls");
        }
        if self.secret_file.is_none() {
            return invalid("secret_file is required (the TURN REST shared secret, one per line)");
        }
        if self.realm.trim().is_empty() || self.realm.len() > 127 {
            return invalid("realm must be 1 to 127 characters");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return invalid("set both tls_cert and tls_key, or neither");
        }
        if !self.listen_tls.is_empty() && self.tls_cert.is_none() {
            return invalid("listen_tls needs tls_cert and tls_key");
        }
        if self.relay_port_min < 1024 || self.relay_port_min >= self.relay_port_max {
            return invalid("relay_port_min must be >= 1024 and below relay_port_max");
        }
        if self.max_allocations == 0
            || self.max_allocations_per_user == 0
            || self.max_permissions_per_allocation == 0
        {
            return invalid("max_allocations, max_allocations_per_user and max_permissions_per_allocation must be at least 1");
        }
        if !(1..=3600).contains(&self.allocation_lifetime_max) {
            return invalid("allocation_lifetime_max must be 1..=3600 seconds");
        }
        if self.allocation_lifetime_default == 0
            || self.allocation_lifetime_default > self.allocation_lifetime_max
        {
            return invalid(
                "allocation_lifetime_default must be 1..=allocation_lifetime_max seconds",
            );
        }
        if !(1..=300).contains(&self.permission_lifetime) {
            return invalid("permission_lifetime must be 1..=300 seconds");
        }
        if !(1..=600).contains(&self.channel_lifetime) {
            return invalid("channel_lifetime must be 1..=600 seconds");
        }
        if !(30..=86400).contains(&self.nonce_lifetime) {
            return invalid("nonce_lifetime must be 30..=86400 seconds");
        }
        if self.max_connections == 0 || self.tcp_idle_timeout == 0 {
            return invalid("max_connections and tcp_idle_timeout must be at least 1");
        }
        let listeners = || {
            self.listen_udp
                .iter()
                .chain(&self.listen_tcp)
                .chain(&self.listen_tls)
                .map(|a| a.ip())
        };
        if self.relay_ipv4.is_none() {
            self.relay_ipv4 = listeners().find_map(|ip| match ip {
                IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
                _ => None,
            });
        }
        if self.relay_ipv6.is_none() {
            self.relay_ipv6 = listeners().find_map(|ip| match ip {
                IpAddr::V6(v6) if !v6.is_unspecified() => Some(v6),
                _ => None,
            });
        }
        if self.relay_ipv4.is_none() && self.relay_ipv6.is_none() {
            return invalid("set relay_ipv4 (and/or relay_ipv6): listeners on 0.0.0.0/:: do not say which address relays use");
        }
        if self.relay_ipv4.is_some_and(|a| a.is_unspecified())
            || self.relay_ipv6.is_some_and(|a| a.is_unspecified())
        {
            return invalid("relay_ipv4/relay_ipv6 must be a specific address, not 0.0.0.0 or ::");
        }
        Ok(())
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_allocations: self.max_allocations,
            max_allocations_per_user: self.max_allocations_per_user,
            max_permissions: self.max_permissions_per_allocation,
            bandwidth_per_allocation: self.bandwidth_per_allocation,
            allocation_default_lifetime: Duration::from_secs(self.allocation_lifetime_default),
            allocation_max_lifetime: Duration::from_secs(self.allocation_lifetime_max),
            permission_lifetime: Duration::from_secs(self.permission_lifetime),
            channel_lifetime: Duration::from_secs(self.channel_lifetime),
            nonce_lifetime: Duration::from_secs(self.nonce_lifetime),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        let mut c = Config::from_toml(s, Path::new("t.toml"))?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../../deploy/config/turn.example.toml");
        let c = parse(text).expect("example config validates");
        assert_eq!(c.allocation_lifetime_max, 3600);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_clearly() {
        let base = "secret_file = \"/s\"\nrelay_ipv4 = \"192.0.2.1\"\n";
        assert!(parse(base).is_ok());
        let e = parse(&format!("{base}lissten_udp = []\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
        let e = parse(&format!("{base}allocation_lifetime_max = 7200\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("3600"), "{e}");
        let e = parse(&format!("{base}allow_peer = [\"10.0.0.0/99\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("CIDR"), "{e}");
        let e = parse("relay_ipv4 = \"192.0.2.1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("secret_file"), "{e}");
        let e = parse("secret_file = \"/s\"\n").unwrap_err().to_string();
        assert!(e.contains("relay_ipv4"), "{e}");
        let e = parse(&format!("{base}listen_tls = [\"0.0.0.0:443\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls_cert"), "{e}");
    }

    #[test]
    fn relay_address_defaults_to_specific_listener() {
        let c = parse("secret_file = \"/s\"\nlisten_udp = [\"127.0.0.1:3478\", \"[::1]:3478\"]\n")
            .unwrap();
        assert_eq!(c.relay_ipv4, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(c.relay_ipv6, Some(Ipv6Addr::LOCALHOST));
    }
}
