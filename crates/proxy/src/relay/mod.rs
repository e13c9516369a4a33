//! The relay: from an accepted request to the client's answer.
//!
//! `forward` runs the flow for every proxied endpoint: intake, one upstream attempt, then
//! either a plain answer (the body read whole, `usage` read from it, status and body relayed
//! unchanged) or, for a streamed request, the SSE relay in [`stream`].

mod exchange;
mod stream;

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use mcp_core::metrics::RateLimitKind;
use mcp_core::openai;
use mcp_core::upstream::{Outcome, UpstreamError, UpstreamResponse};
use mcp_core::{Endpoint, ErrorType};

pub use exchange::Exchange;

use crate::error::ApiError;
use crate::intake;
use crate::state::AppState;

/// Handles one proxied request on `endpoint`.
pub async fn forward(
    endpoint: Endpoint,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut exchange = Exchange::begin(state.clone().into_inner(), endpoint);
    let result = proxy(&mut exchange, endpoint, &req, payload, &state).await;
    match result {
        Ok(Answer::Plain(response)) => {
            exchange.respond(response.status().as_u16());
            exchange.complete();
            Ok(response)
        }
        Ok(Answer::Stream {
            response,
            strip_usage,
        }) => Ok(stream::respond(exchange, response, strip_usage)),
        Err(error) => {
            exchange.fail(&error);
            Err(error)
        }
    }
}

/// What the upstream's answer becomes.
enum Answer {
    Plain(HttpResponse),
    /// A 2xx event stream, to be relayed as it arrives.
    Stream {
        response: UpstreamResponse,
        /// The gateway asked for the usage chunk; the client did not.
        strip_usage: bool,
    },
}

async fn proxy(
    exchange: &mut Exchange,
    endpoint: Endpoint,
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Answer, ApiError> {
    let mut request = intake::read(endpoint, req, payload, state).await?;
    exchange.accept(&mut request);
    let strip_usage = request.stream && !request.client_wants_usage;
    let body = if strip_usage {
        stream::ask_for_usage(request.body, request.has_stream_options)?
    } else {
        request.body
    };
    let upstream = &state.upstream;
    let deadline = upstream.deadline();
    let sent = exchange.start_attempt();
    let response = match upstream.send(endpoint, body, deadline).await {
        Ok(response) => response,
        Err(e) => return Err(attempt_failed(exchange, sent, &e)),
    };
    exchange.first_byte(sent, &response);
    let status = response.status();
    if request.stream && (200..300).contains(&status) && response.is_event_stream() {
        exchange.worked(sent.duration_since(exchange.started()));
        return Ok(Answer::Stream {
            response,
            strip_usage,
        });
    }
    let headers = relayed_headers(state, &response);
    let body = match response.body(deadline, state.max_response_bytes).await {
        Ok(body) => body,
        Err(e) => return Err(attempt_failed(exchange, sent, &e)),
    };
    exchange.waited(sent.elapsed());
    plain_answer(exchange, status, headers, body).map(Answer::Plain)
}

/// Ends the attempt and turns its failure into the client's error.
fn attempt_failed(exchange: &mut Exchange, sent: Instant, e: &UpstreamError) -> ApiError {
    exchange.waited(sent.elapsed());
    exchange.end_attempt(e.outcome());
    tracing::warn!(
        upstream = exchange.state().upstream.name(),
        endpoint = exchange.endpoint().route(),
        error = %ErrorChain(e),
        "upstream attempt failed"
    );
    ApiError::from_upstream(e)
}

/// A complete upstream answer: 2xx relayed with its usage accounted, 4xx passed through
/// unchanged, 5xx replaced by a 502.
fn plain_answer(
    exchange: &mut Exchange,
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let outcome = Outcome::from_status(status);
    let tag = match outcome {
        Outcome::Success => match openai::read_usage(&body) {
            Ok(usage) => {
                if let Some(usage) = usage {
                    exchange.set_usage(usage);
                }
                None
            }
            Err(_) => {
                exchange.end_attempt(Outcome::Malformed);
                return Err(ApiError::new(
                    ErrorType::UpstreamMalformed,
                    "The upstream's answer was not valid JSON.",
                ));
            }
        },
        Outcome::RateLimited => Some(ErrorType::UpstreamRateLimited),
        Outcome::ClientError => Some(ErrorType::UpstreamClientError),
        _ => {
            exchange.end_attempt(outcome);
            return Err(ApiError::from_upstream(&UpstreamError::Status(status)));
        }
    };
    exchange.end_attempt(outcome);
    let status = StatusCode::from_u16(status).map_err(|_| {
        ApiError::new(
            ErrorType::UpstreamMalformed,
            "The upstream answered with an invalid status.",
        )
    })?;
    let mut builder = HttpResponse::build(status);
    for header in headers {
        builder.insert_header(header);
    }
    let mut response = builder.body(body);
    if let Some(kind) = tag {
        exchange.relayed_error(kind);
        response.extensions_mut().insert(kind);
    }
    Ok(response)
}

/// Upstream headers a client may rely on; everything else (connection management, server
/// identity, cookies) stays between the gateway and the upstream.
const RELAYED_HEADERS: [&str; 10] = [
    "content-type",
    "retry-after",
    "x-request-id",
    "openai-processing-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
];

/// The headers to relay from an upstream answer, in one pass over them; the rate-limit
/// headroom the upstream reports is recorded on the way.
pub(crate) fn relayed_headers(
    state: &AppState,
    response: &UpstreamResponse,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut relayed = Vec::with_capacity(RELAYED_HEADERS.len());
    for (name, value) in response.headers() {
        let name = name.as_str();
        let Some(known) = RELAYED_HEADERS.iter().find(|known| **known == name) else {
            continue;
        };
        let kind = match name {
            "x-ratelimit-remaining-requests" => Some(RateLimitKind::Requests),
            "x-ratelimit-remaining-tokens" => Some(RateLimitKind::Tokens),
            _ => None,
        };
        let remaining = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok());
        if let (Some(kind), Some(remaining)) = (kind, remaining) {
            state
                .metrics
                .upstream
                .set_ratelimit_remaining(state.upstream.id(), kind, remaining);
        }
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            relayed.push((HeaderName::from_static(known), value));
        }
    }
    relayed
}

/// Displays an error with its sources, `outer: inner: innermost`.
pub(crate) struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
