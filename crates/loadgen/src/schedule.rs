//! The open-loop schedule: when the next request starts. Requests start every `1 / rate`
//! seconds whatever happens to the ones already sent, so a slow gateway sees more requests in
//! flight, not fewer requests per second (a closed loop would hide exactly the slowness the
//! dashboards are meant to show).
//!
//! Missed ticks burst ([`MissedTickBehavior::Burst`]): when the loadgen itself is held up (a
//! busy machine, a paused container), the requests it owes are started at once, so the rate
//! over any longer window is still the asked rate. What a long stall can unleash is bounded by
//! the concurrency limit in [`crate::traffic`]: beyond it requests are skipped, not queued.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The slowest rate accepted: one request a day.
pub const MIN_RATE: f64 = 1.0 / 86_400.0;
/// The fastest rate accepted; the timer cannot space requests much closer than this.
pub const MAX_RATE: f64 = 10_000.0;

/// Why a rate was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateOutOfRange(pub f64);

impl std::fmt::Display for RateOutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the rate must be between {MIN_RATE} and {MAX_RATE} requests per second, got {}",
            self.0
        )
    }
}

impl std::error::Error for RateOutOfRange {}

/// Ticks at a fixed rate, the first one at once.
#[derive(Debug)]
pub struct Schedule {
    period: Duration,
    ticks: Interval,
}

impl Schedule {
    /// A schedule of `rate` requests per second, starting now. Needs a Tokio runtime.
    pub fn start(rate: f64) -> Result<Self, RateOutOfRange> {
        let period = period_for(rate)?;
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        Ok(Self { period, ticks })
    }

    /// The time between two starts.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Waits for the next start; returns when it was due.
    pub async fn next(&mut self) -> Instant {
        self.ticks.tick().await
    }
}

/// The time between two starts at `rate` requests per second.
pub fn period_for(rate: f64) -> Result<Duration, RateOutOfRange> {
    // `contains` is false for NaN as well.
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(RateOutOfRange(rate));
    }
    Ok(Duration::from_secs_f64(1.0 / rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the ticks due before `window` ends, in paused (virtual) time.
    async fn ticks_within(schedule: &mut Schedule, window: Duration) -> u32 {
        let end = Instant::now() + window;
        let mut count = 0;
        loop {
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(end) => return count,
                _ = schedule.next() => count += 1,
            }
        }
    }

    #[test]
    fn the_period_is_the_inverse_of_the_rate() {
        assert_eq!(period_for(40.0).unwrap(), Duration::from_millis(25));
        assert_eq!(period_for(0.5).unwrap(), Duration::from_secs(2));
    }

    #[test]
    fn rates_that_are_not_positive_or_too_fast_are_refused() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 20_000.0] {
            assert!(period_for(rate).is_err(), "{rate}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn forty_per_second_starts_eighty_requests_in_two_seconds() {
        let mut schedule = Schedule::start(40.0).unwrap();
        assert_eq!(
            ticks_within(&mut schedule, Duration::from_secs(2)).await,
            80
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_missed_during_a_stall_are_caught_up_at_once() {
        let mut schedule = Schedule::start(10.0).unwrap();
        let first = schedule.next().await;
        // Stall for half a second without polling the schedule: five ticks fall due.
        tokio::time::advance(Duration::from_millis(500)).await;
        let stalled_at = Instant::now();
        for _ in 0..5 {
            schedule.next().await;
            assert_eq!(
                Instant::now(),
                stalled_at,
                "owed ticks fire without waiting"
            );
        }
        // Then the schedule resumes on its original grid.
        let next = schedule.next().await;
        assert_eq!(next - first, Duration::from_millis(600));
    }
}
