//! Admission: who is asking, and whether they may, before any upstream is bothered.
//!
//! In the order the relay applies it: the client key (before the body is read: an unknown
//! client costs no body read), the concurrency limits (the key's and the gateway's), then,
//! once the body has said which model and how many tokens, the model the key may use and
//! one decision of the [`Limiter`](mcp_core::limits::Limiter) over the rate limits and the
//! budget. Every refusal is an OpenAI-shaped error with `Retry-After` and OpenAI's
//! `x-ratelimit-*` headers describing the client's own limits, and is counted in
//! `mcp_server_rate_limited_total`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue, RETRY_AFTER};
use mcp_core::limits::{Admitted, Headroom, KeyId, LimitKind, Refused, Scope};
use mcp_core::{ErrorType, ModelId};

use crate::error::ApiError;
use crate::state::AppState;

/// A concurrency limit: slots taken without waiting, or refused.
#[derive(Debug)]
pub struct Gate {
    limit: Option<u32>,
    in_use: AtomicU32,
}

impl Gate {
    pub fn new(limit: Option<u32>) -> Self {
        Self {
            limit,
            in_use: AtomicU32::new(0),
        }
    }

    pub fn limit(&self) -> Option<u32> {
        self.limit
    }

    fn enter(self: &Arc<Self>) -> Option<GateSlot> {
        let limit = self.limit?;
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| GateSlot(Arc::clone(self)))
    }
}

/// A slot of a [`Gate`], given back when dropped (when the request ends, streams included).
#[derive(Debug)]
pub struct GateSlot(Arc<Gate>);

impl Drop for GateSlot {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::AcqRel);
    }
}

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The key a request presents: `Authorization: Bearer <key>`, or `x-api-key` as Anthropic's
/// clients send it. `Ok(None)` when the gateway has no keys (it is open).
pub fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Option<KeyId>, ApiError> {
    if state.keys.is_empty() {
        return Ok(None);
    }
    let headers = req.headers();
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .or_else(|| {
            headers
                .get(X_API_KEY)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty());
    let Some(presented) = presented else {
        return Err(ApiError::new(
            ErrorType::InvalidApiKey,
            "You didn't provide an API key. Send it as `Authorization: Bearer <key>`.",
        ));
    };
    // The key is never echoed: not even a prefix of it.
    state
        .keys
        .authenticate(presented)
        .map(Some)
        .ok_or_else(|| ApiError::new(ErrorType::InvalidApiKey, "Incorrect API key provided."))
}

/// Takes the concurrency slots of the key and of the gateway, or refuses.
pub fn occupy(state: &AppState, key: Option<KeyId>) -> Result<Vec<GateSlot>, ApiError> {
    let mut slots = Vec::new();
    let gates = key
        .map(|k| (Scope::Key(k), &state.gates.keys[k.index()]))
        .into_iter()
        .chain(std::iter::once((Scope::Global, &state.gates.global)));
    for (scope, gate) in gates {
        if gate.limit.is_none() {
            continue;
        }
        match gate.enter() {
            Some(slot) => slots.push(slot),
            None => {
                state
                    .metrics
                    .keys
                    .record_rate_limited(LimitKind::Concurrency, state.key_label(scope));
                return Err(ApiError::new(
                    ErrorType::RateLimitExceeded,
                    "Too many concurrent requests; wait for one to finish.",
                )
                .with_header(RETRY_AFTER, HeaderValue::from_static("1")));
            }
        }
    }
    Ok(slots)
}

/// Whether `key` may use `model`; a model it may not use does not exist, for it.
pub fn check_model(
    state: &AppState,
    key: Option<KeyId>,
    model: ModelId,
    requested: &str,
) -> Result<(), ApiError> {
    let allowed = key
        .and_then(|k| state.allowed_models[k.index()].as_ref())
        .is_none_or(|models| models.contains(&model));
    if allowed {
        return Ok(());
    }
    let shown = crate::intake::truncate(requested, crate::intake::MAX_ECHOED_MODEL);
    Err(ApiError::new(
        ErrorType::ModelNotAllowed,
        format!("The model `{shown}` does not exist or is not served here."),
    )
    .with_param("model"))
}

/// One decision over the rate limits and the budget, reserving `tokens`.
pub async fn admit(
    state: &AppState,
    key: Option<KeyId>,
    tokens: u64,
) -> Result<Admitted, ApiError> {
    let refused = match state.limiter.get().admit(key, tokens).await {
        Ok(admitted) => return Ok(admitted),
        Err(refused) => refused,
    };
    state
        .metrics
        .keys
        .record_rate_limited(refused.limit, state.key_label(refused.scope));
    Err(refusal(state, &refused))
}

fn refusal(state: &AppState, refused: &Refused) -> ApiError {
    let whose = match refused.scope {
        Scope::Key(k) => format!("the key `{}`", state.keys.name(k)),
        Scope::Global => "this gateway".to_owned(),
    };
    let wait = format_duration(refused.retry_after);
    if refused.limit == LimitKind::Unavailable {
        return ApiError::new(
            ErrorType::LimitsUnavailable,
            "The store that keeps this gateway's limits cannot be reached; try again shortly.",
        )
        .with_header(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    let (kind, openai_type, message) = match refused.limit {
        LimitKind::Budget => (
            ErrorType::InsufficientQuota,
            "insufficient_quota",
            format!(
                "You exceeded the budget of {whose} for this period; it starts again in {wait}."
            ),
        ),
        LimitKind::Tokens => (
            ErrorType::RateLimitExceeded,
            "tokens",
            format!(
                "Rate limit reached for {whose} on tokens per minute. Please try again in {wait}."
            ),
        ),
        LimitKind::Requests | LimitKind::Concurrency | LimitKind::Unavailable => (
            ErrorType::RateLimitExceeded,
            "requests",
            format!(
                "Rate limit reached for {whose} on requests per minute. Please try again in {wait}."
            ),
        ),
    };
    let secs = refused.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut error = ApiError::new(kind, message)
        .with_type(openai_type)
        .with_header(RETRY_AFTER, HeaderValue::from(secs));
    for (name, value) in ratelimit_headers(&refused.headroom) {
        error = error.with_header(name, value);
    }
    error
}

/// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the client's limits.
pub fn ratelimit_headers(headroom: &Headroom) -> Vec<(HeaderName, HeaderValue)> {
    const REQUESTS: [HeaderName; 3] = [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ];
    const TOKENS: [HeaderName; 3] = [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ];
    let mut headers = Vec::with_capacity(6);
    for (window, [limit, remaining, reset]) in
        [(&headroom.requests, REQUESTS), (&headroom.tokens, TOKENS)]
    {
        let Some(w) = window else {
            continue;
        };
        headers.push((limit, HeaderValue::from(w.limit)));
        headers.push((remaining, HeaderValue::from(w.remaining)));
        if let Ok(value) = HeaderValue::try_from(format_duration(w.reset)) {
            headers.push((reset, value));
        }
    }
    headers
}

/// A duration as OpenAI writes its resets: `6m0s`, `1.5s`, `20ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let rounded = (secs * 10.0).round() / 10.0;
        return format!("{rounded}s");
    }
    let whole = d.as_secs();
    let (h, m, s) = (whole / 3_600, whole % 3_600 / 60, whole % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_openai_writes_them() {
        assert_eq!(format_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(format_duration(Duration::from_millis(1_500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(format_duration(Duration::from_secs(3_661)), "1h1m1s");
    }

    #[test]
    fn a_gate_refuses_past_its_limit_and_takes_back_its_slots() {
        let gate = Arc::new(Gate::new(Some(2)));
        let a = gate.enter().unwrap();
        let _b = gate.enter().unwrap();
        assert!(gate.enter().is_none());
        drop(a);
        assert!(gate.enter().is_some());
        assert!(
            Arc::new(Gate::new(None)).enter().is_none(),
            "no limit, no slot"
        );
    }
}
