//! Counts over a sliding window of time, kept in a ring of buckets: the breaker's failure
//! ratio and the retry budget's share both read one. Memory is fixed (`BUCKETS` pairs of
//! counters) whatever the traffic, and time is a parameter.

use std::time::{Duration, Instant};

const BUCKETS: usize = 10;

/// Two counters (say, successes and failures) over the last `window`, at a resolution of a
/// tenth of it.
#[derive(Debug, Clone)]
pub(crate) struct RollingCounts {
    origin: Instant,
    width: Duration,
    /// The bucket number (time since `origin` in widths) each slot last counted for.
    epochs: [u64; BUCKETS],
    counts: [[u64; 2]; BUCKETS],
}

impl RollingCounts {
    pub(crate) fn new(window: Duration, now: Instant) -> Self {
        let width = (window / BUCKETS as u32).max(Duration::from_millis(1));
        Self {
            origin: now,
            width,
            epochs: [0; BUCKETS],
            counts: [[0; 2]; BUCKETS],
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        u64::try_from(since.as_nanos() / self.width.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Adds one to counter `which` (0 or 1) at `now`.
    pub(crate) fn add(&mut self, which: usize, now: Instant) {
        let epoch = self.epoch(now);
        let slot = (epoch % BUCKETS as u64) as usize;
        if self.epochs[slot] != epoch {
            self.epochs[slot] = epoch;
            self.counts[slot] = [0; 2];
        }
        self.counts[slot][which] += 1;
    }

    /// Both counters' totals over the window ending at `now`.
    pub(crate) fn totals(&self, now: Instant) -> [u64; 2] {
        let current = self.epoch(now);
        let oldest = current.saturating_sub(BUCKETS as u64 - 1);
        let mut totals = [0; 2];
        for (epoch, counts) in self.epochs.iter().zip(&self.counts) {
            if (oldest..=current).contains(epoch) {
                totals[0] += counts[0];
                totals[1] += counts[1];
            }
        }
        totals
    }

    pub(crate) fn clear(&mut self) {
        self.counts = [[0; 2]; BUCKETS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_leave_the_window_a_bucket_at_a_time() {
        let t0 = Instant::now();
        let mut w = RollingCounts::new(Duration::from_secs(10), t0);
        w.add(0, t0);
        w.add(1, t0 + Duration::from_millis(500));
        w.add(1, t0 + Duration::from_secs(5));
        assert_eq!(w.totals(t0 + Duration::from_secs(5)), [1, 2]);
        // At 10 s the first bucket (0..1 s) has left the window.
        assert_eq!(w.totals(t0 + Duration::from_secs(10)), [0, 1]);
        assert_eq!(w.totals(t0 + Duration::from_secs(16)), [0, 0]);
        // A slot reused for a later bucket starts from zero.
        w.add(0, t0 + Duration::from_secs(20));
        assert_eq!(w.totals(t0 + Duration::from_secs(20)), [1, 0]);
    }
}
