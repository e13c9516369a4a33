//! Stored responses: `GET` and `DELETE /v1/responses/{id}` and
//! `GET /v1/responses/{id}/input_items`, passed through to the upstream that holds the
//! response.
//!
//! A stored response lives with the upstream (the provider account) that created it, and the
//! request names no model to route by. So the request goes to the OpenAI-kind upstream its
//! `x-mcp-upstream` header names (the header on the answer that created the response), or,
//! without the header, to each OpenAI-kind upstream in configuration order until one does
//! not answer 404. Reading or deleting an id another upstream holds is a harmless 404, so the
//! search is safe; an upstream that fails (5xx, unreachable) while the search goes on makes
//! the final answer that failure, not a 404 that may be untrue.
//!
//! These are not deployments of a model: they take no breaker permit, count in the upstream
//! families under `model="other"`, and count no tokens (the response's tokens were counted
//! when it was created). They do take the upstream's concurrency slots and feed its health.
//! A streamed retrieval (`?stream=true`, a background response's events) is relayed event by
//! event like any Responses stream.

use std::sync::Arc;
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use mcp_core::request_id::RequestId;
use mcp_core::upstream::{Outcome, UpstreamError, UpstreamId, UpstreamKind, UpstreamResponse};
use mcp_core::{Endpoint, ErrorType, Protocol};

use super::attempt::Attempt;
use super::events::Wire;
use super::try_once::request_id;
use super::{ErrorChain, Exchange, SERVED_BY_UPSTREAM, insert_served_headers, relayed_headers};
use crate::admission;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::state::AppState;

/// Longest id accepted; OpenAI's are about 60 characters.
const MAX_ID: usize = 128;

/// Handles one retrieval (or deletion) on `endpoint`.
pub async fn retrieve(
    endpoint: Endpoint,
    req: HttpRequest,
    gateway: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    let state = gateway.current();
    let mut exchange = Exchange::begin(state.clone(), endpoint);
    exchange.identify(req.extensions().get::<RequestId>().cloned());
    // A stored response is its owner's: with keys configured, it takes one to read it.
    let admitted = admission::authenticate(&state, &req).map(|key| exchange.key(key));
    let result = match admitted {
        Ok(()) => pass_through(&mut exchange, endpoint, &req, &state).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(Retrieved::Complete(response)) => {
            exchange.respond(response.status().as_u16());
            exchange.complete();
            Ok(response)
        }
        Ok(Retrieved::Stream { attempt, response }) => {
            let wire = Wire::new(Protocol::Responses, false);
            Ok(super::stream::respond(exchange, attempt, response, wire))
        }
        Err(error) => {
            exchange.fail(&error);
            Err(error)
        }
    }
}

/// What the client gets.
enum Retrieved {
    Complete(HttpResponse),
    /// A 2xx event stream, relayed as it arrives.
    Stream {
        attempt: Attempt,
        response: UpstreamResponse,
    },
}

/// What the last candidate said.
enum Last {
    /// A 404: not this upstream's response.
    NotFound(HttpResponse),
    Failed(ApiError),
}

async fn pass_through(
    exchange: &mut Exchange,
    endpoint: Endpoint,
    req: &HttpRequest,
    state: &Arc<AppState>,
) -> Result<Retrieved, ApiError> {
    let path = upstream_path(endpoint, req)?;
    let method = if req.method() == Method::DELETE {
        http::Method::DELETE
    } else {
        http::Method::GET
    };
    let candidates = candidates(req, state)?;
    let model = state.routes.catalog().other();
    exchange.accept_retrieval(model);
    exchange.routing();
    let mut last: Option<Last> = None;
    for upstream_id in candidates {
        let upstream = state.upstream(upstream_id);
        let queued = Instant::now();
        let slot = upstream.limit.acquire().await;
        exchange.waited(queued.elapsed());
        let Ok(slot) = slot else {
            continue;
        };
        let mut attempt = Attempt::unrouted(Arc::clone(state), upstream_id, model, slot);
        let sent = attempt.sent();
        let deadline = tokio::time::Instant::now() + upstream.client.request_timeout();
        let result = match upstream
            .client
            .send_to(method.clone(), &path, deadline)
            .await
        {
            Ok(response) => {
                attempt.first_byte();
                let status = response.status();
                if Outcome::from_status(status) == Outcome::Success && response.is_event_stream() {
                    exchange.waited(sent.elapsed());
                    exchange.streamed();
                    exchange.note_attempt(upstream_id, model, Outcome::Success);
                    exchange.answered_by(upstream_id, model, request_id(&response));
                    return Ok(Retrieved::Stream { attempt, response });
                }
                let headers = relayed_headers(state, upstream_id, &response);
                let id = request_id(&response);
                response
                    .body(deadline, state.max_response_bytes)
                    .await
                    .map(|body| (status, headers, id, body))
            }
            Err(e) => Err(e),
        };
        exchange.waited(sent.elapsed());
        let outcome = match &result {
            Ok((status, ..)) => Outcome::from_status(*status),
            Err(e) => e.outcome(),
        };
        attempt.finish(outcome);
        exchange.note_attempt(upstream_id, model, outcome);
        let (status, headers, id, body) = match result {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(
                    upstream = upstream.client.name(),
                    endpoint = endpoint.route(),
                    error = %ErrorChain(&e),
                    "upstream attempt failed"
                );
                last = Some(Last::Failed(ApiError::from_upstream(&e)));
                continue;
            }
        };
        if outcome == Outcome::ServerError {
            last = Some(Last::Failed(ApiError::from_upstream(
                &UpstreamError::Status(status),
            )));
            continue;
        }
        let status = StatusCode::from_u16(status).map_err(|_| {
            ApiError::new(
                ErrorType::UpstreamMalformed,
                "The upstream answered with an invalid status.",
            )
        })?;
        exchange.answered_by(upstream_id, model, id);
        let mut builder = HttpResponse::build(status);
        for header in headers {
            builder.insert_header(header);
        }
        insert_served_headers(exchange, &mut builder);
        let mut response = builder.body(body);
        if let Some(kind) = outcome.error_type() {
            exchange.relayed_error(kind);
            response.extensions_mut().insert(kind);
        }
        if status == StatusCode::NOT_FOUND {
            // Keep the first failure, if any: the response may be on that upstream.
            if !matches!(last, Some(Last::Failed(_))) {
                last = Some(Last::NotFound(response));
            }
            continue;
        }
        return Ok(Retrieved::Complete(response));
    }
    match last {
        Some(Last::NotFound(response)) => Ok(Retrieved::Complete(response)),
        Some(Last::Failed(error)) => Err(error),
        None => Err(ApiError::new(
            ErrorType::UpstreamSaturated,
            "Every upstream that could hold this response is at its concurrency limit; try \
             again shortly.",
        )),
    }
}

/// `responses/{id}` or `responses/{id}/input_items`, with the client's query string. The id
/// goes into the upstream's URL, so only the characters response ids are made of are taken:
/// nothing that could reach another path.
fn upstream_path(endpoint: Endpoint, req: &HttpRequest) -> Result<String, ApiError> {
    let id = req.match_info().get("id").unwrap_or("");
    let valid = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(ApiError::new(
            ErrorType::InvalidRequest,
            "The response id may only hold letters, digits, '_' and '-'.",
        )
        .with_param("response_id"));
    }
    let mut path = match endpoint {
        Endpoint::ResponseInputItems => format!("responses/{id}/input_items"),
        _ => format!("responses/{id}"),
    };
    let query = req.query_string();
    if !query.is_empty() {
        path.push('?');
        path.push_str(query);
    }
    Ok(path)
}

/// The OpenAI-kind upstreams to ask, in order: the one `x-mcp-upstream` names, or all.
fn candidates(req: &HttpRequest, state: &AppState) -> Result<Vec<UpstreamId>, ApiError> {
    let openai = state
        .upstreams
        .iter()
        .enumerate()
        .filter(|(_, u)| u.client.kind() == UpstreamKind::OpenAi);
    let Some(value) = req.headers().get(SERVED_BY_UPSTREAM.as_str()) else {
        let all: Vec<UpstreamId> = openai.map(|(i, _)| UpstreamId::new(i)).collect();
        if all.is_empty() {
            return Err(ApiError::new(
                ErrorType::NotFound,
                "No upstream of this gateway serves the Responses API.",
            ));
        }
        return Ok(all);
    };
    let name = value.to_str().unwrap_or("").trim();
    let pinned = openai
        .filter(|(_, u)| u.client.name() == name)
        .map(|(i, _)| UpstreamId::new(i))
        .next();
    match pinned {
        Some(id) => Ok(vec![id]),
        None => Err(ApiError::new(
            ErrorType::InvalidRequest,
            format!(
                "The `x-mcp-upstream` header names `{}`, which is not an upstream that serves \
                 the Responses API here.",
                crate::intake::truncate(name, crate::intake::MAX_ECHOED_MODEL)
            ),
        )),
    }
}
