//! A circuit breaker for one deployment (an upstream serving a model).
//!
//! Closed, it counts attempts: a run of consecutive failures, or a failure ratio over a
//! sliding window once the window holds a minimum number of attempts, opens it. Open, it
//! refuses every attempt for a cool-down that doubles with each trip that follows a failed
//! probe (up to a cap). After the cool-down the next permit half-opens it: a limited number of
//! probe attempts go through; the first probe that succeeds closes it, one that fails opens it
//! again for longer. Which attempts are failures is [`Outcome::trips_breaker`]'s decision: the
//! client's own 4xx never are, and a 429 is not either: it makes the deployment sit out the
//! upstream's `Retry-After` ([`CircuitBreaker::sit_out`]) without changing the state.
//!
//! Time is a parameter. Every state change is returned to the caller, which turns it into the
//! state gauge and the transitions counter.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::window::RollingCounts;
use crate::upstream::Outcome;

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker; 0 turns this trigger off.
    pub consecutive_failures: u32,
    /// The share of failed attempts over `window` that opens it (with `min_requests`);
    /// 0 turns this trigger off.
    pub failure_ratio: f64,
    /// Attempts the window must hold before the ratio is judged.
    pub min_requests: u32,
    pub window: Duration,
    /// The first cool-down; each further trip without a successful probe in between doubles it.
    pub cooldown: Duration,
    pub max_cooldown: Duration,
    /// Probe attempts let through at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            min_requests: 20,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(120),
            half_open_probes: 1,
        }
    }
}

/// A breaker's state; the `state` and `to` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const ALL: [BreakerState; 3] = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// An attempt the breaker let through; hand it back to [`CircuitBreaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a permit must be handed back with the attempt's outcome"]
pub enum Permit {
    /// A normal attempt of a closed breaker.
    Normal,
    /// One of the limited probes of a half-open breaker.
    Probe,
}

/// Why the breaker refused an attempt, and until when it will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Open until the cool-down ends.
    Open { until: Instant },
    /// Half-open with every probe slot taken; a probe's result decides.
    Probing,
    /// Sitting out the upstream's `Retry-After` after a 429.
    SittingOut { until: Instant },
}

impl Refusal {
    /// When an attempt might be let through again, if known.
    pub fn until(self) -> Option<Instant> {
        match self {
            Refusal::Open { until } | Refusal::SittingOut { until } => Some(until),
            Refusal::Probing => None,
        }
    }
}

/// The breaker of one deployment, shared by every worker.
#[derive(Debug)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    /// Successes (0) and failures (1) while closed.
    window: RollingCounts,
    /// Trips since the breaker last closed; sets the cool-down.
    trips: u32,
    open_until: Instant,
    probes_in_flight: u32,
    sit_out_until: Option<Instant>,
}

impl CircuitBreaker {
    pub fn new(policy: BreakerPolicy, now: Instant) -> Self {
        let window = RollingCounts::new(policy.window, now);
        Self {
            policy,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                window,
                trips: 0,
                open_until: now,
                probes_in_flight: 0,
                sit_out_until: None,
            }),
        }
    }

    pub fn policy(&self) -> &BreakerPolicy {
        &self.policy
    }

    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Whether an attempt would be let through now, without taking a probe slot.
    pub fn would_admit(&self, now: Instant) -> bool {
        let inner = self.lock();
        if inner.sit_out_until.is_some_and(|until| now < until) {
            return false;
        }
        match inner.state {
            BreakerState::Closed => true,
            BreakerState::Open => now >= inner.open_until,
            BreakerState::HalfOpen => inner.probes_in_flight < self.policy.half_open_probes,
        }
    }

    /// Until when no attempt will be let through, when that is known: the end of the
    /// cool-down or of a 429's sit-out, whichever is later.
    pub fn blocked_until(&self, now: Instant) -> Option<Instant> {
        let inner = self.lock();
        let open = (inner.state == BreakerState::Open && now < inner.open_until)
            .then_some(inner.open_until);
        let sitting = inner.sit_out_until.filter(|until| now < *until);
        open.max(sitting)
    }

    /// Asks to send an attempt at `now`. The second value is the state the breaker moved to,
    /// if asking moved it (open to half-open once the cool-down is over).
    pub fn permit(&self, now: Instant) -> (Result<Permit, Refusal>, Option<BreakerState>) {
        let mut inner = self.lock();
        if let Some(until) = inner.sit_out_until {
            if now < until {
                return (Err(Refusal::SittingOut { until }), None);
            }
            inner.sit_out_until = None;
        }
        let mut moved = None;
        if inner.state == BreakerState::Open {
            if now < inner.open_until {
                let until = inner.open_until;
                return (Err(Refusal::Open { until }), None);
            }
            inner.state = BreakerState::HalfOpen;
            inner.probes_in_flight = 0;
            moved = Some(BreakerState::HalfOpen);
        }
        match inner.state {
            BreakerState::Closed => (Ok(Permit::Normal), moved),
            BreakerState::HalfOpen if inner.probes_in_flight < self.policy.half_open_probes => {
                inner.probes_in_flight += 1;
                (Ok(Permit::Probe), moved)
            }
            _ => (Err(Refusal::Probing), moved),
        }
    }

    /// Hands back a permit with its attempt's outcome; returns the state the breaker moved
    /// to, if it moved.
    pub fn record(&self, permit: Permit, outcome: Outcome, now: Instant) -> Option<BreakerState> {
        let mut inner = self.lock();
        let failed = outcome.trips_breaker();
        let healed = outcome.heals_breaker();
        match (permit, inner.state) {
            (Permit::Probe, BreakerState::HalfOpen) => {
                inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
                if failed {
                    Some(self.trip(&mut inner, now))
                } else if healed {
                    inner.state = BreakerState::Closed;
                    inner.trips = 0;
                    inner.consecutive_failures = 0;
                    inner.window.clear();
                    Some(BreakerState::Closed)
                } else {
                    None
                }
            }
            (Permit::Normal, BreakerState::Closed) => {
                if failed {
                    inner.consecutive_failures += 1;
                    inner.window.add(1, now);
                    if self.should_trip(&inner, now) {
                        return Some(self.trip(&mut inner, now));
                    }
                } else if healed {
                    inner.consecutive_failures = 0;
                    inner.window.add(0, now);
                }
                None
            }
            // An attempt let through before the state changed: its result is stale.
            _ => None,
        }
    }

    /// A 429: no attempt goes to this deployment before `until`; the state does not change.
    pub fn sit_out(&self, until: Instant) {
        let mut inner = self.lock();
        inner.sit_out_until = Some(inner.sit_out_until.map_or(until, |u| u.max(until)));
    }

    fn should_trip(&self, inner: &Inner, now: Instant) -> bool {
        let p = &self.policy;
        if p.consecutive_failures > 0 && inner.consecutive_failures >= p.consecutive_failures {
            return true;
        }
        let [ok, failed] = inner.window.totals(now);
        let total = ok + failed;
        p.failure_ratio > 0.0 && total > 0 && total >= u64::from(p.min_requests) && {
            failed as f64 / total as f64 >= p.failure_ratio
        }
    }

    fn trip(&self, inner: &mut Inner, now: Instant) -> BreakerState {
        inner.trips = inner.trips.saturating_add(1);
        inner.state = BreakerState::Open;
        inner.open_until = now + self.cooldown(inner.trips);
        inner.consecutive_failures = 0;
        inner.probes_in_flight = 0;
        inner.window.clear();
        BreakerState::Open
    }

    /// The cool-down after the `trips`-th trip in a row: doubling, capped.
    fn cooldown(&self, trips: u32) -> Duration {
        let doublings = trips.saturating_sub(1).min(20);
        self.policy
            .cooldown
            .saturating_mul(1 << doublings)
            .min(self.policy.max_cooldown)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent in a way that
        // matters more than losing the breaker would.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
