//! Tokens and their cost, as reported by the upstream's `usage` and normalised into one
//! [`Usage`] record: `prompt` and `completion` are totals (cached and reasoning tokens
//! included), and the details family counts the subsets (cache reads, cache writes,
//! reasoning), so that a sum over `type` of either family counts nothing twice.

use prometheus::{CounterVec, HistogramOpts, HistogramVec, IntCounterVec, Opts};

use super::{Indexed, LabelSets, NAMESPACE, Registrar, TOKEN_BUCKETS, label_values};
use crate::upstream::UpstreamId;
use crate::usage::Usage;
use crate::{Endpoint, ModelId, Pricing};

const PROMPT: usize = 0;
const COMPLETION: usize = 1;

/// The `type` values of the details family, by index.
const DETAIL_TYPES: [&str; 3] = ["cache_read", "cache_write", "reasoning"];
const CACHE_READ: usize = 0;
const CACHE_WRITE: usize = 1;
const REASONING: usize = 2;

/// Token and cost families.
#[derive(Debug)]
pub struct UsageMetrics {
    tokens: Indexed<IntCounterVec, 3>,
    details: Indexed<IntCounterVec, 3>,
    request_tokens: Indexed<HistogramVec, 2>,
    cost: Indexed<CounterVec, 2>,
    missing: Indexed<IntCounterVec, 2>,
}

impl UsageMetrics {
    pub(crate) fn register(
        reg: &mut Registrar<'_>,
        sets: &LabelSets,
    ) -> Result<Self, prometheus::Error> {
        let types = label_values(["prompt", "completion"]);
        let tokens = reg.add(IntCounterVec::new(
            Opts::new(
                "token_usage_total",
                "Tokens reported by the upstream's usage.",
            )
            .namespace(NAMESPACE),
            &["model", "type", "upstream"],
        )?)?;
        let details = reg.add(IntCounterVec::new(
            Opts::new(
                "token_usage_details_total",
                "Subsets of the token totals: input tokens read from (cache_read) or written \
                 to (cache_write) the prompt cache, output tokens spent on reasoning.",
            )
            .namespace(NAMESPACE),
            &["model", "type", "upstream"],
        )?)?;
        let request_tokens = reg.add(HistogramVec::new(
            HistogramOpts::new("request_tokens", "Tokens per request, by token type.")
                .namespace(NAMESPACE)
                .buckets(TOKEN_BUCKETS.to_vec()),
            &["model", "type"],
        )?)?;
        let cost = reg.add(CounterVec::new(
            Opts::new(
                "cost_usd_total",
                "Cost in US dollars of the tokens used, from the configured price table.",
            )
            .namespace(NAMESPACE),
            &["model", "upstream"],
        )?)?;
        let missing = reg.add(IntCounterVec::new(
            Opts::new(
                "usage_missing_total",
                "Successful answers that carried no usage, so their tokens are not counted.",
            )
            .namespace(NAMESPACE),
            &["endpoint", "upstream"],
        )?)?;
        Ok(Self {
            tokens: Indexed::new(
                tokens,
                [sets.models.clone(), types.clone(), sets.upstreams.clone()],
            ),
            details: Indexed::new(
                details,
                [
                    sets.models.clone(),
                    label_values(DETAIL_TYPES),
                    sets.upstreams.clone(),
                ],
            ),
            request_tokens: Indexed::new(request_tokens, [sets.models.clone(), types]),
            cost: Indexed::new(cost, [sets.models.clone(), sets.upstreams.clone()]),
            missing: Indexed::new(
                missing,
                [
                    label_values(Endpoint::ALL.map(Endpoint::route)),
                    sets.upstreams.clone(),
                ],
            ),
        })
    }

    /// Accounts one request's usage. Embeddings report no completion tokens, and nothing is
    /// observed for a token type the upstream did not report.
    pub fn record(
        &self,
        model: ModelId,
        upstream: UpstreamId,
        usage: &Usage,
        pricing: Option<&Pricing>,
    ) {
        let (m, u) = (model.index(), upstream.index());
        for (kind, count) in [(PROMPT, usage.input), (COMPLETION, usage.output)] {
            if let Some(count) = count {
                self.tokens.at([m, kind, u]).inc_by(count);
                self.request_tokens.at([m, kind]).observe(count as f64);
            }
        }
        // Most answers have no cached or reasoning tokens: skip the children then (the
        // series exist from start-up, see `add_deployment`).
        for (kind, count) in [
            (CACHE_READ, usage.cache_read),
            (CACHE_WRITE, usage.cache_write),
            (REASONING, usage.reasoning),
        ] {
            if count > 0 {
                self.details.at([m, kind, u]).inc_by(count);
            }
        }
        if let Some(pricing) = pricing {
            self.cost.at([m, u]).inc_by(pricing.cost_usd(usage));
        }
    }

    /// Creates the detail series of a deployment at zero, so that a cache-hit or reasoning
    /// ratio has data (0) before the first cached or reasoning token.
    pub fn add_deployment(&self, upstream: UpstreamId, model: ModelId) {
        for kind in 0..DETAIL_TYPES.len() {
            self.details.touch([model.index(), kind, upstream.index()]);
        }
    }

    pub fn record_missing(&self, endpoint: Endpoint, upstream: UpstreamId) {
        self.missing.at([endpoint.index(), upstream.index()]).inc();
    }
}
