//! A token bucket that can be paid back: tokens per minute are reserved up front (a
//! request's `max_tokens`) and settled when the answer's real usage is known, which may be
//! less (the difference goes back) or more (the bucket goes into debt, and the next requests
//! wait for it to refill). governor, used for requests per minute, has no way to give cells
//! back, hence this small bucket of its own. Time is a parameter.

use std::time::{Duration, Instant};

/// `capacity` tokens, refilled at `capacity` per minute.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    /// May go below zero: usage beyond the reservation is owed.
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub(crate) fn per_minute(capacity: u64, now: Instant) -> Self {
        let capacity = capacity.max(1) as f64;
        Self {
            capacity,
            per_sec: capacity / 60.0,
            tokens: capacity,
            at: now,
        }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity as u64
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.at = self.at.max(now);
    }

    /// Takes `n` tokens (at most the capacity, so that a request larger than the whole
    /// limit waits for a full bucket rather than forever); otherwise how long until they are
    /// there.
    pub(crate) fn take(&mut self, n: u64, now: Instant) -> Result<u64, Duration> {
        self.refill(now);
        let n = (n as f64).min(self.capacity);
        if self.tokens >= n {
            self.tokens -= n;
            Ok(n as u64)
        } else {
            Err(Duration::from_secs_f64((n - self.tokens) / self.per_sec))
        }
    }

    /// Gives back `n` tokens taken by [`TokenBucket::take`] (a refused request's, or the
    /// unused part of a reservation), or takes more when `n` is negative.
    pub(crate) fn adjust(&mut self, n: i64, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + n as f64).min(self.capacity);
    }

    /// Whole tokens available now.
    pub(crate) fn remaining(&mut self, now: Instant) -> u64 {
        self.refill(now);
        self.tokens.max(0.0) as u64
    }

    /// How long until the bucket is full again.
    pub(crate) fn until_full(&mut self, now: Instant) -> Duration {
        self.refill(now);
        Duration::from_secs_f64(((self.capacity - self.tokens) / self.per_sec).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn reservations_are_settled_from_real_usage() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(6_000, t0);
        assert_eq!(b.take(4_000, t0), Ok(4_000));
        assert!(b.take(4_000, t0).is_err(), "only 2,000 left");
        // The answer used 500 of the 4,000 reserved: 3,500 go back.
        b.adjust(4_000 - 500, t0);
        assert_eq!(b.remaining(t0), 5_500);
        assert_eq!(b.take(4_000, t0), Ok(4_000));
    }

    #[test]
    fn usage_beyond_the_reservation_is_owed() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(600, t0);
        b.take(600, t0).unwrap();
        b.adjust(-300, t0);
        assert_eq!(b.remaining(t0), 0);
        // 10 tokens a second: the 300 owed and 10 more take 31 s.
        assert_eq!(b.take(10, t0), Err(31 * S));
        assert_eq!(b.take(10, t0 + 31 * S), Ok(10));
    }

    #[test]
    fn it_refills_to_capacity_and_a_request_larger_than_it_waits_for_a_full_bucket() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(60, t0);
        assert_eq!(b.take(1_000, t0), Ok(60));
        assert_eq!(b.until_full(t0), 60 * S);
        assert_eq!(b.remaining(t0 + 30 * S), 30);
        assert_eq!(b.remaining(t0 + 600 * S), 60);
    }
}
