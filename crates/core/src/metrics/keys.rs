//! Client keys: requests refused by a limit, and each key's requests, tokens, cost and
//! budget. The `key` label takes the configured names (plus `_global` for the gateway-wide
//! limits), or `_all` for every key when the operator turns per-key series off.

use prometheus::{
    CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
};

use super::{Indexed, LabelSets, NAMESPACE, Registrar, label_values};
use crate::limits::LimitKind;

/// Status classes of the `class` label.
const CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];

/// Per-key families; every `key` index comes from [`LabelSets::keys`].
#[derive(Debug)]
pub struct KeyMetrics {
    rate_limited: Indexed<IntCounterVec, 2>,
    requests: Indexed<IntCounterVec, 2>,
    tokens: Indexed<IntCounterVec, 2>,
    cost: Indexed<CounterVec, 1>,
    budget: Indexed<GaugeVec, 1>,
    budget_remaining: Indexed<GaugeVec, 1>,
}

impl KeyMetrics {
    pub(crate) fn register(
        reg: &mut Registrar<'_>,
        sets: &LabelSets,
    ) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help).namespace(NAMESPACE), labels)
        };
        let gauge = |name: &str, help: &str| {
            GaugeVec::new(Opts::new(name, help).namespace(NAMESPACE), &["key"])
        };
        let rate_limited = reg.add(counter(
            "rate_limited_total",
            "Requests refused by a limit: a key's (by name) or the gateway's (_global).",
            &["limit", "key"],
        )?)?;
        let requests = reg.add(counter(
            "key_requests_total",
            "Requests made with each client key, by the status class the client got.",
            &["key", "class"],
        )?)?;
        let tokens = reg.add(counter(
            "key_tokens_total",
            "Tokens used by each client key.",
            &["key", "type"],
        )?)?;
        let cost = reg.add(CounterVec::new(
            Opts::new(
                "key_cost_usd_total",
                "Cost in US dollars of each client key's usage, from the price table.",
            )
            .namespace(NAMESPACE),
            &["key"],
        )?)?;
        let budget = reg.add(gauge(
            "key_budget_usd",
            "A client key's budget for its period (day or month, UTC), in US dollars.",
        )?)?;
        let budget_remaining = reg.add(gauge(
            "key_budget_remaining_usd",
            "What is left of a client key's budget in its current period; 0 once spent.",
        )?)?;
        let keys = &sets.keys;
        let metrics = Self {
            rate_limited: Indexed::new(
                rate_limited,
                [
                    label_values(LimitKind::ALL.map(LimitKind::as_str)),
                    keys.clone(),
                ],
            ),
            requests: Indexed::new(requests, [keys.clone(), label_values(CLASSES)]),
            tokens: Indexed::new(
                tokens,
                [keys.clone(), label_values(["prompt", "completion"])],
            ),
            cost: Indexed::new(cost, [keys.clone()]),
            budget: Indexed::new(budget, [keys.clone()]),
            budget_remaining: Indexed::new(budget_remaining, [keys.clone()]),
        };
        // Every configured key's series exist from the start, at zero, for rate() and alerts;
        // `_global` (last) only where the gateway's own limits count.
        for k in 0..keys.len() {
            for limit in LimitKind::ALL {
                metrics.rate_limited.at([limit.index(), k]);
            }
            if k + 1 == keys.len() {
                break;
            }
            for class in 0..CLASSES.len() {
                metrics.requests.at([k, class]);
            }
            metrics.tokens.at([k, 0]);
            metrics.tokens.at([k, 1]);
            metrics.cost.at([k]);
        }
        Ok(metrics)
    }

    pub fn record_rate_limited(&self, limit: LimitKind, key: usize) {
        self.rate_limited.at([limit.index(), key]).inc();
    }

    /// One request made with `key`, answered with `status`, that used these tokens and cost.
    pub fn record_request(&self, key: usize, status: u16, prompt: u64, completion: u64, cost: f64) {
        let class = match status {
            0..=399 => 0,
            400..=499 => 1,
            _ => 2,
        };
        self.requests.at([key, class]).inc();
        if prompt > 0 {
            self.tokens.at([key, 0]).inc_by(prompt);
        }
        if completion > 0 {
            self.tokens.at([key, 1]).inc_by(completion);
        }
        if cost > 0.0 {
            self.cost.at([key]).inc_by(cost);
        }
    }

    pub fn set_budget(&self, key: usize, budget_usd: f64, remaining_usd: f64) {
        self.budget.at([key]).set(budget_usd);
        self.budget_remaining.at([key]).set(remaining_usd);
    }

    pub fn set_budget_remaining(&self, key: usize, remaining_usd: f64) {
        self.budget_remaining.at([key]).set(remaining_usd);
    }
}

/// The operations on the shared state store; the `op` label.
const STATE_OPS: [&str; 3] = ["admit", "settle", "budget"];

/// Time spent on the shared state store: a fraction of a millisecond on a local network.
pub const STATE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
];

/// The shared state store (Redis) as the gateway sees it.
#[derive(Debug)]
pub struct StateMetrics {
    errors: Indexed<IntCounterVec, 1>,
    duration: Indexed<HistogramVec, 1>,
    /// No labels, but a vector so that it has no series until a store is asked: absent with
    /// the in-process state, rather than a 0 that reads as an outage.
    up: IntGaugeVec,
}

impl StateMetrics {
    pub(crate) fn register(reg: &mut Registrar<'_>) -> Result<Self, prometheus::Error> {
        let errors = reg.add(IntCounterVec::new(
            Opts::new(
                "state_backend_errors_total",
                "Operations on the shared state store that failed or timed out, by operation; \
                 the request was then decided by the configured policy.",
            )
            .namespace(NAMESPACE),
            &["op"],
        )?)?;
        let duration = reg.add(HistogramVec::new(
            HistogramOpts::new(
                "state_backend_duration_seconds",
                "Time of each operation on the shared state store, a round trip each.",
            )
            .namespace(NAMESPACE)
            .buckets(STATE_BUCKETS.to_vec()),
            &["op"],
        )?)?;
        let up = reg.add(IntGaugeVec::new(
            Opts::new(
                "state_backend_up",
                "1 while the shared state store answers, 0 once it has failed to; absent \
                 with the in-process state.",
            )
            .namespace(NAMESPACE),
            &[],
        )?)?;
        let ops = label_values(STATE_OPS);
        let metrics = Self {
            errors: Indexed::new(errors, [ops.clone()]),
            duration: Indexed::new(duration, [ops]),
            up,
        };
        for op in 0..STATE_OPS.len() {
            metrics.errors.at([op]);
        }
        Ok(metrics)
    }

    fn index(op: &str) -> usize {
        STATE_OPS.iter().position(|o| *o == op).unwrap_or(0)
    }

    pub fn record_error(&self, op: &str) {
        self.errors.at([Self::index(op)]).inc();
    }

    pub fn observe(&self, op: &str, took: std::time::Duration) {
        self.duration
            .at([Self::index(op)])
            .observe(took.as_secs_f64());
    }

    pub fn set_up(&self, up: bool) {
        self.up.with_label_values(&[] as &[&str]).set(i64::from(up));
    }
}
