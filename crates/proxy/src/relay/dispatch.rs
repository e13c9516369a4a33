//! The attempt loop: from an accepted request to the answer the client gets.
//!
//! The request's model, then its fallbacks, in plan order. For each, a weighted choice among
//! its deployments whose breaker admits an attempt and whose upstream has room, preferring
//! deployments this request has not tried yet; the breaker's permit and a slot of the
//! upstream's `max_in_flight` (waiting in its queue if need be); the attempt; its result
//! classified on the status before the body is read. A failure goes to the retry policy,
//! which says whether to try again on the same model (after a wait: backoff, or the
//! upstream's `Retry-After` up to a cap), move to the next model at once, or give up. Every
//! attempt after the first needs the retry budget's consent, and nothing waits past the
//! request's deadline. Once a stream's head is handed to the client there is no going back:
//! streams commit on their 2xx headers.
//!
//! Only deployments of the endpoint's kind are candidates (an Anthropic model's deployments
//! never see a chat completion). A Responses request that builds on a stored response or
//! conversation (`previous_response_id`, `conversation`) can only be served by the upstream
//! that holds it: it is pinned to
//! the upstream its `x-mcp-upstream` header names, or else it searches: an upstream that
//! answers that it does not know the response is left out and the next one is tried at once,
//! which is neither a failure nor a retry.
//!
//! When nothing succeeds the client gets the last upstream error (a 429 passes through with
//! its `Retry-After`, a 529 as it is), or, when no deployment could even be tried, a 503 that
//! says why.
//! Waits (attempts, slots, backoff) are booked on the exchange as waits, never as the
//! gateway's own overhead.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use bytes::Bytes;
use mcp_core::resilience::{Capacity, Decision, Failure, Progress};
use mcp_core::routing::DeploymentId;
use mcp_core::upstream::{Outcome, UpstreamId, UpstreamKind, UpstreamResponse};
use mcp_core::{Endpoint, ErrorType, ModelId};

use super::Exchange;
use super::attempt::Attempt;
use super::try_once::try_once;
use crate::error::ApiError;
use crate::intake::ProxyRequest;
use crate::state::AppState;

thread_local! {
    /// The weighted choice's randomness and the backoff's jitter, one generator per worker.
    static RNG: RefCell<fastrand::Rng> = RefCell::new(fastrand::Rng::new());
}

/// An answer to hand to the client.
pub(super) enum Dispatched {
    /// A complete answer, relayed with its status: a 2xx (its usage read), or the upstream's
    /// own 4xx (tagged with its classification).
    Complete {
        status: u16,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        relayed_error: Option<ErrorType>,
    },
    /// A 2xx event stream, to be relayed as it arrives; the attempt ends with the stream.
    Stream {
        attempt: Attempt,
        response: UpstreamResponse,
    },
}

/// What one attempt came to.
pub(super) enum Tried {
    Answer(Dispatched),
    Failed {
        failure: Failure,
        /// What the client gets if this failure is the last word.
        last: Result<Dispatched, ApiError>,
    },
    /// The upstream does not hold the `previous_response_id` the request continues.
    Missed {
        failure: Failure,
        answer: Dispatched,
    },
}

/// Which deployments may take a request at all, whatever their health.
struct Eligible<'a> {
    kind: UpstreamKind,
    /// The upstream the request is pinned to.
    pinned: Option<UpstreamId>,
    /// Upstreams that said they do not hold the response the request continues.
    missed: &'a [UpstreamId],
}

pub(super) async fn dispatch(
    exchange: &mut Exchange,
    endpoint: Endpoint,
    request: &ProxyRequest,
    body: &Bytes,
    state: &Arc<AppState>,
) -> Result<Dispatched, ApiError> {
    exchange.routing();
    let clock = &state.clock;
    let deadline = clock.now() + state.deadline;
    state.budget.deposit(clock.now());
    let plan = &state.routes.route(request.model).plan;
    // Upstreams tried (an upstream that just failed one model is the last choice for the
    // next), and deployments that could not take an attempt after all.
    let mut tried: Vec<UpstreamId> = Vec::new();
    let mut refused: Vec<DeploymentId> = Vec::new();
    let mut saturated = false;
    let mut last: Option<(Failure, Result<Dispatched, ApiError>)> = None;
    // The deployment of the last attempt, whose failure any further attempt retries.
    let mut previous: Option<DeploymentId> = None;
    let mut missed: Vec<UpstreamId> = Vec::new();
    'models: for (position, &model) in plan.iter().enumerate() {
        let mut on_model = 0u32;
        loop {
            let eligible = Eligible {
                kind: endpoint.kind(),
                pinned: request.pinned,
                missed: &missed,
            };
            let ranked =
                |d: &mcp_core::routing::Deployment| rank(state, d, &eligible, &tried, &refused);
            let Some(deployment) = RNG.with_borrow_mut(|rng| state.routes.pick(model, rng, ranked))
            else {
                continue 'models;
            };
            let Ok(permit) = state.permit(deployment) else {
                refused.push(deployment);
                continue;
            };
            let upstream_id = state.routes.deployment(deployment).upstream;
            let upstream = state.upstream(upstream_id);
            let queued = Instant::now();
            let slot = match upstream.limit.acquire().await {
                Ok(slot) => slot,
                Err(why) => {
                    state.settle_permit(deployment, permit, Outcome::Cancelled);
                    state
                        .metrics
                        .routing
                        .record_queue_rejection(upstream_id, why);
                    exchange.waited(queued.elapsed());
                    saturated = true;
                    refused.push(deployment);
                    continue;
                }
            };
            if upstream.limit.is_limited() {
                let wait = queued.elapsed();
                exchange.waited(wait);
                state.metrics.routing.observe_queue_wait(upstream_id, wait);
            }
            let remaining = deadline.saturating_duration_since(clock.now());
            if remaining.is_zero() {
                state.settle_permit(deployment, permit, Outcome::Cancelled);
                break 'models;
            }
            if let Some(previous) = previous {
                let failed = state.routes.deployment(previous).upstream;
                if !state.budget.try_withdraw(clock.now()) {
                    state.settle_permit(deployment, permit, Outcome::Cancelled);
                    state.metrics.routing.record_budget_exhausted(failed);
                    tracing::warn!(
                        upstream = state.upstream(failed).client.name(),
                        "retry budget exhausted: the request gets its last error"
                    );
                    break 'models;
                }
                let reason = last.as_ref().map_or(Outcome::Cancelled, |(f, _)| f.outcome);
                state.metrics.routing.record_retry(failed, reason);
            }
            if on_model == 0 && position > 0 {
                // The first attempt on a fallback, whether or not the model before it could
                // be tried at all.
                state
                    .metrics
                    .routing
                    .record_fallback(plan[position - 1], model);
            }
            on_model += 1;
            tried.push(upstream_id);
            previous = Some(deployment);
            let attempt = Attempt::start(Arc::clone(state), deployment, permit, slot);
            let timeout = upstream.client.request_timeout().min(remaining);
            let tried_now =
                try_once(exchange, endpoint, request, body, state, attempt, timeout).await?;
            let (failure, answer) = match tried_now {
                Tried::Answer(answer) => return Ok(answer),
                Tried::Failed { failure, last } => (failure, last),
                Tried::Missed { failure, answer } => {
                    // Not this upstream's response: try the next one at once, without the
                    // retry policy or budget. A real failure seen before stays the answer.
                    missed.push(upstream_id);
                    previous = None;
                    if last.is_none() {
                        last = Some((failure, Ok(answer)));
                    }
                    continue;
                }
            };
            if failure.outcome == Outcome::RateLimited
                && let Some(wait) = failure.retry_after
            {
                let breaker = &state.breakers[deployment.index()];
                let wait = wait.min(breaker.policy().max_cooldown);
                breaker.sit_out(clock.now() + wait);
            }
            last = Some((failure, answer));
            let eligible = Eligible {
                kind: endpoint.kind(),
                pinned: request.pinned,
                missed: &missed,
            };
            let progress = Progress {
                attempts: exchange.attempts(),
                attempts_on_model: on_model,
                untried_deployment: state.routes.route(model).deployments.iter().any(|d| {
                    let d = state.routes.deployment(*d);
                    rank(state, d, &eligible, &tried, &refused).is_some_and(|r| r < 2)
                }),
            };
            let jitter = RNG.with_borrow_mut(fastrand::Rng::f64);
            match state.retry.decide(&failure, &progress, jitter) {
                Decision::GiveUp => break 'models,
                Decision::NextModel => continue 'models,
                Decision::Retry { wait } if wait.is_zero() => {}
                Decision::Retry { wait } => {
                    if clock.now() + wait >= deadline {
                        break 'models;
                    }
                    let began = Instant::now();
                    clock.sleep(wait).await;
                    exchange.waited(began.elapsed());
                }
            }
        }
    }
    match last {
        Some((_, answer)) => answer,
        None if saturated => Err(ApiError::new(
            ErrorType::UpstreamSaturated,
            "Every upstream that serves this model is at its concurrency limit; try again shortly.",
        )
        .with_header(RETRY_AFTER, HeaderValue::from_static("1"))),
        None => Err(no_deployment_admitted(state, plan)),
    }
}

/// How good a choice a deployment is for the next attempt (lower is better), or `None` when
/// it cannot take one: it is not eligible (another kind, not the pinned upstream, an upstream
/// without the continued response), its breaker refuses, or it refused already. A deployment
/// on an upstream this request has tried (and, since it is still looking, seen fail) comes
/// after the others, whichever model it failed for. A full upstream ranks last rather than
/// not at all, so that its refusal is counted and answered as saturation.
fn rank(
    state: &AppState,
    deployment: &mcp_core::routing::Deployment,
    eligible: &Eligible<'_>,
    tried: &[UpstreamId],
    refused: &[DeploymentId],
) -> Option<u8> {
    let upstream_id = deployment.upstream;
    if deployment.kind != eligible.kind
        || eligible.pinned.is_some_and(|p| p != upstream_id)
        || eligible.missed.contains(&upstream_id)
        || refused.contains(&deployment.id)
        || !state.breakers[deployment.id.index()].would_admit(state.clock.now())
    {
        return None;
    }
    let upstream = state.upstream(upstream_id);
    let capacity = match upstream.limit.capacity() {
        Capacity::Free => 0,
        Capacity::Queue => 1,
        Capacity::Full => 4,
    };
    let again = if tried.contains(&upstream_id) { 2 } else { 0 };
    Some(capacity + again)
}

/// The 503 for a request no deployment of any model in its plan would take.
fn no_deployment_admitted(state: &AppState, plan: &[ModelId]) -> ApiError {
    let now = state.clock.now();
    let reopens = plan
        .iter()
        .flat_map(|m| &state.routes.route(*m).deployments)
        .filter_map(|d| state.breakers[d.index()].blocked_until(now))
        .min();
    let secs = reopens.map_or(1, |at| {
        at.saturating_duration_since(now)
            .as_secs()
            .saturating_add(1)
    });
    ApiError::new(
        ErrorType::CircuitOpen,
        "Every upstream that serves this model is failing and has been taken out of rotation; \
         try again shortly.",
    )
    .with_header(RETRY_AFTER, HeaderValue::from(secs))
}
