//! One upstream attempt: sent, its answer classified on the status, its body read (a 2xx
//! validated in the endpoint's wire format and its usage read), and what the dispatch loop
//! should make of it. The attempt's books are settled here, once, whichever way it ends.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use mcp_core::resilience::{Failure, parse_retry_after};
use mcp_core::routing::DeploymentId;
use mcp_core::upstream::{Outcome, UpstreamError, UpstreamResponse};
use mcp_core::usage::Usage;
use mcp_core::{Endpoint, ErrorType, Protocol, anthropic, openai, responses};

use super::attempt::Attempt;
use super::dispatch::{Dispatched, Tried};
use super::{ErrorChain, Exchange, relayed_headers};
use crate::error::ApiError;
use crate::intake::ProxyRequest;
use crate::state::AppState;

/// One attempt, sent and classified.
pub(super) async fn try_once(
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
    let response = match upstream
        .client
        .send(
            endpoint,
            body,
            &request.forwarded,
            request.request_id.as_ref(),
            deadline,
        )
        .await
    {
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
    let (usage, pending) = match outcome {
        Outcome::Success => match read_usage(endpoint.protocol(), &body) {
            Ok(read) => read,
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
        _ => (None, false),
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
        if pending {
            exchange.usage_not_due();
        }
        return Ok(Tried::Answer(answer));
    }
    let failure = Failure {
        outcome,
        status: Some(status),
        retry_after,
    };
    if request.stored_context.is_some()
        && let Dispatched::Complete { body, .. } = &answer
        && responses::is_unknown_stored_context(status, body)
    {
        return Ok(Tried::Missed { failure, answer });
    }
    Ok(Tried::Failed {
        failure,
        last: Ok(answer),
    })
}

/// Validates a 2xx body in the endpoint's wire format and reads its usage, and whether the
/// answer is a response still pending (created in the background), whose usage is not due.
fn read_usage(protocol: Protocol, body: &[u8]) -> Result<(Option<Usage>, bool), serde_json::Error> {
    match protocol {
        Protocol::OpenAi => openai::read_usage(body).map(|usage| (usage, false)),
        Protocol::Responses => responses::read_answer(body),
        Protocol::Anthropic => anthropic::read_usage(body).map(|usage| (usage, false)),
    }
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

/// The upstream's own request id (visible ASCII only), which its support asks for:
/// OpenAI's `x-request-id`, Anthropic's `request-id`.
pub(super) fn request_id(response: &UpstreamResponse) -> Option<Box<str>> {
    const OPENAI: http::HeaderName = http::HeaderName::from_static("x-request-id");
    const ANTHROPIC: http::HeaderName = http::HeaderName::from_static("request-id");
    let headers = response.headers();
    headers
        .get(OPENAI)
        .or_else(|| headers.get(ANTHROPIC))
        .and_then(|id| id.to_str().ok())
        .map(Box::from)
}
