//! What the client sees of the gateway: requests in flight, errors answered, the gateway's
//! own overhead, time to first token, the rhythm of streamed tokens, and clients that leave.

use std::time::Duration;

use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};

use super::{
    FIRST_TOKEN_BUCKETS, INTER_TOKEN_BUCKETS, Indexed, LabelSets, NAMESPACE, OVERHEAD_BUCKETS,
    Registrar, label_values,
};
use crate::{Endpoint, ErrorType, ModelId};

/// When a client went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectPhase {
    /// Before any generated content reached it (for non-streamed requests: before the answer).
    BeforeFirstToken,
    MidStream,
}

impl DisconnectPhase {
    const LABELS: [&'static str; 2] = ["before_first_token", "mid_stream"];
}

/// Client-side families.
#[derive(Debug)]
pub struct GatewayMetrics {
    /// Proxied requests in flight, from request received to last byte sent or disconnect.
    pub active_connections: IntGauge,
    errors: IntCounterVec,
    overhead: Indexed<HistogramVec, 2>,
    disconnects: Indexed<IntCounterVec, 2>,
    time_to_first_token: Indexed<HistogramVec, 2>,
    inter_token_latency: Indexed<HistogramVec, 1>,
    config_reloads: Indexed<IntCounterVec, 1>,
    config_last_reload_success: Gauge,
}

/// How a configuration reload ended; the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Success,
    Failure,
}

impl ReloadResult {
    const LABELS: [&'static str; 2] = ["success", "failure"];
}

impl GatewayMetrics {
    pub(crate) fn register(
        reg: &mut Registrar<'_>,
        sets: &LabelSets,
    ) -> Result<Self, prometheus::Error> {
        let endpoints = label_values(Endpoint::ALL.map(Endpoint::route));
        let active_connections = reg.add(IntGauge::with_opts(
            Opts::new(
                "active_connections",
                "Proxied requests in flight: received and not yet answered to the last byte.",
            )
            .namespace(NAMESPACE),
        )?)?;
        let errors = reg.add(IntCounterVec::new(
            Opts::new(
                "errors_total",
                "Errors answered to clients, by the closed error classification.",
            )
            .namespace(NAMESPACE),
            &["error_type", "endpoint"],
        )?)?;
        let overhead = reg.add(HistogramVec::new(
            HistogramOpts::new(
                "overhead_seconds",
                "Time spent in the gateway itself per proxied request: total time minus \
                     time waiting on the upstream (for streams, minus the waits between chunks).",
            )
            .namespace(NAMESPACE)
            .buckets(OVERHEAD_BUCKETS.to_vec()),
            &["endpoint", "stream"],
        )?)?;
        let disconnects = reg.add(IntCounterVec::new(
            Opts::new(
                "client_disconnects_total",
                "Clients that went away before their response was complete.",
            )
            .namespace(NAMESPACE),
            &["endpoint", "phase"],
        )?)?;
        let ttft = reg.add(HistogramVec::new(
            HistogramOpts::new(
                "time_to_first_token_seconds",
                "Streamed requests: request received to the first content chunk written \
                     to the client.",
            )
            .namespace(NAMESPACE)
            .buckets(FIRST_TOKEN_BUCKETS.to_vec()),
            &["endpoint", "model"],
        )?)?;
        let itl = reg.add(HistogramVec::new(
            HistogramOpts::new(
                "inter_token_latency_seconds",
                "Streamed requests: time between consecutive content chunks.",
            )
            .namespace(NAMESPACE)
            .buckets(INTER_TOKEN_BUCKETS.to_vec()),
            &["model"],
        )?)?;
        let config_reloads = reg.add(IntCounterVec::new(
            Opts::new(
                "config_reloads_total",
                "Configuration reloads (SIGHUP), by result; a failed one keeps the configuration \
                 in force.",
            )
            .namespace(NAMESPACE),
            &["result"],
        )?)?;
        let config_last_reload_success = reg.add(Gauge::with_opts(
            Opts::new(
                "config_last_reload_success_timestamp_seconds",
                "When the configuration in force was loaded (start-up or the last successful \
                 reload), in seconds since the Unix epoch.",
            )
            .namespace(NAMESPACE),
        )?)?;
        // Error series exist from the start for the proxied endpoints, so that the first error
        // after start-up shows in rate() rather than only creating the series.
        for e in ErrorType::ALL {
            for endpoint in Endpoint::ALL {
                errors.with_label_values(&[e.as_str(), endpoint.route()]);
            }
        }
        Ok(Self {
            active_connections,
            errors,
            overhead: Indexed::new(
                overhead,
                [endpoints.clone(), label_values(["false", "true"])],
            ),
            disconnects: Indexed::new(
                disconnects,
                [endpoints.clone(), label_values(DisconnectPhase::LABELS)],
            ),
            time_to_first_token: Indexed::new(ttft, [endpoints, sets.models.clone()]),
            inter_token_latency: Indexed::new(itl, [sets.models.clone()]),
            config_reloads: {
                let reloads = Indexed::new(config_reloads, [label_values(ReloadResult::LABELS)]);
                reloads.at([0]);
                reloads.at([1]);
                reloads
            },
            config_last_reload_success,
        })
    }

    /// A reload ended; a successful one (or start-up, with `None`) sets the timestamp.
    pub fn record_config_load(&self, result: Option<ReloadResult>, unix_secs: f64) {
        if let Some(result) = result {
            self.config_reloads.at([result as usize]).inc();
        }
        if result != Some(ReloadResult::Failure) {
            self.config_last_reload_success.set(unix_secs);
        }
    }

    /// Counts an error answered on `endpoint` (a route template or the unmatched mask).
    pub fn record_error(&self, error: ErrorType, endpoint: &str) {
        self.errors
            .with_label_values(&[error.as_str(), endpoint])
            .inc();
    }

    pub fn observe_overhead(&self, endpoint: Endpoint, stream: bool, overhead: Duration) {
        self.overhead
            .at([endpoint.index(), usize::from(stream)])
            .observe(overhead.as_secs_f64());
    }

    pub fn record_disconnect(&self, endpoint: Endpoint, phase: DisconnectPhase) {
        self.disconnects
            .at([endpoint.index(), phase as usize])
            .inc();
    }

    pub fn observe_time_to_first_token(&self, endpoint: Endpoint, model: ModelId, d: Duration) {
        self.time_to_first_token
            .at([endpoint.index(), model.index()])
            .observe(d.as_secs_f64());
    }

    pub fn observe_inter_token_latency(&self, model: ModelId, d: Duration) {
        self.inter_token_latency
            .at([model.index()])
            .observe(d.as_secs_f64());
    }
}
