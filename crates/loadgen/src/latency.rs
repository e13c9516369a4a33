//! Latency percentiles in bounded memory. A run may last for days, so every answer's latency
//! goes into a fixed set of log-scale buckets instead of a list: the memory is the same after
//! ten requests or ten million, and a percentile is off by at most one bucket's width (5%).

use std::time::Duration;

/// Upper bound of the first bucket, in microseconds; anything faster lands in it.
const FIRST_BOUND_MICROS: f64 = 100.0;
/// Each bucket's upper bound is this many times the previous one's: the relative error.
const GROWTH: f64 = 1.05;
/// Enough buckets to reach about 25 minutes (100 µs × 1.05³³⁹); slower answers share the last.
const BUCKETS: usize = 341;

/// A fixed-bucket histogram of latencies, with the exact maximum kept beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS],
    total: u64,
    max: Duration,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            total: 0,
            max: Duration::ZERO,
        }
    }
}

impl LatencyHistogram {
    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        self.counts[bucket_of(latency)] += 1;
        self.total += 1;
        self.max = self.max.max(latency);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The slowest latency recorded, exactly.
    pub fn max(&self) -> Option<Duration> {
        (self.total > 0).then_some(self.max)
    }

    /// The latency that `quantile` (0..=1) of the recorded ones do not exceed, rounded up to
    /// its bucket's bound (never above the maximum); `None` when nothing was recorded.
    pub fn percentile(&self, quantile: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        // The rank of the wanted sample, 1-based: p50 of 10 samples is the 5th.
        let rank = ((quantile.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(upper_bound(bucket).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Forgets everything recorded.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

fn bucket_of(latency: Duration) -> usize {
    let micros = latency.as_secs_f64() * 1e6;
    if micros <= FIRST_BOUND_MICROS {
        return 0;
    }
    let bucket = ((micros / FIRST_BOUND_MICROS).ln() / GROWTH.ln()).ceil();
    // `as` saturates, and the last bucket takes everything slower.
    (bucket as usize).min(BUCKETS - 1)
}

fn upper_bound(bucket: usize) -> Duration {
    if bucket == BUCKETS - 1 {
        return Duration::MAX;
    }
    Duration::from_secs_f64(FIRST_BOUND_MICROS * GROWTH.powi(bucket as i32) / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    fn within_five_percent(actual: Duration, expected: Duration) -> bool {
        let ratio = actual.as_secs_f64() / expected.as_secs_f64();
        (0.999..=1.051).contains(&ratio)
    }

    #[test]
    fn an_empty_histogram_has_no_percentiles() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.percentile(0.5), None);
        assert_eq!(histogram.max(), None);
    }

    #[test]
    fn percentiles_of_a_uniform_spread_are_within_one_bucket() {
        let mut histogram = LatencyHistogram::default();
        for value in 1..=1000 {
            histogram.record(ms(value));
        }
        let p50 = histogram.percentile(0.5).unwrap();
        let p99 = histogram.percentile(0.99).unwrap();
        assert!(within_five_percent(p50, ms(500)), "p50 = {p50:?}");
        assert!(within_five_percent(p99, ms(990)), "p99 = {p99:?}");
        assert_eq!(histogram.percentile(1.0), Some(ms(1000)));
        assert_eq!(histogram.count(), 1000);
    }

    #[test]
    fn a_few_slow_answers_move_p99_but_not_p50() {
        let mut histogram = LatencyHistogram::default();
        for _ in 0..98 {
            histogram.record(ms(10));
        }
        histogram.record(ms(4000));
        histogram.record(ms(5000));
        assert!(within_five_percent(
            histogram.percentile(0.5).unwrap(),
            ms(10)
        ));
        assert!(within_five_percent(
            histogram.percentile(0.99).unwrap(),
            ms(4000)
        ));
    }

    #[test]
    fn a_percentile_never_exceeds_the_slowest_answer() {
        let mut histogram = LatencyHistogram::default();
        histogram.record(Duration::from_micros(1234));
        assert_eq!(histogram.percentile(0.5), Some(Duration::from_micros(1234)));
    }

    #[test]
    fn answers_beyond_the_last_bound_share_the_last_bucket() {
        let mut histogram = LatencyHistogram::default();
        histogram.record(Duration::from_secs(3600));
        histogram.record(Duration::from_secs(7200));
        assert_eq!(bucket_of(Duration::from_secs(3600)), BUCKETS - 1);
        assert_eq!(histogram.percentile(0.5), Some(Duration::from_secs(7200)));
        assert_eq!(bucket_of(Duration::ZERO), 0);
    }

    #[test]
    fn clearing_forgets_every_answer() {
        let mut histogram = LatencyHistogram::default();
        histogram.record(ms(3));
        histogram.clear();
        assert_eq!(histogram, LatencyHistogram::default());
    }
}
