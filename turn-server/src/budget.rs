//! A lock-free global bandwidth budget: bytes allowed per 100 ms tick, refilled by the shell.

use std::sync::atomic::{AtomicU64, Ordering};

/// Total relayed bytes per tick, shared by all allocations. `0` = unlimited.
#[derive(Debug)]
pub struct Budget {
    per_tick: u64,
    used: AtomicU64,
}

/// How often [`Budget::refill`] should be called.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(100);

impl Budget {
    pub fn new(bytes_per_sec: u64) -> Self {
        Budget {
            per_tick: bytes_per_sec / 10,
            used: AtomicU64::new(0),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.per_tick > 0
    }

    pub fn try_take(&self, n: usize) -> bool {
        if self.per_tick == 0 {
            return true;
        }
        self.used.fetch_add(n as u64, Ordering::Relaxed) + n as u64 <= self.per_tick
    }

    pub fn refill(&self) {
        self.used.store(0, Ordering::Relaxed);
    }
}
