//! The upstream side: one count and one duration per attempt, time to first byte, health,
//! and the rate-limit headroom the upstream reports.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use super::{
    DURATION_BUCKETS, FIRST_TOKEN_BUCKETS, Indexed, LabelSets, NAMESPACE, Registrar, label_values,
};
use crate::ModelId;
use crate::upstream::{Outcome, UpstreamId};

/// Which of the upstream's rate limits a remaining count refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitKind {
    Requests,
    Tokens,
}

/// Upstream families.
#[derive(Debug)]
pub struct UpstreamMetrics {
    requests: Indexed<IntCounterVec, 3>,
    duration: Indexed<HistogramVec, 3>,
    first_byte: Indexed<HistogramVec, 2>,
    up: Indexed<IntGaugeVec, 1>,
    ratelimit_remaining: Indexed<IntGaugeVec, 2>,
}

impl UpstreamMetrics {
    pub(crate) fn register(
        reg: &mut Registrar<'_>,
        sets: &LabelSets,
    ) -> Result<Self, prometheus::Error> {
        let outcomes = label_values(Outcome::ALL.map(Outcome::as_str));
        let requests = reg.add(IntCounterVec::new(
            Opts::new(
                "upstream_requests_total",
                "Attempts sent to an upstream, by outcome; retries count once each.",
            )
            .namespace(NAMESPACE),
            &["upstream", "model", "outcome"],
        )?)?;
        let duration = reg.add(HistogramVec::new(
            HistogramOpts::new(
                "upstream_request_duration_seconds",
                "Upstream attempts: sent to the last byte of the answer read.",
            )
            .namespace(NAMESPACE)
            .buckets(DURATION_BUCKETS.to_vec()),
            &["upstream", "model", "outcome"],
        )?)?;
        let first_byte = reg.add(HistogramVec::new(
            HistogramOpts::new(
                "upstream_time_to_first_byte_seconds",
                "Upstream attempts: sent to the response headers received.",
            )
            .namespace(NAMESPACE)
            .buckets(FIRST_TOKEN_BUCKETS.to_vec()),
            &["upstream", "model"],
        )?)?;
        let up = reg.add(IntGaugeVec::new(
            Opts::new(
                "upstream_up",
                "1 when the upstream is reachable, 0 when it is known to be down.",
            )
            .namespace(NAMESPACE),
            &["upstream"],
        )?)?;
        let ratelimit_remaining = reg.add(IntGaugeVec::new(
            Opts::new(
                "upstream_ratelimit_remaining",
                "The upstream's last reported remaining requests or tokens in its window.",
            )
            .namespace(NAMESPACE),
            &["upstream", "kind"],
        )?)?;
        // Each upstream's series is set by its `UpstreamHealth` (up until seen down).
        let up = Indexed::new(up, [sets.upstreams.clone()]);
        Ok(Self {
            requests: Indexed::new(
                requests,
                [
                    sets.upstreams.clone(),
                    sets.models.clone(),
                    outcomes.clone(),
                ],
            ),
            duration: Indexed::new(
                duration,
                [sets.upstreams.clone(), sets.models.clone(), outcomes],
            ),
            first_byte: Indexed::new(first_byte, [sets.upstreams.clone(), sets.models.clone()]),
            up,
            ratelimit_remaining: Indexed::new(
                ratelimit_remaining,
                [sets.upstreams.clone(), label_values(["requests", "tokens"])],
            ),
        })
    }

    /// Counts one finished attempt and its duration.
    pub fn record_attempt(
        &self,
        upstream: UpstreamId,
        model: ModelId,
        outcome: Outcome,
        duration: Duration,
    ) {
        let at = [upstream.index(), model.index(), outcome.index()];
        self.requests.at(at).inc();
        self.duration.at(at).observe(duration.as_secs_f64());
    }

    pub fn observe_first_byte(&self, upstream: UpstreamId, model: ModelId, d: Duration) {
        self.first_byte
            .at([upstream.index(), model.index()])
            .observe(d.as_secs_f64());
    }

    /// The gauge that tracks whether an upstream is up.
    pub fn up_gauge(&self, upstream: UpstreamId) -> IntGauge {
        self.up.at([upstream.index()]).clone()
    }

    pub fn set_ratelimit_remaining(&self, upstream: UpstreamId, kind: RateLimitKind, value: i64) {
        self.ratelimit_remaining
            .at([upstream.index(), kind as usize])
            .set(value);
    }
}
