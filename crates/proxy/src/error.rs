//! The errors the gateway answers itself, in the shape of the API the client speaks: OpenAI's
//! `{"error":{"message","type","param","code"}}`, or on the Messages endpoints Anthropic's
//! `{"type":"error","error":{"type","message"}}`, so that each API's SDK raises its usual
//! exception for the status.
//!
//! An [`ApiError`] carries its [`ErrorType`]; the response it renders carries the same value in
//! its extensions, where the error-accounting middleware reads it to count the error. So the
//! status, the body and the metric label come from one classification.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use mcp_core::openai::ErrorBody;
use mcp_core::upstream::{UpstreamError, UpstreamKind};
use mcp_core::{Endpoint, ErrorType, anthropic};

/// Which API's error shape a response takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorShape {
    #[default]
    OpenAi,
    Anthropic,
}

impl ErrorShape {
    pub fn of(endpoint: Endpoint) -> Self {
        match endpoint.kind() {
            UpstreamKind::OpenAi => ErrorShape::OpenAi,
            UpstreamKind::Anthropic => ErrorShape::Anthropic,
        }
    }

    /// For a path the gateway may not serve: Anthropic's clients are the ones under
    /// `/v1/messages`.
    pub fn of_path(path: &str) -> Self {
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            ErrorShape::Anthropic
        } else {
            ErrorShape::OpenAi
        }
    }
}

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    kind: ErrorType,
    message: Cow<'static, str>,
    param: Option<&'static str>,
    /// The body's `type`, when not the classification's own (OpenAI's 429s say which limit).
    openai_type: Option<&'static str>,
    /// Headers the response carries besides the body's (`Retry-After`, the attempts).
    headers: Vec<(HeaderName, HeaderValue)>,
    shape: ErrorShape,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            param: None,
            openai_type: None,
            headers: Vec::new(),
            shape: ErrorShape::OpenAi,
        }
    }

    /// Renders in the shape of `shape`'s API.
    pub fn in_shape(mut self, shape: ErrorShape) -> Self {
        self.shape = shape;
        self
    }

    /// Sets the body's `type`.
    pub fn with_type(mut self, openai_type: &'static str) -> Self {
        self.openai_type = Some(openai_type);
        self
    }

    /// Adds a header to the response.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Names the request field the error is about.
    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn kind(&self) -> ErrorType {
        self.kind
    }

    /// The error for a failed upstream attempt. The message says what happened, not how the
    /// upstream is reached: no URL, host or header.
    pub fn from_upstream(e: &UpstreamError) -> Self {
        let message: Cow<'static, str> = match e {
            UpstreamError::Timeout => "The upstream did not answer in time.".into(),
            UpstreamError::Connect(_) => "The upstream could not be reached.".into(),
            UpstreamError::Interrupted(_) => {
                "The connection to the upstream broke before the answer was complete.".into()
            }
            UpstreamError::Status(s) => format!("The upstream failed with status {s}.").into(),
            UpstreamError::TooLarge { limit } => format!(
                "The upstream's answer was larger than the gateway's limit of {limit} bytes."
            )
            .into(),
        };
        Self::new(e.error_type(), message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let openai_type = self.openai_type.unwrap_or(self.kind.openai_type());
        let mut response = render(
            self.status_code(),
            self.kind,
            &self.message,
            self.param,
            self.shape,
            openai_type,
        );
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response
    }
}

/// Renders an error body in `shape` with `status`, tagged with `kind` for the error
/// accounting.
pub fn error_response(
    status: StatusCode,
    kind: ErrorType,
    message: &str,
    param: Option<&str>,
    shape: ErrorShape,
) -> HttpResponse {
    render(status, kind, message, param, shape, kind.openai_type())
}

fn render(
    status: StatusCode,
    kind: ErrorType,
    message: &str,
    param: Option<&str>,
    shape: ErrorShape,
    openai_type: &str,
) -> HttpResponse {
    let body = match shape {
        ErrorShape::OpenAi => ErrorBody::new(message, openai_type, param, kind.code()).to_json(),
        ErrorShape::Anthropic => anthropic::error_body(kind.anthropic_type(), message),
    };
    let mut response = HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(body);
    response.extensions_mut().insert(kind);
    response
}
