//! Per-tenant rate limits: token buckets in events per second and bytes per second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens per second, holding at most `capacity`.
///
/// A request larger than the whole capacity is allowed when the bucket is full (it leaves
/// the bucket in debt), so one big batch can never be refused forever.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn new(rate: f64, capacity: f64, now: Instant) -> Self {
        Bucket {
            rate,
            capacity,
            tokens: capacity,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.updated = now;
    }

    /// `None` if `n` tokens may be taken now, else how long until they may.
    fn wait_for(&self, n: f64) -> Option<Duration> {
        let need = n.min(self.capacity);
        if need <= 0.0 || self.tokens >= need {
            None
        } else {
            Some(Duration::from_secs_f64((need - self.tokens) / self.rate))
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_events_per_second`.
    Events,
    /// `max_bytes_per_second`.
    Bytes,
}

impl Limit {
    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Events => "events",
            Limit::Bytes => "bytes",
        }
    }
}

/// A refusal: which limit, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// The limit that was exceeded.
    pub limit: Limit,
    /// How long until the request would fit.
    pub retry_after: Duration,
}

/// One tenant's two buckets, taken together or not at all.
#[derive(Debug)]
pub struct TenantLimiter {
    buckets: Mutex<(Bucket, Bucket)>,
}

impl TenantLimiter {
    /// Limits of `events_per_second` and `bytes_per_second`, with `burst` worth of each.
    pub fn new(events_per_second: u64, bytes_per_second: u64, burst: Duration) -> Self {
        let now = Instant::now();
        let b = burst.as_secs_f64();
        let (e, by) = (events_per_second as f64, bytes_per_second as f64);
        TenantLimiter {
            buckets: Mutex::new((Bucket::new(e, e * b, now), Bucket::new(by, by * b, now))),
        }
    }

    /// Takes `events` and `bytes` if both fit, else says which limit refused and for how long.
    pub fn try_take(&self, events: u64, bytes: u64) -> Result<(), RateLimited> {
        self.try_take_at(events, bytes, Instant::now())
    }

    fn try_take_at(&self, events: u64, bytes: u64, now: Instant) -> Result<(), RateLimited> {
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (ev, by) = &mut *guard;
        ev.refill(now);
        by.refill(now);
        let (events, bytes) = (events as f64, bytes as f64);
        if let Some(wait) = ev.wait_for(events) {
            return Err(RateLimited {
                limit: Limit::Events,
                retry_after: wait,
            });
        }
        if let Some(wait) = by.wait_for(bytes) {
            return Err(RateLimited {
                limit: Limit::Bytes,
                retry_after: wait,
            });
        }
        ev.tokens -= events;
        by.tokens -= bytes;
        Ok(())
    }
}

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_up_to_capacity_then_refuses_with_a_wait() {
        let l = TenantLimiter::new(100, 1_000_000, Duration::from_secs(2));
        let t0 = Instant::now();
        l.try_take_at(150, 10, t0).unwrap();
        l.try_take_at(50, 10, t0).unwrap();
        let e = l.try_take_at(10, 10, t0).unwrap_err();
        assert_eq!(e.limit, Limit::Events);
        assert!(
            (e.retry_after.as_secs_f64() - 0.1).abs() < 1e-6,
            "{:?}",
            e.retry_after
        );
        // After 100 ms there are 10 tokens again.
        l.try_take_at(10, 10, t0 + Duration::from_millis(100))
            .unwrap();
    }

    #[test]
    fn a_refusal_takes_nothing_from_either_bucket() {
        let l = TenantLimiter::new(1_000, 100, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(
            l.try_take_at(1, 101, t0),
            Ok(()),
            "oversized request allowed when full"
        );
        let e = l.try_take_at(1, 10, t0).unwrap_err();
        assert_eq!(e.limit, Limit::Bytes);
        // The events bucket was not charged by the refused request: 999 remain.
        l.try_take_at(999, 0, t0).unwrap();
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
    }
}
