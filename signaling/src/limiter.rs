//! Rate limits, as token buckets on time given as an argument:
//!
//! - join attempts per client address ([`JoinLimiter`]), so a burst of joins (a script trying
//!   tokens, a reload loop) is refused with `rate_limited` without disturbing anyone else. The
//!   addresses live only in memory and never reach a log;
//! - messages per WebSocket ([`MessageBucket`]), so one socket cannot keep the server busy
//!   answering it (20,000 pings were once answered in 386 ms).

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

/// What to do with one message on a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Handle it.
    Allow,
    /// Refuse it with `rate_limited`; the session goes on.
    Refuse,
    /// The client kept sending after being refused: close the socket (1008).
    Close,
}

/// The messages of one WebSocket: `burst` at once, `per_second` sustained. A refused message
/// costs a token too, so the bucket goes into debt; a client that keeps sending while refused
/// reaches a debt of one burst and is closed, while one that pauses for a moment is served
/// again. Only the socket's own task touches it: no lock.
#[derive(Debug)]
pub(crate) struct MessageBucket {
    per_second: f64,
    burst: f64,
    /// Tokens left; below 0 while in debt, never below `-burst`.
    tokens: f64,
    at: Option<Instant>,
}

impl MessageBucket {
    pub(crate) fn new(per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        MessageBucket {
            per_second,
            burst,
            tokens: burst,
            at: None,
        }
    }

    /// Takes a token for one message received at `now`.
    pub(crate) fn take(&mut self, now: Instant) -> Verdict {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        self.tokens -= 1.0;
        if self.tokens > -self.burst {
            Verdict::Refuse
        } else {
            self.tokens = -self.burst;
            Verdict::Close
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_messages_are_refused_then_the_socket_closes() {
        let mut b = MessageBucket::new(20.0, 50);
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..100).map(|_| b.take(t0)).collect();
        assert!(verdicts[..50].iter().all(|v| *v == Verdict::Allow));
        assert!(verdicts[50..99].iter().all(|v| *v == Verdict::Refuse));
        assert_eq!(verdicts[99], Verdict::Close);
    }

    #[test]
    fn the_sustained_rate_is_served_forever() {
        let mut b = MessageBucket::new(20.0, 50);
        let t0 = Instant::now();
        // Exactly 20 a second for ten minutes, with a full burst at the start.
        for _ in 0..50 {
            assert_eq!(b.take(t0), Verdict::Allow);
        }
        for i in 1..=12_000u64 {
            let at = t0 + Duration::from_millis(50 * i);
            assert_eq!(b.take(at), Verdict::Allow, "message {i}");
        }
    }

    #[test]
    fn a_web_client_burst_fits_and_refills() {
        let mut b = MessageBucket::new(20.0, 50);
        let t0 = Instant::now();
        // join, then offer, 30 trickled candidates, answers to a few server offers, pings.
        for i in 0..40u64 {
            assert_eq!(b.take(t0 + Duration::from_millis(i)), Verdict::Allow);
        }
        // Two seconds later the bucket is full again: another burst of 50 passes.
        let t1 = t0 + Duration::from_secs(3);
        for _ in 0..50 {
            assert_eq!(b.take(t1), Verdict::Allow);
        }
        assert_eq!(b.take(t1), Verdict::Refuse);
    }

    #[test]
    fn a_client_that_pauses_after_being_refused_is_served_again() {
        let mut b = MessageBucket::new(20.0, 50);
        let t0 = Instant::now();
        for _ in 0..70 {
            b.take(t0);
        }
        // 20 refused messages left a debt of 20: a second and a bit pays it back.
        assert_eq!(b.take(t0 + Duration::from_millis(500)), Verdict::Refuse);
        assert_eq!(b.take(t0 + Duration::from_millis(1700)), Verdict::Allow);
    }

    #[test]
    fn a_flood_slightly_over_the_rate_is_closed_in_the_end() {
        let mut b = MessageBucket::new(20.0, 50);
        let t0 = Instant::now();
        // 25 a second: refused ever more often, then closed.
        let mut closed_at = None;
        for i in 0..10_000u64 {
            if b.take(t0 + Duration::from_millis(40 * i)) == Verdict::Close {
                closed_at = Some(i);
                break;
            }
        }
        let i = closed_at.expect("a sustained flood is closed");
        assert!((400..1000).contains(&i), "closed after {i} messages");
    }

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
