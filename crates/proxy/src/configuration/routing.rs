//! The `routing` section: retries, their budget, the request's overall deadline, and the
//! circuit breakers. Each turns into a policy of `mcp_core::resilience`.

use std::time::Duration;

use mcp_core::resilience::{BreakerPolicy, BudgetPolicy, RetryOn, RetryPolicy};
use mcp_core::upstream::Outcome;
use serde::Deserialize;

use super::SettingsError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingSettings {
    /// Upstream attempts per request, fallbacks included.
    pub max_attempts: u32,
    /// Attempts on one model's deployments before its fallbacks are tried.
    pub max_attempts_per_model: u32,
    /// What is retried: statuses (429, 5xx) and `connect_error`, `timeout`, `malformed`,
    /// `stream_interrupted` (an answer that broke before any of it reached the client).
    pub retry_on: Vec<RetryTrigger>,
    /// Full-jitter exponential backoff before another attempt on a deployment already tried.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// The longest `Retry-After` the gateway waits for; past it the next deployment or model
    /// is tried at once.
    pub retry_after_cap_secs: u64,
    /// The whole request, every attempt and wait included.
    pub deadline_secs: u64,
    pub retry_budget: BudgetSettings,
    pub breaker: BreakerSettings,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        let defaults = RetryOn::default();
        let retry_on = defaults
            .statuses
            .iter()
            .map(|s| RetryTrigger::Status(*s))
            .chain(defaults.outcomes.iter().filter_map(|o| {
                FailureKind::ALL
                    .into_iter()
                    .find(|k| k.outcome() == *o)
                    .map(RetryTrigger::Failure)
            }))
            .collect();
        Self {
            max_attempts: retry.max_attempts,
            max_attempts_per_model: retry.max_attempts_per_model,
            retry_on,
            backoff_base_ms: millis(retry.backoff_base),
            backoff_max_ms: millis(retry.backoff_max),
            retry_after_cap_secs: retry.retry_after_cap.as_secs(),
            deadline_secs: 600,
            retry_budget: BudgetSettings::default(),
            breaker: BreakerSettings::default(),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One entry of `retry_on`: a status code or a kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RetryTrigger {
    Status(u16),
    Failure(FailureKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    ConnectError,
    Timeout,
    Malformed,
    StreamInterrupted,
}

impl FailureKind {
    const ALL: [FailureKind; 4] = [
        FailureKind::ConnectError,
        FailureKind::Timeout,
        FailureKind::Malformed,
        FailureKind::StreamInterrupted,
    ];

    fn outcome(self) -> Outcome {
        match self {
            FailureKind::ConnectError => Outcome::ConnectError,
            FailureKind::Timeout => Outcome::Timeout,
            FailureKind::Malformed => Outcome::Malformed,
            FailureKind::StreamInterrupted => Outcome::StreamInterrupted,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetSettings {
    /// Retries allowed per request over the window (0.2: one in five requests may retry).
    pub ratio: f64,
    /// Retries allowed per second whatever the traffic.
    pub min_retries_per_sec: f64,
    pub window_secs: u64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        let p = BudgetPolicy::default();
        Self {
            ratio: p.ratio,
            min_retries_per_sec: p.min_retries_per_sec,
            window_secs: p.window.as_secs(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Consecutive failures that open a deployment's breaker; 0 turns this off.
    pub consecutive_failures: u32,
    /// The failure share over `window_secs` that opens it, once `min_requests` were seen;
    /// 0 turns this off.
    pub failure_ratio: f64,
    pub min_requests: u32,
    pub window_secs: u64,
    /// The first cool-down; each further trip in a row doubles it, up to the maximum.
    pub cooldown_secs: u64,
    pub max_cooldown_secs: u64,
    /// Probe requests let through at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        let p = BreakerPolicy::default();
        Self {
            consecutive_failures: p.consecutive_failures,
            failure_ratio: p.failure_ratio,
            min_requests: p.min_requests,
            window_secs: p.window.as_secs(),
            cooldown_secs: p.cooldown.as_secs(),
            max_cooldown_secs: p.max_cooldown.as_secs(),
            half_open_probes: p.half_open_probes,
        }
    }
}

impl RoutingSettings {
    pub fn retry_policy(&self) -> RetryPolicy {
        let mut retry_on = RetryOn {
            outcomes: Vec::new(),
            statuses: Vec::new(),
        };
        for trigger in &self.retry_on {
            match trigger {
                RetryTrigger::Status(s) => retry_on.statuses.push(*s),
                RetryTrigger::Failure(k) => retry_on.outcomes.push(k.outcome()),
            }
        }
        RetryPolicy {
            max_attempts: self.max_attempts,
            max_attempts_per_model: self.max_attempts_per_model,
            retry_on,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            retry_after_cap: Duration::from_secs(self.retry_after_cap_secs),
        }
    }

    pub fn budget_policy(&self) -> BudgetPolicy {
        BudgetPolicy {
            ratio: self.retry_budget.ratio,
            min_retries_per_sec: self.retry_budget.min_retries_per_sec,
            window: Duration::from_secs(self.retry_budget.window_secs),
        }
    }

    pub fn breaker_policy(&self) -> BreakerPolicy {
        let b = &self.breaker;
        BreakerPolicy {
            consecutive_failures: b.consecutive_failures,
            failure_ratio: b.failure_ratio,
            min_requests: b.min_requests,
            window: Duration::from_secs(b.window_secs),
            cooldown: Duration::from_secs(b.cooldown_secs),
            max_cooldown: Duration::from_secs(b.max_cooldown_secs),
            half_open_probes: b.half_open_probes,
        }
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_secs(self.deadline_secs)
    }

    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let at_least_one = |key: &str, v: u64| {
            if v == 0 {
                Err(SettingsError::invalid(
                    &format!("routing.{key}"),
                    "must be at least 1",
                ))
            } else {
                Ok(())
            }
        };
        at_least_one("max_attempts", self.max_attempts.into())?;
        at_least_one("max_attempts_per_model", self.max_attempts_per_model.into())?;
        at_least_one("deadline_secs", self.deadline_secs)?;
        at_least_one("retry_budget.window_secs", self.retry_budget.window_secs)?;
        at_least_one("breaker.window_secs", self.breaker.window_secs)?;
        at_least_one("breaker.cooldown_secs", self.breaker.cooldown_secs)?;
        at_least_one(
            "breaker.half_open_probes",
            self.breaker.half_open_probes.into(),
        )?;
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err(SettingsError::invalid(
                "routing.backoff_max_ms",
                "must not be below routing.backoff_base_ms",
            ));
        }
        if self.breaker.max_cooldown_secs < self.breaker.cooldown_secs {
            return Err(SettingsError::invalid(
                "routing.breaker.max_cooldown_secs",
                "must not be below routing.breaker.cooldown_secs",
            ));
        }
        let share = |key: &str, v: f64, max: f64| {
            if v.is_finite() && (0.0..=max).contains(&v) {
                Ok(())
            } else {
                Err(SettingsError::invalid(
                    &format!("routing.{key}"),
                    format!("must be between 0 and {max}"),
                ))
            }
        };
        share("retry_budget.ratio", self.retry_budget.ratio, 100.0)?;
        share(
            "retry_budget.min_retries_per_sec",
            self.retry_budget.min_retries_per_sec,
            1e6,
        )?;
        share("breaker.failure_ratio", self.breaker.failure_ratio, 1.0)?;
        for (i, trigger) in self.retry_on.iter().enumerate() {
            if let RetryTrigger::Status(s) = trigger
                && !(*s == 429 || (500..=599).contains(s))
            {
                return Err(SettingsError::invalid(
                    &format!("routing.retry_on[{i}]"),
                    "a status to retry must be 429 or a 5xx: the client's own 4xx would fail again",
                ));
            }
        }
        Ok(())
    }
}
