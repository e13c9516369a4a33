//! One proxied request's books: from request received to last byte sent.
//!
//! An [`Exchange`] is created when the request arrives and travels with it (into the response
//! stream, for streamed answers). Its `Drop` settles everything exactly once — in-flight
//! gauge, cancelled attempt, client disconnect, overhead, usage and the access-log line — so
//! the books balance whether the request succeeds, fails, or its client simply goes away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_core::metrics::DisconnectPhase;
use mcp_core::openai::Usage;
use mcp_core::upstream::{Outcome, UpstreamResponse};
use mcp_core::{Endpoint, ErrorType, ModelId};

use crate::error::ApiError;
use crate::intake::ProxyRequest;
use crate::state::AppState;

#[derive(Debug)]
pub struct Exchange {
    state: Arc<AppState>,
    endpoint: Endpoint,
    started: Instant,
    model: Option<ModelId>,
    requested_model: String,
    stream: bool,
    /// The status sent to the client, once known.
    status: Option<u16>,
    /// The upstream's `x-request-id` (visible ASCII only), for the access line.
    upstream_request_id: Option<Box<str>>,
    error: Option<ErrorType>,
    usage: Option<Usage>,
    /// The attempt in flight, if any, and when it was sent.
    attempt: Option<Instant>,
    attempted: bool,
    /// Plain answers: time spent waiting on the upstream.
    upstream_wait: Duration,
    /// Streams: time spent in the gateway's own code (waits excluded).
    own_work: Duration,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    content_chunks: u64,
    /// The whole answer was handed over; dropping before this means the client left.
    complete: bool,
}

impl Exchange {
    pub fn begin(state: Arc<AppState>, endpoint: Endpoint) -> Self {
        state.metrics.gateway.active_connections.inc();
        Self {
            state,
            endpoint,
            started: Instant::now(),
            model: None,
            requested_model: String::new(),
            stream: false,
            status: None,
            upstream_request_id: None,
            error: None,
            usage: None,
            attempt: None,
            attempted: false,
            upstream_wait: Duration::ZERO,
            own_work: Duration::ZERO,
            first_token: None,
            last_token: None,
            content_chunks: 0,
            complete: false,
        }
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// The request passed intake.
    pub fn accept(&mut self, request: &mut ProxyRequest) {
        self.model = Some(request.model);
        self.requested_model = std::mem::take(&mut request.requested_model);
        self.stream = request.stream;
    }

    /// An attempt is about to be sent.
    pub fn start_attempt(&mut self) -> Instant {
        let now = Instant::now();
        self.attempt = Some(now);
        self.attempted = true;
        now
    }

    /// The attempt's response headers arrived.
    pub fn first_byte(&mut self, sent: Instant, response: &UpstreamResponse) {
        self.upstream_request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|id| id.to_str().ok())
            .map(Box::from);
        if let Some(model) = self.model {
            let upstream = self.state.upstream.id();
            self.state
                .metrics
                .upstream
                .observe_first_byte(upstream, model, sent.elapsed());
        }
    }

    /// The attempt in flight ended with `outcome`; updates the upstream's health.
    pub fn end_attempt(&mut self, outcome: Outcome) {
        let Some(sent) = self.attempt.take() else {
            return;
        };
        let upstream = &self.state.upstream;
        match outcome.reachability() {
            Some(false) => upstream.health().record_failure(),
            Some(true) => upstream.health().record_success(),
            None => {}
        }
        if let Some(model) = self.model {
            self.state.metrics.upstream.record_attempt(
                upstream.id(),
                model,
                outcome,
                sent.elapsed(),
            );
        }
    }

    /// Time spent waiting on the upstream for a plain answer.
    pub fn waited(&mut self, wait: Duration) {
        self.upstream_wait += wait;
    }

    /// Time a stream spent in the gateway's own code.
    pub fn worked(&mut self, work: Duration) {
        self.own_work += work;
    }

    pub fn set_usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    /// A chunk with generated content was handed to the client at `at`.
    pub fn content_written(&mut self, at: Instant) {
        let gateway = &self.state.metrics.gateway;
        if let Some(model) = self.model {
            match self.last_token {
                None => gateway.observe_time_to_first_token(
                    self.endpoint,
                    model,
                    at.duration_since(self.started),
                ),
                Some(last) => gateway.observe_inter_token_latency(model, at.duration_since(last)),
            }
        }
        self.first_token.get_or_insert(at);
        self.last_token = Some(at);
        self.content_chunks += 1;
    }

    /// The answer (or its head, for a stream) goes out with `status`.
    pub fn respond(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// The client gets `error` instead of an answer.
    pub fn fail(&mut self, error: &ApiError) {
        self.status = Some(error.kind().status());
        self.error = Some(error.kind());
        self.complete = true;
    }

    /// The answer was passed through with an upstream error classification.
    pub fn relayed_error(&mut self, kind: ErrorType) {
        self.error = Some(kind);
    }

    /// A stream broke after its head was sent; counted here because no error response exists.
    pub fn interrupted(&mut self) {
        self.error = Some(ErrorType::StreamInterrupted);
        self.state
            .metrics
            .gateway
            .record_error(ErrorType::StreamInterrupted, self.endpoint.route());
    }

    /// The whole answer was handed to the client.
    pub fn complete(&mut self) {
        self.complete = true;
    }

    /// Accounts the tokens (reported, or estimated for a stream cut short) and returns them.
    fn settle_usage(&mut self) -> Option<Usage> {
        let (Some(model), Some(status)) = (self.model, self.status) else {
            return None;
        };
        let metrics = &self.state.metrics;
        let upstream = self.state.upstream.id();
        let usage = match self.usage {
            Some(usage) => Some(usage),
            // A stream that ended without its usage chunk: count what was relayed, one token
            // per content chunk (what OpenAI-compatible servers send), and no prompt tokens.
            None if self.content_chunks > 0 => Some(Usage {
                prompt_tokens: None,
                completion_tokens: Some(self.content_chunks),
            }),
            None => None,
        };
        if let Some(usage) = &usage {
            let pricing = self.state.catalog.pricing(model);
            metrics.usage.record(model, upstream, usage, pricing);
        }
        let succeeded = (200..300).contains(&status) && self.error.is_none();
        if self.usage.is_none() && succeeded && self.complete {
            metrics.usage.record_missing(self.endpoint, upstream);
        }
        usage
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let metrics = self.state.metrics.clone();
        let gateway = &metrics.gateway;
        if self.attempt.is_some() {
            self.end_attempt(Outcome::Cancelled);
        }
        if !self.complete {
            let phase = if self.first_token.is_some() {
                DisconnectPhase::MidStream
            } else {
                DisconnectPhase::BeforeFirstToken
            };
            gateway.record_disconnect(self.endpoint, phase);
        }
        if self.attempted {
            let overhead = if self.stream {
                self.own_work
            } else {
                self.started.elapsed().saturating_sub(self.upstream_wait)
            };
            gateway.observe_overhead(self.endpoint, self.stream, overhead);
        }
        let usage = self.settle_usage().unwrap_or_default();
        // Last of the metrics: once the in-flight gauge is back down, every counter of this
        // request is settled, so a scrape never sees one without the other.
        gateway.active_connections.dec();
        tracing::info!(
            target: "mcp_proxy::access",
            endpoint = self.endpoint.route(),
            model = self.requested_model.as_str(),
            upstream = self.state.upstream.name(),
            // 499: the client closed the connection first (nginx's convention).
            status = if self.complete { self.status.unwrap_or(0) } else { 499 },
            duration_ms = self.started.elapsed().as_secs_f64() * 1e3,
            stream = self.stream,
            prompt_tokens = usage.prompt(),
            completion_tokens = usage.completion(),
            error_type = self.error.map(ErrorType::as_str),
            upstream_request_id = self.upstream_request_id.as_deref(),
            "request"
        );
    }
}
