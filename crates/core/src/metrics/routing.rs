//! Routing and resilience: retries and what stopped them, fallbacks, attempts per request,
//! circuit-breaker state and transitions, and each upstream's in-flight slots and waiting
//! room. Every label value comes from configuration (upstreams, models) or a closed set.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use super::{Indexed, LabelSets, NAMESPACE, Registrar, label_values};
use crate::resilience::{BreakerState, Saturated};
use crate::upstream::{Outcome, UpstreamId};
use crate::{Endpoint, ModelId};

/// Attempts per request: one is the norm, the attempt limit rarely passes ten.
pub const ATTEMPT_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0];
/// Waits for a free slot: from a millisecond to the longest sensible queue timeout.
pub const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The failed attempts a retry can follow; the `reason` label of the retry counter.
pub const RETRY_REASONS: [Outcome; 7] = [
    Outcome::RateLimited,
    Outcome::ServerError,
    Outcome::Overloaded,
    Outcome::Timeout,
    Outcome::ConnectError,
    Outcome::Malformed,
    Outcome::StreamInterrupted,
];

/// Routing families.
#[derive(Debug)]
pub struct RoutingMetrics {
    retries: Indexed<IntCounterVec, 2>,
    budget_exhausted: Indexed<IntCounterVec, 1>,
    fallbacks: Indexed<IntCounterVec, 2>,
    attempts: Indexed<HistogramVec, 1>,
    breaker_state: Indexed<IntGaugeVec, 3>,
    breaker_transitions: Indexed<IntCounterVec, 3>,
    in_flight: Indexed<IntGaugeVec, 1>,
    queue_wait: Indexed<HistogramVec, 1>,
    queue_rejections: Indexed<IntCounterVec, 2>,
}

impl RoutingMetrics {
    pub(crate) fn register(
        reg: &mut Registrar<'_>,
        sets: &LabelSets,
    ) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help).namespace(NAMESPACE), labels)
        };
        let retries = reg.add(counter(
            "upstream_retries_total",
            "Failed upstream attempts followed by another attempt, by the failed attempt's \
             upstream and outcome.",
            &["upstream", "reason"],
        )?)?;
        let budget_exhausted = reg.add(counter(
            "retry_budget_exhausted_total",
            "Retries the retry budget refused, by the failed attempt's upstream; the request \
             got its last error.",
            &["upstream"],
        )?)?;
        let fallbacks = reg.add(counter(
            "fallbacks_total",
            "Requests moved from a model to one of its fallback models.",
            &["from", "to"],
        )?)?;
        let attempts = reg.add(HistogramVec::new(
            HistogramOpts::new(
                "request_attempts",
                "Upstream attempts per routed request, retries and fallbacks included.",
            )
            .namespace(NAMESPACE)
            .buckets(ATTEMPT_BUCKETS.to_vec()),
            &["endpoint"],
        )?)?;
        let breaker_state = reg.add(IntGaugeVec::new(
            Opts::new(
                "circuit_breaker_state",
                "Each deployment's circuit breaker: 1 for its current state, 0 for the others.",
            )
            .namespace(NAMESPACE),
            &["upstream", "model", "state"],
        )?)?;
        let breaker_transitions = reg.add(counter(
            "circuit_breaker_transitions_total",
            "Circuit-breaker state changes, by the state entered.",
            &["upstream", "model", "to"],
        )?)?;
        let in_flight = reg.add(IntGaugeVec::new(
            Opts::new(
                "upstream_in_flight",
                "Attempts in flight to the upstream (streams until they end).",
            )
            .namespace(NAMESPACE),
            &["upstream"],
        )?)?;
        let queue_wait = reg.add(HistogramVec::new(
            HistogramOpts::new(
                "upstream_queue_wait_seconds",
                "Time a request waited for a free slot under the upstream's max_in_flight.",
            )
            .namespace(NAMESPACE)
            .buckets(QUEUE_WAIT_BUCKETS.to_vec()),
            &["upstream"],
        )?)?;
        let queue_rejections = reg.add(counter(
            "upstream_queue_rejections_total",
            "Requests refused a slot because the upstream's waiting room was full or the wait \
             timed out.",
            &["upstream", "reason"],
        )?)?;
        let states = label_values(BreakerState::ALL.map(BreakerState::as_str));
        let ups = &sets.upstreams;
        let models = &sets.models;
        let metrics = Self {
            retries: Indexed::new(
                retries,
                [
                    ups.clone(),
                    label_values(RETRY_REASONS.map(Outcome::as_str)),
                ],
            ),
            budget_exhausted: Indexed::new(budget_exhausted, [ups.clone()]),
            fallbacks: Indexed::new(fallbacks, [models.clone(), models.clone()]),
            attempts: Indexed::new(attempts, [label_values(Endpoint::ALL.map(Endpoint::route))]),
            breaker_state: Indexed::new(
                breaker_state,
                [ups.clone(), models.clone(), states.clone()],
            ),
            breaker_transitions: Indexed::new(
                breaker_transitions,
                [ups.clone(), models.clone(), states],
            ),
            in_flight: Indexed::new(in_flight, [ups.clone()]),
            queue_wait: Indexed::new(queue_wait, [ups.clone()]),
            queue_rejections: Indexed::new(
                queue_rejections,
                [
                    ups.clone(),
                    label_values(Saturated::ALL.map(Saturated::as_str)),
                ],
            ),
        };
        // Series that rate() and alerts read exist from the start, at zero.
        for u in 0..ups.len() {
            // Created at zero; a rebind keeps the value of an upstream still in flight.
            metrics.in_flight.at([u]);
            metrics.budget_exhausted.at([u]);
            for r in 0..RETRY_REASONS.len() {
                metrics.retries.at([u, r]);
            }
            for s in Saturated::ALL {
                metrics.queue_rejections.at([u, s.index()]);
            }
        }
        Ok(metrics)
    }

    /// A deployment exists, its breaker in `state`; its transition series start at zero.
    pub fn add_deployment(&self, upstream: UpstreamId, model: ModelId, state: BreakerState) {
        self.set_breaker_state(upstream, model, state);
        for to in BreakerState::ALL {
            self.breaker_transitions
                .at([upstream.index(), model.index(), to.index()]);
        }
    }

    /// A configured fallback: its series exists at zero.
    pub fn add_fallback(&self, from: ModelId, to: ModelId) {
        self.fallbacks.at([from.index(), to.index()]);
    }

    pub fn breaker_moved(&self, upstream: UpstreamId, model: ModelId, to: BreakerState) {
        self.set_breaker_state(upstream, model, to);
        self.breaker_transitions
            .at([upstream.index(), model.index(), to.index()])
            .inc();
    }

    fn set_breaker_state(&self, upstream: UpstreamId, model: ModelId, current: BreakerState) {
        for state in BreakerState::ALL {
            self.breaker_state
                .at([upstream.index(), model.index(), state.index()])
                .set(i64::from(state == current));
        }
    }

    /// Another attempt follows a failed one on `upstream`.
    pub fn record_retry(&self, upstream: UpstreamId, reason: Outcome) {
        if let Some(r) = RETRY_REASONS.iter().position(|o| *o == reason) {
            self.retries.at([upstream.index(), r]).inc();
        }
    }

    pub fn record_budget_exhausted(&self, upstream: UpstreamId) {
        self.budget_exhausted.at([upstream.index()]).inc();
    }

    pub fn record_fallback(&self, from: ModelId, to: ModelId) {
        self.fallbacks.at([from.index(), to.index()]).inc();
    }

    pub fn observe_attempts(&self, endpoint: Endpoint, attempts: u32) {
        self.attempts
            .at([endpoint.index()])
            .observe(f64::from(attempts));
    }

    /// The gauge of attempts in flight to `upstream`.
    pub fn in_flight_gauge(&self, upstream: UpstreamId) -> IntGauge {
        self.in_flight.at([upstream.index()]).clone()
    }

    pub fn observe_queue_wait(&self, upstream: UpstreamId, wait: Duration) {
        self.queue_wait
            .at([upstream.index()])
            .observe(wait.as_secs_f64());
    }

    pub fn record_queue_rejection(&self, upstream: UpstreamId, why: Saturated) {
        self.queue_rejections
            .at([upstream.index(), why.index()])
            .inc();
    }
}
