//! The time the gateway's policies read: circuit-breaker cool-downs, the retry budget's
//! window, a deployment sitting out a 429, and the waits between attempts.
//!
//! Policies take the time as a parameter (`now: Instant`) so that their unit tests need no
//! clock at all; the proxy reads it from a [`Clock`], which is the system's in production and
//! a [`ManualClock`] in black-box tests, where a cool-down of a minute passes with one call
//! and a `Retry-After` wait is observed without sleeping.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// A wait that completes after a duration on some clock.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where policy time comes from.
pub trait Clock: Debug + Send + Sync {
    fn now(&self) -> Instant;
    /// The calendar time, for what follows the calendar (a budget's day or month).
    fn wall(&self) -> SystemTime;
    /// Waits `duration` on this clock.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The system's monotonic clock; waits are tokio timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when told to, or when something sleeps on it: a sleep advances
/// the clock by its duration and returns at once, and the total slept is recorded, so a test
/// can check that a wait was honoured without waiting.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<ManualState>,
}

#[derive(Debug)]
struct ManualState {
    now: Instant,
    wall: SystemTime,
    slept: Duration,
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(ManualState {
                now: Instant::now(),
                wall: SystemTime::now(),
                slept: Duration::ZERO,
            }),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        state.now += by;
        state.wall += by;
    }

    /// Sets the calendar time (the monotonic time moves on with it when it is later).
    pub fn set_wall(&self, wall: SystemTime) {
        let mut state = self.lock();
        if let Ok(ahead) = wall.duration_since(state.wall) {
            state.now += ahead;
        }
        state.wall = wall;
    }

    /// The total of every sleep on this clock so far.
    pub fn slept(&self) -> Duration {
        self.lock().slept
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A panic while holding this lock leaves plain data behind; keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.lock().now
    }

    fn wall(&self) -> SystemTime {
        self.lock().wall
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let mut state = self.lock();
        state.now += duration;
        state.wall += duration;
        state.slept += duration;
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_by_its_sleeps_and_advances_only() {
        let clock = ManualClock::new();
        let start = clock.now();
        clock.sleep(Duration::from_secs(3)).await;
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now() - start, Duration::from_secs(5));
        assert_eq!(clock.slept(), Duration::from_secs(3));
    }
}
