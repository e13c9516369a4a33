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
//! When nothing succeeds the client gets the last upstream error (a 429 passes through with
//! its `Retry-After`), or, when no deployment could even be tried, a 503 that says why.
//! Waits (attempts, slots, backoff) are booked on the exchange as waits, never as the
//! gateway's own overhead.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use bytes::Bytes;
use mcp_core::openai;
use mcp_core::resilience::{Capacity, Decision, Failure, Progress, parse_retry_after};
use mcp_core::routing::DeploymentId;
use mcp_core::upstream::{Outcome, UpstreamError, UpstreamId, UpstreamResponse};
use mcp_core::{Endpoint, ErrorType, ModelId};

use super::attempt::Attempt;
use super::{ErrorChain, Exchange, relayed_headers};
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
enum Tried {
    Answer(Dispatched),
    Failed {
        failure: Failure,
        /// What the client gets if this failure is the last word.
        last: Result<Dispatched, ApiError>,
    },
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
    'models: for (position, &model) in plan.iter().enumerate() {
        let mut on_model = 0u32;
        loop {
            let ranked = |d: &mcp_core::routing::Deployment| rank(state, d.id, &tried, &refused);
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
            };
            if failure.outcome == Outcome::RateLimited
                && let Some(wait) = failure.retry_after
            {
                let breaker = &state.breakers[deployment.index()];
                let wait = wait.min(breaker.policy().max_cooldown);
                breaker.sit_out(clock.now() + wait);
            }
            last = Some((failure, answer));
            let progress = Progress {
                attempts: exchange.attempts(),
                attempts_on_model: on_model,
                untried_deployment: state
                    .routes
                    .route(model)
                    .deployments
                    .iter()
                    .any(|d| rank(state, *d, &tried, &refused).is_some_and(|r| r < 2)),
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
/// it cannot take one: its breaker refuses, or it refused already. A deployment on an
/// upstream this request has tried (and, since it is still looking, seen fail) comes after
/// the others, whichever model it failed for. A full upstream ranks last rather than not at
/// all, so that its refusal is counted and answered as saturation.
fn rank(
    state: &AppState,
    deployment: DeploymentId,
    tried: &[UpstreamId],
    refused: &[DeploymentId],
) -> Option<u8> {
    if refused.contains(&deployment)
        || !state.breakers[deployment.index()].would_admit(state.clock.now())
    {
        return None;
    }
    let upstream_id = state.routes.deployment(deployment).upstream;
    let upstream = state.upstream(upstream_id);
    let capacity = match upstream.limit.capacity() {
        Capacity::Free => 0,
        Capacity::Queue => 1,
        Capacity::Full => 4,
    };
    let again = if tried.contains(&upstream_id) { 2 } else { 0 };
    Some(capacity + again)
}

/// One attempt, sent and classified.
async fn try_once(
    exchange: &mut Exchange,
    endpoint: Endpoint,
    request: &ProxyRequest,
    body: &Bytes,
    state: &AppState,
    mut attempt: Attempt,
    timeout: Duration,
) -> Result<Tried, ApiError> {
    let (upstream_id, model) = (attempt.upstream(), attempt.model());
    let upstream = state.upstream(upstream_id);
    let body = upstream_body(state, attempt.deployment(), request, body)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let sent = attempt.sent();
    let failed = |exchange: &mut Exchange, attempt: &mut Attempt, e: UpstreamError| {
        let outcome = e.outcome();
        attempt.finish(outcome);
        exchange.note_attempt(upstream_id, model, outcome);
        exchange.waited(sent.elapsed());
        tracing::warn!(
            upstream = upstream.client.name(),
            endpoint = endpoint.route(),
            error = %ErrorChain(&e),
            "upstream attempt failed"
        );
        Tried::Failed {
            failure: Failure {
                outcome,
                status: None,
                retry_after: None,
            },
            last: Err(ApiError::from_upstream(&e)),
        }
    };
    let response = match upstream.client.send(endpoint, body, deadline).await {
        Ok(response) => response,
        Err(e) => return Ok(failed(exchange, &mut attempt, e)),
    };
    attempt.first_byte();
    let status = response.status();
    let outcome = Outcome::from_status(status);
    if request.stream && outcome == Outcome::Success && response.is_event_stream() {
        exchange.waited(sent.elapsed());
        exchange.note_attempt(upstream_id, model, outcome);
        exchange.answered_by(upstream_id, model, request_id(&response));
        return Ok(Tried::Answer(Dispatched::Stream { attempt, response }));
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| parse_retry_after(v.as_bytes(), SystemTime::now()));
    let headers = relayed_headers(state, upstream_id, &response);
    let upstream_request_id = request_id(&response);
    if outcome == Outcome::ServerError {
        // Replaced by a 502: its body is not needed, and dropping it closes the connection
        // rather than waiting on a failing upstream.
        drop(response);
        attempt.finish(outcome);
        exchange.note_attempt(upstream_id, model, outcome);
        exchange.waited(sent.elapsed());
        return Ok(Tried::Failed {
            failure: Failure {
                outcome,
                status: Some(status),
                retry_after,
            },
            last: Err(ApiError::from_upstream(&UpstreamError::Status(status))),
        });
    }
    let read = response.body(deadline, state.max_response_bytes).await;
    exchange.waited(sent.elapsed());
    let body = match read {
        Ok(body) => body,
        Err(e) => return Ok(failed(exchange, &mut attempt, e)),
    };
    let usage = match outcome {
        Outcome::Success => match openai::read_usage(&body) {
            Ok(usage) => usage,
            Err(_) => {
                attempt.finish(Outcome::Malformed);
                exchange.note_attempt(upstream_id, model, Outcome::Malformed);
                return Ok(Tried::Failed {
                    failure: Failure {
                        outcome: Outcome::Malformed,
                        status: None,
                        retry_after: None,
                    },
                    last: Err(ApiError::new(
                        ErrorType::UpstreamMalformed,
                        "The upstream's answer was not valid JSON.",
                    )),
                });
            }
        },
        _ => None,
    };
    attempt.finish(outcome);
    exchange.note_attempt(upstream_id, model, outcome);
    let answer = Dispatched::Complete {
        status,
        headers,
        body,
        relayed_error: outcome.error_type(),
    };
    // A 2xx is the answer; the upstream's own 4xx is, if it turns out to be the last word.
    exchange.answered_by(upstream_id, model, upstream_request_id);
    if outcome == Outcome::Success {
        if let Some(usage) = usage {
            exchange.set_usage(usage);
        }
        return Ok(Tried::Answer(answer));
    }
    Ok(Tried::Failed {
        failure: Failure {
            outcome,
            status: Some(status),
            retry_after,
        },
        last: Ok(answer),
    })
}

/// The body for this attempt's upstream: the client's, with `model` replaced when the
/// deployment knows the model by another name.
fn upstream_body(
    state: &AppState,
    deployment: DeploymentId,
    request: &ProxyRequest,
    body: &Bytes,
) -> Result<Bytes, ApiError> {
    match &state.routes.deployment(deployment).upstream_model {
        Some(name) if **name != *request.requested_model => {
            match openai::replace_model(body, name) {
                Ok(Some(body)) => Ok(body),
                // Intake read a `model` from this very body; neither can happen.
                Ok(None) | Err(_) => Err(ApiError::new(
                    ErrorType::Internal,
                    "The request could not be prepared for the upstream.",
                )),
            }
        }
        _ => Ok(body.clone()),
    }
}

/// The upstream's own request id (visible ASCII only), which its support asks for.
fn request_id(response: &UpstreamResponse) -> Option<Box<str>> {
    response
        .headers()
        .get("x-request-id")
        .and_then(|id| id.to_str().ok())
        .map(Box::from)
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
