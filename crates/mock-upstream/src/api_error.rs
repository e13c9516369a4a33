//! Errors in OpenAI's shape, `{"error":{"message","type","param","code"}}`, or on the Messages
//! endpoints in Anthropic's, `{"type":"error","error":{"type","message"}}`: the mock's own
//! rejections (bad request, bad key, unknown path) and the injected `error_rate` faults (a 529
//! is Anthropic's `overloaded_error`).

use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use bytes::Bytes;
use serde_json::json;

use crate::fixtures;
use crate::ratelimit::REMAINING_REQUESTS;
use crate::retry_after::RetryAfter;

/// One error answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<&'static str>,
    /// Injected errors only, per the profile's `Retry-After` knobs.
    retry_after: Option<RetryAfter>,
    /// Rendered in Anthropic's shape.
    anthropic: bool,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
            anthropic: false,
        }
    }

    /// The same error, in Anthropic's shape (and with Anthropic's words for a bad key).
    pub(crate) fn anthropic(mut self) -> Self {
        if self.code == Some("invalid_api_key") {
            self.message = "invalid x-api-key".to_owned();
        }
        self.anthropic = true;
        self
    }

    /// A continuation of a response this instance does not hold, as OpenAI refuses it.
    pub(crate) fn previous_response_not_found(id: &str) -> Self {
        Self {
            code: Some("previous_response_not_found"),
            ..Self::invalid_request(
                format!("Previous response with id '{id}' not found."),
                Some("previous_response_id"),
            )
        }
    }

    /// A stored response this instance does not hold.
    pub(crate) fn response_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Response with id '{id}' not found."),
        )
    }

    /// A 400 `invalid_request_error`, naming the parameter at fault when there is one.
    pub(crate) fn invalid_request(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            param: param.map(str::to_owned),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    /// A required parameter is absent, in OpenAI's words.
    pub(crate) fn missing_param(param: &str) -> Self {
        Self::invalid_request(
            format!("Missing required parameter: '{param}'."),
            Some(param),
        )
    }

    /// A parameter has the wrong type or value, in OpenAI's words.
    pub(crate) fn invalid_param(param: &str, expected: &str) -> Self {
        Self::invalid_request(
            format!("Invalid value for '{param}': expected {expected}."),
            Some(param),
        )
    }

    /// A 401 for a missing or wrong key. The key itself is never echoed.
    pub(crate) fn invalid_api_key(provided: bool) -> Self {
        let message = if provided {
            "Incorrect API key provided."
        } else {
            "You didn't provide an API key. You need to provide your API key in an \
             Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        };
        Self {
            code: Some("invalid_api_key"),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
        }
    }

    /// A path (or method) the mock does not serve, in OpenAI's words.
    pub(crate) fn unknown_url(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Invalid URL ({method} {path})"),
        )
    }

    /// An injected fault (`error_rate`, `fail_next`): the body a real provider sends with that
    /// status, and the `Retry-After` value the profile asks for.
    pub(crate) fn injected(status: u16, retry_after: Option<RetryAfter>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (kind, code, message) = match status.as_u16() {
            401 => (
                "invalid_request_error",
                Some("invalid_api_key"),
                "Incorrect API key provided.",
            ),
            403 => (
                "invalid_request_error",
                Some("unsupported_country_region_territory"),
                "Country, region, or territory not supported.",
            ),
            404 => (
                "invalid_request_error",
                Some("model_not_found"),
                "The model does not exist or you do not have access to it.",
            ),
            429 => (
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached for requests. Please try again in 1s.",
            ),
            500 => (
                "server_error",
                None,
                "The server had an error while processing your request. Sorry about that!",
            ),
            503 => (
                "server_error",
                None,
                "The engine is currently overloaded, please try again later.",
            ),
            529 => ("overloaded_error", None, "Overloaded"),
            400..=499 => ("invalid_request_error", None, "The request was rejected."),
            _ => ("server_error", None, "The upstream failed to answer."),
        };
        Self {
            code,
            retry_after,
            ..Self::new(status, kind, message)
        }
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// Anthropic's error type for the status.
    fn anthropic_type(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    fn body(&self) -> Bytes {
        if self.anthropic {
            let body = json!({
                "type": "error",
                "error": {"type": self.anthropic_type(), "message": self.message},
            });
            return Bytes::from(body.to_string());
        }
        if self.status == StatusCode::INTERNAL_SERVER_ERROR && self.kind == "server_error" {
            // The fixture is the canonical upstream 500.
            return Bytes::from_static(fixtures::ERROR.as_bytes());
        }
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        Bytes::from(body.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if let Some(value) = self.retry_after.and_then(|r| r.header(SystemTime::now())) {
            response.insert_header((RETRY_AFTER, value));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.insert_header((REMAINING_REQUESTS, HeaderValue::from_static("0")));
        }
        response.body(self.body())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn body_of(error: &ApiError) -> Value {
        serde_json::from_slice(&error.body()).unwrap()
    }

    #[test]
    fn an_injected_500_is_the_error_fixture() {
        let fixture: Value = serde_json::from_str(fixtures::ERROR).unwrap();
        assert_eq!(body_of(&ApiError::injected(500, None)), fixture);
    }

    #[test]
    fn an_injected_429_says_rate_limit_exceeded() {
        let body = body_of(&ApiError::injected(429, None));
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        assert_eq!(body["error"]["type"], "requests");
    }

    #[test]
    fn an_injected_529_in_anthropics_shape_says_overloaded() {
        let body = body_of(&ApiError::injected(529, None).anthropic());
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "overloaded_error");
        assert_eq!(body["error"]["message"], "Overloaded");
    }

    #[test]
    fn a_missing_parameter_is_named_in_param() {
        let body = body_of(&ApiError::missing_param("model"));
        assert_eq!(body["error"]["param"], "model");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], Value::Null);
    }
}
