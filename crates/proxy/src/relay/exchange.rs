//! One proxied request's books, as the client sees it: from request received to last byte
//! sent.
//!
//! An [`Exchange`] is created when the request arrives and travels with it (into the response
//! stream, for streamed answers). Its `Drop` settles everything exactly once — in-flight
//! gauge, client disconnect, overhead, attempts per request, usage and the access-log line —
//! so the books balance whether the request succeeds, fails, or its client simply goes away.
//! Each upstream attempt keeps its own books ([`super::attempt::Attempt`]); the exchange only
//! notes which attempts were made and which one answered.

use std::fmt::Write as _;

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::task::{Context, Poll, Waker};

use mcp_core::limits::{Admitted, KeyId, Scope};
use mcp_core::metrics::DisconnectPhase;
use mcp_core::request_id::RequestId;
use mcp_core::upstream::{Outcome, UpstreamId};
use mcp_core::usage::Usage;
use mcp_core::{Endpoint, ErrorType, ModelId};

use crate::admission::GateSlot;
use crate::error::ApiError;
use crate::intake::{self, ProxyRequest};
use crate::state::AppState;

#[derive(Debug)]
pub struct Exchange {
    state: Arc<AppState>,
    endpoint: Endpoint,
    started: Instant,
    /// The model requested; once an answer is used, the model that gave it (a fallback).
    model: Option<ModelId>,
    requested_model: String,
    /// The upstream whose answer the client gets.
    served_by: Option<UpstreamId>,
    /// Every attempt made, in order, for the access line.
    attempts: Vec<(UpstreamId, ModelId, Outcome)>,
    /// Routing began: the request was accepted and at least looked for a deployment.
    routed: bool,
    /// The client key, when the gateway has keys.
    key: Option<KeyId>,
    /// This request's id (the client's, or minted), for the access line.
    request_id: Option<RequestId>,
    /// What the limiter admitted, to be settled from the real usage.
    admitted: Option<Admitted>,
    /// Concurrency slots, held to the last byte.
    slots: Vec<GateSlot>,
    stream: bool,
    /// The status sent to the client, once known.
    status: Option<u16>,
    /// The upstream's `x-request-id` (visible ASCII only), for the access line.
    upstream_request_id: Option<Box<str>>,
    error: Option<ErrorType>,
    usage: Option<Usage>,
    /// Time spent waiting: on upstream attempts, for a free slot, between attempts.
    upstream_wait: Duration,
    /// Streams: time spent in the gateway's own code (waits excluded).
    own_work: Duration,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    content_events: u64,
    /// The whole answer was handed over; dropping before this means the client left.
    complete: bool,
    /// The answer is a response created in the background: its usage comes later, so an
    /// answer without it is not a gap.
    usage_not_due: bool,
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
            served_by: None,
            attempts: Vec::new(),
            routed: false,
            key: None,
            request_id: None,
            admitted: None,
            slots: Vec::new(),
            stream: false,
            status: None,
            upstream_request_id: None,
            error: None,
            usage: None,
            upstream_wait: Duration::ZERO,
            own_work: Duration::ZERO,
            first_token: None,
            last_token: None,
            content_events: 0,
            complete: false,
            usage_not_due: false,
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
    pub fn accept(&mut self, request: &ProxyRequest) {
        self.model = Some(request.model);
        self.requested_model = intake::truncate(&request.requested_model, intake::MAX_ECHOED_MODEL);
        self.stream = request.stream;
    }

    /// A retrieval of a stored response: no model to route by, counted as `model`.
    pub fn accept_retrieval(&mut self, model: ModelId) {
        self.model = Some(model);
        self.requested_model = "-".to_owned();
    }

    /// The answer is a stream (a retrieval's, decided by the upstream's answer).
    pub fn streamed(&mut self) {
        self.stream = true;
    }

    /// The request's id.
    pub fn identify(&mut self, request_id: Option<RequestId>) {
        self.request_id = request_id;
    }

    /// The client's key.
    pub fn key(&mut self, key: Option<KeyId>) {
        self.key = key;
    }

    /// Concurrency slots to hold until the answer is done.
    pub fn hold(&mut self, slots: Vec<GateSlot>) {
        self.slots = slots;
    }

    /// The limiter admitted the request.
    pub fn admitted(&mut self, admitted: Admitted) {
        self.admitted = Some(admitted);
    }

    pub fn admission(&self) -> Option<&Admitted> {
        self.admitted.as_ref()
    }

    /// Routing begins.
    pub fn routing(&mut self) {
        self.routed = true;
    }

    /// An attempt ended with `outcome` (the one whose answer is relayed included).
    pub fn note_attempt(&mut self, upstream: UpstreamId, model: ModelId, outcome: Outcome) {
        self.attempts.push((upstream, model, outcome));
    }

    /// The last attempt's outcome changed after it was noted (a stream that broke).
    pub fn amend_last_attempt(&mut self, outcome: Outcome) {
        if let Some(last) = self.attempts.last_mut() {
            last.2 = outcome;
        }
    }

    /// The number of attempts made so far.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.attempts.len()).unwrap_or(u32::MAX)
    }

    /// The answer the client gets comes from `upstream`, for `model`.
    pub fn answered_by(
        &mut self,
        upstream: UpstreamId,
        model: ModelId,
        upstream_request_id: Option<Box<str>>,
    ) {
        self.served_by = Some(upstream);
        self.model = Some(model);
        self.upstream_request_id = upstream_request_id;
    }

    /// Which upstream answered and for which model, once known.
    pub fn served(&self) -> Option<(UpstreamId, ModelId)> {
        self.served_by.zip(self.model)
    }

    /// Time spent waiting, which is not the gateway's own work.
    pub fn waited(&mut self, wait: Duration) {
        self.upstream_wait += wait;
    }

    /// A stream's head is handed over at `at`: the time until then that was not a wait was
    /// the gateway's own work.
    pub fn worked_until_now(&mut self, began: Instant) {
        let before = began
            .saturating_duration_since(self.started)
            .saturating_sub(self.upstream_wait);
        self.own_work += before + began.elapsed();
    }

    /// Time a stream spent in the gateway's own code.
    pub fn worked(&mut self, work: Duration) {
        self.own_work += work;
    }

    /// The answer reports no usage because it is not due yet (a background response).
    pub fn usage_not_due(&mut self) {
        self.usage_not_due = true;
    }

    pub fn set_usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    /// A chunk with `events` events of generated content was handed to the client at `at`
    /// (time to first token and inter-token latency are per chunk written; the estimate of a
    /// stream's output without usage is per event).
    pub fn content_written(&mut self, at: Instant, events: u64) {
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
        self.content_events += events;
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

    /// Accounts the tokens (reported, or estimated for a stream cut short) and returns them
    /// with their cost.
    fn settle_usage(&mut self) -> Option<(Usage, f64)> {
        let (Some((upstream, model)), Some(status)) = (self.served(), self.status) else {
            return None;
        };
        let metrics = &self.state.metrics;
        if !self.endpoint.counts_usage() {
            return None;
        }
        // A stream that ended without its output count (no usage chunk, no terminal event, no
        // `message_delta`): count what was relayed, one token per content event (what the
        // servers send), beside whatever input the stream did report.
        let estimated_output = (self.content_events > 0).then_some(self.content_events);
        let usage = match self.usage {
            Some(mut usage) if self.stream && usage.output.is_none() => {
                usage.output = estimated_output;
                Some(usage)
            }
            Some(usage) => Some(usage),
            None => estimated_output.map(|output| Usage {
                output: Some(output),
                ..Usage::default()
            }),
        };
        let pricing = self.state.routes.catalog().pricing(model);
        if let Some(usage) = &usage {
            metrics.usage.record(model, upstream, usage, pricing);
        }
        let succeeded = (200..300).contains(&status) && self.error.is_none();
        let reported = self.usage.is_some_and(|u| u.is_reported());
        if !reported && succeeded && self.complete && !self.usage_not_due {
            metrics.usage.record_missing(self.endpoint, upstream);
        }
        usage.map(|u| {
            let cost = pricing.map_or(0.0, |p| p.cost_usd(&u));
            (u, cost)
        })
    }

    /// The key's books: its request, tokens and cost, and the limiter's settlement of what
    /// was reserved (the budget gauge follows what the limiter says is left).
    fn settle_key(&mut self, status: u16, usage: Usage, cost: f64) {
        let state = &self.state;
        if let Some(key) = self.key {
            let label = state.key_label(Scope::Key(key));
            state.metrics.keys.record_request(
                label,
                status,
                usage.prompt(),
                usage.completion(),
                cost,
            );
        }
        let Some(admitted) = self.admitted.take() else {
            return;
        };
        let used = usage.prompt() + usage.completion();
        let mut settled = state.limiter.get().settle(self.key, admitted, used, cost);
        let (key, key_label) = (self.key, state.key_label);
        let metrics = Arc::clone(&state.metrics);
        let record = move |remaining: Option<f64>| {
            if let (Some(key), Some(remaining), true) = (key, remaining, key_label) {
                metrics.keys.set_budget_remaining(key.index(), remaining);
            }
        };
        // The in-process limiter settles at once; a shared store answers later.
        let mut cx = Context::from_waker(Waker::noop());
        match settled.as_mut().poll(&mut cx) {
            Poll::Ready(remaining) => record(remaining),
            Poll::Pending => {
                tokio::spawn(async move { record(settled.await) });
            }
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let metrics = self.state.metrics.clone();
        let gateway = &metrics.gateway;
        if !self.complete {
            let phase = if self.first_token.is_some() {
                DisconnectPhase::MidStream
            } else {
                DisconnectPhase::BeforeFirstToken
            };
            gateway.record_disconnect(self.endpoint, phase);
        }
        if self.routed {
            metrics
                .routing
                .observe_attempts(self.endpoint, self.attempts());
            let overhead = if self.stream {
                self.own_work
            } else {
                self.started.elapsed().saturating_sub(self.upstream_wait)
            };
            gateway.observe_overhead(self.endpoint, self.stream, overhead);
        }
        let (usage, cost) = self.settle_usage().unwrap_or_default();
        let status = if self.complete {
            self.status.unwrap_or(0)
        } else {
            499
        };
        self.settle_key(status, usage, cost);
        // Last of the metrics: once the in-flight gauge is back down, every counter of this
        // request is settled, so a scrape never sees one without the other.
        gateway.active_connections.dec();
        let upstream = self
            .served_by
            .map_or("-", |u| self.state.upstream(u).client.name());
        tracing::info!(
            target: "mcp_proxy::access",
            endpoint = self.endpoint.route(),
            model = self.requested_model.as_str(),
            upstream,
            attempts = %AttemptList(self),
            // 499: the client closed the connection first (nginx's convention).
            status = if self.complete { self.status.unwrap_or(0) } else { 499 },
            duration_ms = self.started.elapsed().as_secs_f64() * 1e3,
            stream = self.stream,
            prompt_tokens = usage.prompt(),
            completion_tokens = usage.completion(),
            error_type = self.error.map(ErrorType::as_str),
            request_id = self.request_id.as_ref().map(RequestId::as_str),
            key = self.key.map(|k| self.state.keys.name(k)),
            upstream_request_id = self.upstream_request_id.as_deref(),
            "request"
        );
    }
}

/// The attempts for the access line: `upstream/model:outcome` each, space-separated, `-`
/// when none was made.
struct AttemptList<'a>(&'a Exchange);

impl std::fmt::Display for AttemptList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.0;
        if e.attempts.is_empty() {
            return f.write_str("-");
        }
        for (i, (upstream, model, outcome)) in e.attempts.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            write!(
                f,
                "{}/{}:{}",
                e.state.upstream(*upstream).client.name(),
                e.state.routes.catalog().label(*model),
                outcome.as_str()
            )?;
        }
        Ok(())
    }
}
