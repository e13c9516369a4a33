//! The retry budget: retries may be at most a share of requests over a sliding window (plus a
//! small floor, so that a quiet gateway can still retry), as Envoy's and Finagle's are. When a
//! provider fails outright, every request wants retrying; the budget keeps the gateway from
//! multiplying the load on the provider by the attempt limit just when it is least able to
//! take it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::window::RollingCounts;

/// The budget's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetPolicy {
    /// Retries allowed per request in the window (0.2: one retry per five requests).
    pub ratio: f64,
    /// Retries allowed per second whatever the traffic.
    pub min_retries_per_sec: f64,
    pub window: Duration,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_retries_per_sec: 1.0,
            window: Duration::from_secs(10),
        }
    }
}

/// One gateway's retry budget, shared by every worker.
#[derive(Debug)]
pub struct RetryBudget {
    policy: BudgetPolicy,
    /// Requests (0) and retries (1) in the window.
    counts: Mutex<RollingCounts>,
}

impl RetryBudget {
    pub fn new(policy: BudgetPolicy, now: Instant) -> Self {
        Self {
            policy,
            counts: Mutex::new(RollingCounts::new(policy.window, now)),
        }
    }

    pub fn policy(&self) -> &BudgetPolicy {
        &self.policy
    }

    /// A request made its first attempt.
    pub fn deposit(&self, now: Instant) {
        self.lock().add(0, now);
    }

    /// Asks for one retry; `false` when the budget is spent.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        let mut counts = self.lock();
        let [requests, retries] = counts.totals(now);
        let allowed = self.policy.min_retries_per_sec * self.policy.window.as_secs_f64()
            + self.policy.ratio * requests as f64;
        if (retries + 1) as f64 <= allowed {
            counts.add(1, now);
            true
        } else {
            false
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RollingCounts> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_held_to_the_share_of_requests_plus_the_floor() {
        let t0 = Instant::now();
        let budget = RetryBudget::new(
            BudgetPolicy {
                ratio: 0.2,
                min_retries_per_sec: 0.5,
                window: Duration::from_secs(10),
            },
            t0,
        );
        // The floor: 0.5 per second over 10 s, five retries with no traffic at all.
        let granted = (0..20).filter(|_| budget.try_withdraw(t0)).count();
        assert_eq!(granted, 5);
        // 100 requests add 20 more.
        for _ in 0..100 {
            budget.deposit(t0);
        }
        let granted = (0..100).filter(|_| budget.try_withdraw(t0)).count();
        assert_eq!(granted, 20);
        // Once the window has moved on, the budget is back to its floor plus new requests.
        let later = t0 + Duration::from_secs(11);
        budget.deposit(later);
        let granted = (0..20).filter(|_| budget.try_withdraw(later)).count();
        assert_eq!(granted, 5);
    }
}
