//! OpenAI's rate-limit headers on successful answers, with plausible numbers, so the gateway's
//! `mcp_server_upstream_ratelimit_remaining` gauge has something to read. The mock never
//! enforces a limit: a 429 comes only from the `error_rate` fault.

use actix_web::HttpResponseBuilder;
use actix_web::http::header::{HeaderName, HeaderValue};

pub(crate) const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
pub(crate) const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
pub(crate) const REMAINING_REQUESTS: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining-requests");
pub(crate) const REMAINING_TOKENS: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining-tokens");

/// Requests per minute of the simulated account.
const REQUESTS_PER_MINUTE: u64 = 10_000;
/// Tokens per minute of the simulated account.
const TOKENS_PER_MINUTE: u64 = 2_000_000;

/// Adds the four headers for the `sequence`-th request (1-based), which used `tokens`.
/// The request budget counts down and starts over every [`REQUESTS_PER_MINUTE`] requests.
pub(crate) fn insert_headers(response: &mut HttpResponseBuilder, sequence: u64, tokens: u64) {
    let remaining_requests =
        REQUESTS_PER_MINUTE - 1 - (sequence.saturating_sub(1) % REQUESTS_PER_MINUTE);
    let remaining_tokens = TOKENS_PER_MINUTE.saturating_sub(tokens);
    response
        .insert_header((LIMIT_REQUESTS, HeaderValue::from(REQUESTS_PER_MINUTE)))
        .insert_header((LIMIT_TOKENS, HeaderValue::from(TOKENS_PER_MINUTE)))
        .insert_header((REMAINING_REQUESTS, HeaderValue::from(remaining_requests)))
        .insert_header((REMAINING_TOKENS, HeaderValue::from(remaining_tokens)));
}
