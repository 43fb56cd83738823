//! Join attempts per client address: a token bucket each, so a burst of joins (a script trying
//! tokens, a reload loop) is refused with `rate_limited` without disturbing anyone else. The
//! addresses live only in memory and never reach a log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

pub(crate) struct JoinLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Buckets kept before idle ones are swept.
const MAX_TRACKED: usize = 10_000;

impl JoinLimiter {
    pub(crate) fn new(per_second: f64, burst: u32) -> Self {
        JoinLimiter {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt from `ip`'s bucket; false if it is empty.
    pub(crate) fn allow(&self, now: Instant, ip: IpAddr) -> bool {
        let mut buckets = self
            .buckets
            .lock()
            .expect("the limiter lock is never poisoned");
        if buckets.len() >= MAX_TRACKED {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.burst, now));
        let refilled = (*tokens
            + now.saturating_duration_since(*at).as_secs_f64() * self.per_second)
            .min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            true
        } else {
            *tokens = refilled;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_is_cut_off_and_refills_over_time() {
        let l = JoinLimiter::new(2.0, 5);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let allowed = (0..20).filter(|_| l.allow(t0, a)).count();
        assert_eq!(allowed, 5);
        assert!(l.allow(t0, b), "another client is unaffected");
        assert!(!l.allow(t0 + Duration::from_millis(100), a));
        assert!(l.allow(t0 + Duration::from_millis(600), a));
        assert!(!l.allow(t0 + Duration::from_millis(600), a));
    }
}
