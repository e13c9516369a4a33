//! The relay: from an accepted request to the client's answer.
//!
//! `forward` runs the flow for every proxied endpoint: intake, then [`dispatch`] (the attempt
//! loop: routing, retries, fallbacks), then either a complete answer (status and body
//! relayed unchanged, `usage` already read) or, for a streamed request, the SSE relay in
//! [`stream`]. Every answer says which upstream and model served it.

mod attempt;
mod dispatch;
mod events;
mod exchange;
mod retrieve;
mod stream;
mod try_once;

use actix_web::HttpMessage;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use mcp_core::metrics::RateLimitKind;
use mcp_core::request_id::RequestId;
use mcp_core::upstream::{UpstreamId, UpstreamKind, UpstreamResponse};
use mcp_core::{Endpoint, ErrorType, Protocol};

pub use exchange::Exchange;
pub use retrieve::retrieve;

use crate::admission;
use crate::error::{ApiError, ErrorShape};
use crate::gateway::Gateway;
use crate::intake;
use crate::state::AppState;
use dispatch::Dispatched;

/// The upstream that served the answer, by its configured name.
pub const SERVED_BY_UPSTREAM: HeaderName = HeaderName::from_static("x-mcp-upstream");
/// The model that served the answer, by its public name (a fallback's, if one answered).
pub const SERVED_BY_MODEL: HeaderName = HeaderName::from_static("x-mcp-model");
/// Upstream attempts the answer took.
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-mcp-attempts");

/// Handles one proxied request on `endpoint`.
pub async fn forward(
    endpoint: Endpoint,
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    let state = gateway.current();
    let mut exchange = Exchange::begin(state.clone(), endpoint);
    exchange.identify(req.extensions().get::<RequestId>().cloned());
    let result = proxy(&mut exchange, endpoint, &req, payload, &state).await;
    match result {
        Ok(Answer::Complete(response)) => {
            exchange.respond(response.status().as_u16());
            exchange.complete();
            Ok(response)
        }
        Ok(Answer::Stream {
            attempt,
            response,
            strip_usage,
        }) => {
            let wire = events::Wire::new(endpoint.protocol(), strip_usage);
            Ok(stream::respond(exchange, attempt, response, wire))
        }
        Err(error) => {
            let error = served_headers(&exchange, error).in_shape(ErrorShape::of(endpoint));
            exchange.fail(&error);
            Err(error)
        }
    }
}

/// What the upstream's answer becomes.
enum Answer {
    Complete(HttpResponse),
    /// A 2xx event stream, to be relayed as it arrives.
    Stream {
        attempt: attempt::Attempt,
        response: UpstreamResponse,
        /// The gateway asked for OpenAI's usage chunk; the client did not.
        strip_usage: bool,
    },
}

async fn proxy(
    exchange: &mut Exchange,
    endpoint: Endpoint,
    req: &HttpRequest,
    payload: web::Payload,
    state: &std::sync::Arc<AppState>,
) -> Result<Answer, ApiError> {
    let key = admission::authenticate(state, req)?;
    exchange.key(key);
    exchange.hold(admission::occupy(state, key)?);
    let request = intake::read(endpoint, req, payload, state).await?;
    exchange.accept(&request);
    admission::check_model(state, key, request.model, &request.requested_model)?;
    if state.limits_active {
        // Counting tokens generates none: nothing to reserve.
        let tokens = match endpoint {
            Endpoint::MessagesCountTokens => 0,
            _ => request
                .max_output_tokens
                .unwrap_or(state.default_max_tokens),
        };
        exchange.admitted(admission::admit(state, key, tokens).await?);
    }
    // Only OpenAI's chunk streams need asking for usage; the other APIs always report it.
    let strip_usage =
        request.stream && !request.client_wants_usage && endpoint.protocol() == Protocol::OpenAi;
    let body = if strip_usage {
        stream::ask_for_usage(request.body.clone(), request.has_stream_options)?
    } else {
        request.body.clone()
    };
    match dispatch::dispatch(exchange, endpoint, &request, &body, state).await? {
        Dispatched::Stream { attempt, response } => Ok(Answer::Stream {
            attempt,
            response,
            strip_usage,
        }),
        Dispatched::Complete {
            status,
            headers,
            body,
            relayed_error,
        } => {
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
            insert_served_headers(exchange, &mut builder);
            let mut response = builder.body(body);
            if let Some(kind) = relayed_error {
                exchange.relayed_error(kind);
                response.extensions_mut().insert(kind);
            }
            Ok(Answer::Complete(response))
        }
    }
}

/// Which upstream and model served the answer, and in how many attempts.
pub(crate) fn insert_served_headers(exchange: &Exchange, builder: &mut HttpResponseBuilder) {
    if let Some((upstream, model)) = exchange.served() {
        let state = exchange.state();
        if let Some(name) = &state.upstream(upstream).served_by {
            builder.insert_header((SERVED_BY_UPSTREAM, name.clone()));
        }
        if let Some(Some(name)) = state.served_model.get(model.index()) {
            builder.insert_header((SERVED_BY_MODEL, name.clone()));
        }
    }
    if exchange.attempts() > 0 {
        builder.insert_header((ATTEMPTS, HeaderValue::from(exchange.attempts())));
    }
    // The client's own limits, in place of the upstream's (which describe the gateway's
    // account with the provider, not the client).
    if let Some(admitted) = exchange.admission() {
        for header in admission::ratelimit_headers(&admitted.headroom) {
            builder.insert_header(header);
        }
    }
}

/// An error the gateway answers after attempts also says how many there were.
fn served_headers(exchange: &Exchange, error: ApiError) -> ApiError {
    if exchange.attempts() > 0 {
        error.with_header(ATTEMPTS, HeaderValue::from(exchange.attempts()))
    } else {
        error
    }
}

/// Upstream headers a client may rely on; everything else (connection management, server
/// identity, cookies) stays between the gateway and the upstream. One list per kind of
/// upstream, so that an OpenAI answer is checked against OpenAI's headers only.
static RELAYED_OPENAI_HEADERS: [HeaderName; 10] = [
    HeaderName::from_static("content-type"),
    HeaderName::from_static("retry-after"),
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("openai-processing-ms"),
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];
static RELAYED_ANTHROPIC_HEADERS: [HeaderName; 16] = [
    HeaderName::from_static("content-type"),
    HeaderName::from_static("retry-after"),
    HeaderName::from_static("request-id"),
    // Anthropic's SDKs retry, or not, as the API says.
    HeaderName::from_static("x-should-retry"),
    HeaderName::from_static("anthropic-ratelimit-requests-limit"),
    HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
    HeaderName::from_static("anthropic-ratelimit-requests-reset"),
    HeaderName::from_static("anthropic-ratelimit-tokens-limit"),
    HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
    HeaderName::from_static("anthropic-ratelimit-tokens-reset"),
    HeaderName::from_static("anthropic-ratelimit-input-tokens-limit"),
    HeaderName::from_static("anthropic-ratelimit-input-tokens-remaining"),
    HeaderName::from_static("anthropic-ratelimit-input-tokens-reset"),
    HeaderName::from_static("anthropic-ratelimit-output-tokens-limit"),
    HeaderName::from_static("anthropic-ratelimit-output-tokens-remaining"),
    HeaderName::from_static("anthropic-ratelimit-output-tokens-reset"),
];

/// The headers to relay from an upstream answer, in one pass over them; on the way, the
/// rate-limit headroom the upstream reports is recorded in its gauge.
pub(crate) fn relayed_headers(
    state: &AppState,
    upstream: UpstreamId,
    response: &UpstreamResponse,
) -> Vec<(HeaderName, HeaderValue)> {
    let known_headers = match state.upstream(upstream).client.kind() {
        UpstreamKind::OpenAi => &RELAYED_OPENAI_HEADERS[..],
        UpstreamKind::Anthropic => &RELAYED_ANTHROPIC_HEADERS[..],
    };
    let mut relayed = Vec::with_capacity(known_headers.len());
    for (name, value) in response.headers() {
        let name = name.as_str();
        let Some(known) = known_headers.iter().find(|known| known.as_str() == name) else {
            continue;
        };
        let kind = match name {
            "x-ratelimit-remaining-requests" | "anthropic-ratelimit-requests-remaining" => {
                Some(RateLimitKind::Requests)
            }
            "x-ratelimit-remaining-tokens" | "anthropic-ratelimit-tokens-remaining" => {
                Some(RateLimitKind::Tokens)
            }
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
                .set_ratelimit_remaining(upstream, kind, remaining);
        }
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            relayed.push((known.clone(), value));
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
