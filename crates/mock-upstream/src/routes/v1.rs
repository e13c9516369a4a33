//! The OpenAI- and Anthropic-compatible endpoints. Every request takes the same path: count it,
//! check the key, roll its faults, wait out the latency (or hang), validate the body, inject
//! an error, then answer from the fixtures (fixed mode) or a fresh generation, possibly
//! malformed or as a stream with its own faults. Every answer, an error included, names the
//! instance; on the Messages endpoints errors are in Anthropic's shape. Stored responses are
//! read back and deleted without faults.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use actix_web::web::{self, Bytes, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::api_error::ApiError;
use crate::embeddings;
use crate::faults::{FaultPlan, FaultProfile};
use crate::fixed::FixedReplies;
use crate::fixtures;
use crate::generate::{Generation, TextKind};
use crate::ratelimit;
use crate::request::{self, EmbeddingsRequest, TextRequest};
use crate::retry_after::RetryAfter;
use crate::sse::{self, Pacing, SseBody, SseEvent};
use crate::state::{AppState, INSTANCE_HEADER};
use crate::stats::InFlight;
use crate::{messages, responses};

use super::stored;

pub(super) fn configure(config: &mut ServiceConfig) {
    let endpoints = [
        ("/v1/chat/completions", Endpoint::Text(TextKind::Chat)),
        ("/v1/completions", Endpoint::Text(TextKind::Completion)),
        ("/v1/embeddings", Endpoint::Embeddings),
        ("/v1/models", Endpoint::Models),
        ("/v1/responses", Endpoint::Responses),
        ("/v1/messages", Endpoint::Messages),
        ("/v1/messages/count_tokens", Endpoint::CountTokens),
    ];
    for (path, endpoint) in endpoints {
        let method = match endpoint {
            Endpoint::Models => web::get(),
            _ => web::post(),
        };
        config.service(
            web::resource(path)
                .route(method.to(
                    move |state: Data<AppState>, request: HttpRequest, body: Bytes| {
                        answer(endpoint, state, request, body)
                    },
                ))
                .default_service(web::to(wrong_method)),
        );
    }
    config
        .service(
            web::resource("/v1/responses/{id}")
                .route(web::get().to(stored::response))
                .route(web::delete().to(stored::response))
                .default_service(web::to(wrong_method)),
        )
        .service(
            web::resource("/v1/responses/{id}/input_items")
                .route(web::get().to(stored::input_items))
                .default_service(web::to(wrong_method)),
        );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Text(TextKind),
    Embeddings,
    Models,
    Responses,
    Messages,
    CountTokens,
}

impl Endpoint {
    fn is_anthropic(self) -> bool {
        matches!(self, Endpoint::Messages | Endpoint::CountTokens)
    }
}

/// A generated-mode request that passed validation.
#[derive(Debug)]
enum Valid {
    Text(TextKind, TextRequest),
    Embeddings(EmbeddingsRequest),
    Models,
    Responses(responses::ResponsesRequest),
    Messages(messages::MessagesRequest),
    CountTokens(u64),
}

/// The answer before faults shape its delivery.
enum Reply {
    Json {
        body: Bytes,
        tokens: u64,
    },
    Stream {
        events: Arc<[SseEvent]>,
        tokens: u64,
    },
}

async fn answer(
    endpoint: Endpoint,
    state: Data<AppState>,
    request: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let in_flight = state.stats.begin_request();
    state.stats.note_request_id(
        request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    let mut response = match respond(endpoint, &state, &request, &body, in_flight).await {
        Ok(response) => response,
        Err(error) if endpoint.is_anthropic() => error.anthropic().error_response(),
        Err(error) => error.error_response(),
    };
    name_instance(&state, &mut response);
    tracing::debug!(
        path = request.path(),
        status = response.status().as_u16(),
        "answered"
    );
    response
}

async fn respond(
    endpoint: Endpoint,
    state: &AppState,
    request: &HttpRequest,
    body: &[u8],
    in_flight: InFlight,
) -> Result<HttpResponse, ApiError> {
    if endpoint.is_anthropic() {
        state.authorize_anthropic(request)?;
        if !request.headers().contains_key("anthropic-version") {
            return Err(ApiError::invalid_request(
                "anthropic-version: header is required",
                None,
            ));
        }
    } else {
        state.authorize(request)?;
    }
    let profile = state.profile();
    let mut rng = state.request_rng();
    let plan = profile.roll(&mut rng);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    if plan.hang {
        tracing::debug!(path = request.path(), "hanging on purpose");
        // Never answers; the server drops this handler when the client closes the connection
        // (half-closed connections are not allowed, see `MockUpstream::run`).
        std::future::pending::<()>().await;
    }
    let reply = match &state.fixed {
        Some(fixed) => {
            let stream = match endpoint {
                Endpoint::Models => false,
                _ => request::probe_stream(body)?,
            };
            inject_error(endpoint, plan, &profile, state)?;
            fixed_reply(endpoint, fixed, stream, plan.malformed)
        }
        None => {
            let valid = validate(endpoint, body, state)?;
            inject_error(endpoint, plan, &profile, state)?;
            generated_reply(valid, plan.malformed, state, &mut rng)
        }
    };
    let mut response = HttpResponse::Ok();
    // The provider's own request id, which support asks for and the gateway logs: OpenAI's
    // `x-request-id`, Anthropic's `request-id`.
    let id_header = if endpoint.is_anthropic() {
        "request-id"
    } else {
        "x-request-id"
    };
    response.insert_header((id_header, format!("req_{:032x}", in_flight.sequence())));
    match reply {
        Reply::Json { body, tokens } => {
            ratelimit::insert_headers(&mut response, in_flight.sequence(), tokens);
            // A proper prefix of a JSON object is never valid JSON.
            let body = if plan.malformed {
                body.slice(..body.len() / 2)
            } else {
                body
            };
            Ok(response
                .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
                .body(body))
        }
        Reply::Stream { events, tokens } => {
            ratelimit::insert_headers(&mut response, in_flight.sequence(), tokens);
            let cut_at = if plan.stream_cut {
                sse::cut_point(&events, &mut rng)
            } else {
                None
            };
            let pacing = Pacing {
                first_token: Duration::from_millis(profile.ttft_ms),
                between_tokens: Duration::from_millis(profile.token_interval_ms),
            };
            Ok(response
                .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/event-stream")))
                .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")))
                .streaming(SseBody::new(events, cut_at, pacing, in_flight)))
        }
    }
}

/// The injected errors, once the request is known to be valid: a failure of the `fail_next`
/// countdown, else the `error_rate` roll. The countdown is consumed here, not on arrival, so
/// that each unit becomes exactly one error answer: a request refused as invalid, hung, or
/// abandoned by its client during the latency takes none. `/v1/models` never takes one: it is
/// what health probes read, and must not eat a failure meant for a request.
fn inject_error(
    endpoint: Endpoint,
    plan: FaultPlan,
    profile: &FaultProfile,
    state: &AppState,
) -> Result<(), ApiError> {
    let forced = endpoint != Endpoint::Models && state.fail_next.take();
    if forced || plan.error {
        let status = profile.error_status;
        let retry_after = RetryAfter::for_injected(profile, status);
        return Err(ApiError::injected(status, retry_after));
    }
    Ok(())
}

/// Adds `x-mock-instance` to an answer.
pub(super) fn name_instance(state: &AppState, response: &mut HttpResponse) {
    response
        .headers_mut()
        .insert(INSTANCE_HEADER, state.instance_header.clone());
}

fn validate(endpoint: Endpoint, body: &[u8], state: &AppState) -> Result<Valid, ApiError> {
    Ok(match endpoint {
        Endpoint::Text(kind) => Valid::Text(kind, request::parse_text(kind, body)?),
        Endpoint::Embeddings => Valid::Embeddings(request::parse_embeddings(body)?),
        Endpoint::Models => Valid::Models,
        Endpoint::Responses => Valid::Responses(responses::parse(body, &state.responses)?),
        Endpoint::Messages => Valid::Messages(messages::parse(body, false)?),
        Endpoint::CountTokens => Valid::CountTokens(messages::parse(body, true)?.input_tokens),
    })
}

fn models_reply() -> Reply {
    Reply::Json {
        body: Bytes::from_static(fixtures::MODELS.as_bytes()),
        tokens: 0,
    }
}

/// Fixed mode: the prebuilt fixture bytes or events; `malformed` picks the stream script with
/// the corrupt event (a JSON body is cut short on the way out instead).
fn fixed_reply(endpoint: Endpoint, fixed: &FixedReplies, stream: bool, malformed: bool) -> Reply {
    match endpoint {
        Endpoint::Text(kind) if stream => fixed_stream(fixed.stream(kind), malformed),
        Endpoint::Text(kind) => fixed_json(fixed.text(kind)),
        Endpoint::Embeddings => fixed_json(&fixed.embedding),
        Endpoint::Models => models_reply(),
        Endpoint::Responses if stream => fixed_stream(&fixed.responses_stream, malformed),
        Endpoint::Messages if stream => fixed_stream(&fixed.messages_stream, malformed),
        Endpoint::Responses => fixed_json(&fixed.responses),
        Endpoint::Messages => fixed_json(&fixed.messages),
        Endpoint::CountTokens => fixed_json(&fixed.count_tokens),
    }
}

fn fixed_json(fixed: &crate::fixed::FixedBody) -> Reply {
    Reply::Json {
        body: fixed.bytes.clone(),
        tokens: fixed.tokens,
    }
}

fn fixed_stream(replay: &crate::fixed::FixedStream, malformed: bool) -> Reply {
    let events = if malformed {
        &replay.corrupt
    } else {
        &replay.events
    };
    Reply::Stream {
        events: Arc::clone(events),
        tokens: replay.tokens,
    }
}

/// Generated mode: a fresh answer shaped by the request.
fn generated_reply(
    valid: Valid,
    malformed: bool,
    state: &AppState,
    rng: &mut fastrand::Rng,
) -> Reply {
    let stream = |mut events: Vec<SseEvent>, tokens: u64| {
        if malformed {
            sse::insert_corrupt_event(&mut events);
        }
        Reply::Stream {
            events: events.into(),
            tokens,
        }
    };
    let json = |body: &serde_json::Value, tokens: u64| Reply::Json {
        body: Bytes::from(body.to_string()),
        tokens,
    };
    match valid {
        Valid::Responses(request) => {
            let generated =
                responses::generate(&request, &state.prompt_cache, &state.responses, rng);
            if request.stream {
                stream(generated.events(), generated.total_tokens)
            } else {
                json(&generated.body, generated.total_tokens)
            }
        }
        Valid::Messages(request) => {
            let generated = messages::generate(&request, &state.prompt_cache, rng);
            if request.stream {
                stream(generated.events(), generated.total_tokens)
            } else {
                json(&generated.body, generated.total_tokens)
            }
        }
        Valid::CountTokens(input_tokens) => {
            json(&serde_json::json!({"input_tokens": input_tokens}), 0)
        }
        Valid::Text(kind, text) => {
            let mut generation = Generation::new(
                kind,
                text.model.clone(),
                text.prompt_tokens,
                text.max_tokens,
                rng,
            );
            if let Some((tokens, prefix)) = &text.prefix {
                let read = state.prompt_cache.lookup(&text.model, prefix, *tokens).read;
                generation.cached_tokens = crate::prompt_cache::openai_cached(read);
            }
            let tokens = generation.total_tokens();
            if text.stream {
                stream(generation.events(text.include_usage), tokens)
            } else {
                json(&generation.body(), tokens)
            }
        }
        Valid::Embeddings(embeddings) => Reply::Json {
            body: Bytes::from(embeddings::body(
                &embeddings.model,
                embeddings.count,
                embeddings.dimensions,
                embeddings.prompt_tokens,
                embeddings.base64,
                rng,
            )),
            tokens: embeddings.prompt_tokens,
        },
        Valid::Models => models_reply(),
    }
}

/// OpenAI answers a known path with the wrong method as it answers an unknown path.
async fn wrong_method(state: Data<AppState>, request: HttpRequest) -> HttpResponse {
    let mut response =
        ApiError::unknown_url(request.method().as_str(), request.path()).error_response();
    name_instance(&state, &mut response);
    response
}
