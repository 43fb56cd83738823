//! Configuration and state shared by all shards of the core: limits, quotas, nonce key,
//! metrics and the global bandwidth budget. Touched on Allocate and free, not per packet.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::auth::{NonceKey, Secrets};
use crate::metrics::Metrics;
use crate::policy::PeerPolicy;

/// Client transport, also the `transport` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];
    pub fn label(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// Limits enforced by the core.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_allocations: usize,
    pub max_allocations_per_user: usize,
    pub max_permissions: usize,
    /// Bytes per second per allocation and direction; 0 = unlimited.
    pub bandwidth_per_allocation: u64,
    pub allocation_default_lifetime: Duration,
    pub allocation_max_lifetime: Duration,
    pub permission_lifetime: Duration,
    pub channel_lifetime: Duration,
    pub nonce_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_allocations: 1000,
            max_allocations_per_user: 10,
            max_permissions: 32,
            bandwidth_per_allocation: 0,
            allocation_default_lifetime: Duration::from_secs(600),
            allocation_max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            nonce_lifetime: Duration::from_secs(600),
        }
    }
}

/// Read-only configuration shared by all shards.
#[derive(Debug)]
pub struct CoreConfig {
    pub realm: String,
    pub secrets: Secrets,
    pub policy: PeerPolicy,
    pub relay_v4: bool,
    pub relay_v6: bool,
    pub limits: Limits,
}

/// Allocation counts across all shards (touched only on Allocate and free).
#[derive(Debug, Default)]
pub struct Quotas {
    total: usize,
    per_user: HashMap<String, usize>,
}

/// State shared by all shards: config, quotas, nonce key, metrics, global bandwidth budget.
#[derive(Debug)]
pub struct Shared {
    pub config: CoreConfig,
    pub quotas: Mutex<Quotas>,
    pub nonce_key: NonceKey,
    pub metrics: Metrics,
    pub budget: crate::budget::Budget,
}

impl Shared {
    pub fn new(config: CoreConfig, nonce_key: NonceKey, metrics: Metrics, total_bps: u64) -> Self {
        Shared {
            config,
            quotas: Mutex::new(Quotas::default()),
            nonce_key,
            metrics,
            budget: crate::budget::Budget::new(total_bps),
        }
    }

    pub(crate) fn acquire(&self, user: &str) -> Result<(), &'static str> {
        let mut q = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        let l = &self.config.limits;
        if q.total >= l.max_allocations {
            return Err("total_allocations");
        }
        let n = q.per_user.get(user).copied().unwrap_or(0);
        if n >= l.max_allocations_per_user {
            return Err("user_allocations");
        }
        q.total += 1;
        q.per_user.insert(user.to_owned(), n + 1);
        Ok(())
    }

    pub(crate) fn release(&self, user: &str) {
        let mut q = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        q.total = q.total.saturating_sub(1);
        if let Some(n) = q.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                q.per_user.remove(user);
            }
        }
    }

    /// Allocations alive in all shards.
    pub fn total_allocations(&self) -> usize {
        self.quotas.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}
