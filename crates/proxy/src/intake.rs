//! Turning an HTTP request into a proxied request: content type, size limit, the few fields
//! the gateway routes on, and the model check (the model must be served by an upstream of the
//! endpoint's kind). Everything else in the body is left alone. Errors are rendered in the
//! endpoint's API shape by the caller.

use actix_web::HttpMessage;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue};
use mcp_core::openai::RequestPeek;
use mcp_core::request_id::RequestId;
use mcp_core::upstream::{ANTHROPIC_BETA, ANTHROPIC_VERSION, UpstreamId, UpstreamKind};
use mcp_core::{Endpoint, ErrorType, ModelId};

use crate::error::ApiError;
use crate::state::AppState;

/// A request ready to be forwarded.
#[derive(Debug)]
pub struct ProxyRequest {
    /// The body exactly as the client sent it (or with `stream_options` added, for streams).
    pub body: Bytes,
    pub model: ModelId,
    /// The model name as requested.
    pub requested_model: String,
    pub stream: bool,
    /// The client asked for the usage chunk at the end of the stream itself.
    pub client_wants_usage: bool,
    /// The body has a `stream_options` object of its own.
    pub has_stream_options: bool,
    /// Responses API: the stored response (`previous_response_id`) or conversation this
    /// request builds on, which only the upstream that holds it can serve.
    pub stored_context: Option<String>,
    /// The upstream the request must go to: for a request with a stored context, the one its
    /// `x-mcp-upstream` header names.
    pub pinned: Option<UpstreamId>,
    /// The client's headers the upstream's API reads (Anthropic's `anthropic-version` and
    /// `anthropic-beta`); empty for OpenAI's endpoints, without allocating.
    pub forwarded: Vec<(HeaderName, HeaderValue)>,
    /// The request's id, sent upstream as `x-request-id`.
    pub request_id: Option<RequestId>,
    /// `max_completion_tokens` or `max_tokens`, when the client set one.
    pub max_output_tokens: Option<u64>,
}

/// Longest model name echoed into a log line or an error message.
pub const MAX_ECHOED_MODEL: usize = 128;

pub async fn read(
    endpoint: Endpoint,
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<ProxyRequest, ApiError> {
    check_content_type(req)?;
    let body = read_body(req, payload, state.max_body_bytes, state.body_timeout).await?;
    let peek = peek(&body)?;
    let Some(requested) = peek.model.as_deref() else {
        return Err(ApiError::new(
            ErrorType::InvalidRequest,
            "You must provide a model parameter.",
        )
        .with_param("model"));
    };
    let Some(model) = state.routes.catalog().resolve(requested) else {
        let shown = truncate(requested, MAX_ECHOED_MODEL);
        return Err(ApiError::new(
            ErrorType::ModelNotFound,
            format!("The model `{shown}` does not exist or is not served here."),
        )
        .with_param("model"));
    };
    let kind = endpoint.kind();
    if !state.routes.serves(model, kind) {
        // Known, but only to the other API: as unknown as it gets for this client, so a 404,
        // with a message that says where the model is served.
        let shown = truncate(requested, MAX_ECHOED_MODEL);
        let other = match kind {
            UpstreamKind::OpenAi => UpstreamKind::Anthropic,
            UpstreamKind::Anthropic => UpstreamKind::OpenAi,
        };
        return Err(ApiError::new(
            ErrorType::ModelNotFound,
            format!(
                "The model `{shown}` is not served by an {} upstream here, so not on {}; it is \
                 served through the {} API.",
                kind.api_name(),
                endpoint.route(),
                other.api_name(),
            ),
        )
        .with_param("model"));
    }
    let requested_model = requested.to_owned();
    let stream = peek.is_stream() && endpoint.can_stream();
    let client_wants_usage = peek.wants_stream_usage();
    let has_stream_options = peek.stream_options.is_some();
    let stored_context = match endpoint {
        Endpoint::Responses => peek.stored_context(),
        _ => None,
    };
    let pinned = match &stored_context {
        Some(_) => pinned_upstream(req, state, model, kind)?,
        None => None,
    };
    let forwarded = match kind {
        UpstreamKind::OpenAi => Vec::new(),
        UpstreamKind::Anthropic => forwarded_headers(req, &[ANTHROPIC_VERSION, ANTHROPIC_BETA]),
    };
    let max_output_tokens = peek.max_output_tokens();
    Ok(ProxyRequest {
        body,
        model,
        requested_model,
        stream,
        client_wants_usage,
        has_stream_options,
        stored_context,
        pinned,
        forwarded,
        request_id: req.extensions().get::<RequestId>().cloned(),
        max_output_tokens,
    })
}

/// The upstream named by the request's `x-mcp-upstream` header (the header each answer
/// carries), which must serve `model`, or a fallback of it, on the endpoint's kind.
pub fn pinned_upstream(
    req: &HttpRequest,
    state: &AppState,
    model: ModelId,
    kind: UpstreamKind,
) -> Result<Option<UpstreamId>, ApiError> {
    let Some(value) = req.headers().get(crate::relay::SERVED_BY_UPSTREAM.as_str()) else {
        return Ok(None);
    };
    let name = value.to_str().unwrap_or("").trim();
    let found = state
        .upstreams
        .iter()
        .position(|u| u.client.name() == name && u.client.kind() == kind)
        .map(UpstreamId::new);
    let routes = &state.routes;
    let serves = |u: UpstreamId| {
        routes.route(model).plan.iter().any(|m| {
            routes
                .route(*m)
                .deployments
                .iter()
                .any(|d| routes.deployment(*d).upstream == u)
        })
    };
    match found {
        Some(u) if serves(u) => Ok(Some(u)),
        _ => Err(ApiError::new(
            ErrorType::InvalidRequest,
            format!(
                "The `x-mcp-upstream` header names `{}`, which is not an upstream that serves \
                 this model here.",
                truncate(name, MAX_ECHOED_MODEL)
            ),
        )),
    }
}

/// The client's values of `names`, for the upstream.
fn forwarded_headers(req: &HttpRequest, names: &[HeaderName]) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for name in names {
        for value in req.headers().get_all(name.as_str()) {
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                out.push((name.clone(), value));
            }
        }
    }
    out
}

fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorType::UnsupportedMediaType,
            "The request body must be JSON, sent with `Content-Type: application/json`.",
        ))
    }
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    // A client that sends its body slowly holds a worker's memory and a connection; it gets
    // the whole body's time, not a time per chunk.
    let deadline = tokio::time::Instant::now() + timeout;
    let too_large = || {
        ApiError::new(
            ErrorType::PayloadTooLarge,
            format!("The request body is larger than the {limit} bytes this gateway accepts."),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    // Most bodies arrive in one chunk: keep it as it is and copy only when there are more.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    loop {
        let next = tokio::time::timeout_at(deadline, payload.next()).await;
        let chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                return Err(ApiError::new(
                    ErrorType::RequestTimeout,
                    format!(
                        "The request body did not arrive within {} s.",
                        timeout.as_secs()
                    ),
                ));
            }
        };
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorType::InvalidRequest,
                format!("The request body could not be read: {e}."),
            )
        })?;
        total += chunk.len();
        if total > limit {
            return Err(too_large());
        }
        match (&mut joined, first.take()) {
            (Some(buf), _) => buf.extend_from_slice(&chunk),
            (None, None) => first = Some(chunk),
            (None, Some(head)) => {
                let mut buf = BytesMut::with_capacity(declared.unwrap_or(head.len() + chunk.len()));
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&chunk);
                joined = Some(buf);
            }
        }
    }
    Ok(match (joined, first) {
        (Some(buf), _) => buf.freeze(),
        (None, Some(one)) => one,
        (None, None) => Bytes::new(),
    })
}

fn peek(body: &[u8]) -> Result<RequestPeek<'_>, ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::new(
                ErrorType::InvalidRequest,
                "The request body is empty; send a JSON object.",
            ));
        }
        // serde would read a JSON array as the fields in order; only an object is a request.
        Some(b) if *b != b'{' && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() => {
            return Err(ApiError::new(
                ErrorType::InvalidRequest,
                "The request body must be a JSON object.",
            ));
        }
        Some(_) => {}
    }
    // JSON is UTF-8 (RFC 8259 8.1). serde checks the strings it reads but skips the fields the
    // gateway does not read without looking inside them, so the whole body is checked here:
    // bytes that are not UTF-8 anywhere in it are the client's error, not the upstream's.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::new(
            ErrorType::InvalidRequest,
            format!(
                "We could not parse the JSON body of your request: it is not valid UTF-8 (at byte {}).",
                e.valid_up_to()
            ),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        let message = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                format!("We could not parse the JSON body of your request: {e}.")
            }
            Category::Data => {
                // Parse again, slowly, only to name the field that is wrong.
                let mut de = serde_json::Deserializer::from_slice(body);
                match serde_path_to_error::deserialize::<_, RequestPeek<'_>>(&mut de) {
                    Err(located) if located.path().to_string() != "." => {
                        format!("Invalid value for `{}`: {}.", located.path(), e)
                    }
                    _ => format!("The request body must be a JSON object: {e}."),
                }
            }
        };
        ApiError::new(ErrorType::InvalidRequest, message)
    })
}

/// `s`, cut to `max` characters (marked with `...`) for echoing in a log line or a message.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_is_reported_as_a_parse_error() {
        let e = peek(b"{\"model\": ").unwrap_err();
        assert!(e.to_string().contains("could not parse"), "{e}");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_in_any_field() {
        let e = peek(b"{\"model\":\"m\",\"messages\":[{\"content\":\"a\xFF\xFEb\"}]}").unwrap_err();
        assert_eq!(e.kind(), ErrorType::InvalidRequest);
        assert!(
            e.to_string().contains("not valid UTF-8 (at byte 38)"),
            "{e}"
        );
        assert!(peek("{\"model\":\"m\",\"messages\":\"caf\u{e9}\"}".as_bytes()).is_ok());
    }

    #[test]
    fn a_wrongly_typed_field_is_named() {
        let e = peek(br#"{"model":"m","stream":"yes"}"#).unwrap_err();
        assert!(e.to_string().contains("`stream`"), "{e}");
        let e = peek(br#"{"model":42}"#).unwrap_err();
        assert!(e.to_string().contains("`model`"), "{e}");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        let e = peek(b"[1,2]").unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{e}");
        let e = peek(br#"["gpt-4o-mini"]"#).unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{e}");
        let e = peek(b"\"text\"").unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{e}");
        let e = peek(b"  ").unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn long_model_names_are_truncated_on_a_character_boundary() {
        assert_eq!(truncate("ab", 5), "ab");
        assert_eq!(truncate("ééé", 2), "éé...");
    }
}
