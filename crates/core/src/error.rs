//! The closed classification of every error the gateway answers.
//!
//! Each failure is classified once, by who is at fault (the client, the upstream, or the
//! gateway itself). The HTTP status, the OpenAI error `type`, the `code` in the body and the
//! `error_type` metric label are all derived from that one value, so they cannot disagree.

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Client,
    Upstream,
    Gateway,
}

/// Every kind of error the gateway answers; the `error_type` label of `mcp_server_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    InvalidRequest,
    UnsupportedMediaType,
    PayloadTooLarge,
    ModelNotFound,
    NotFound,
    MethodNotAllowed,
    UpstreamClientError,
    UpstreamRateLimited,
    /// The upstream's 529 (overloaded), passed through with its body.
    UpstreamOverloaded,
    UpstreamServerError,
    UpstreamUnavailable,
    UpstreamTimeout,
    UpstreamMalformed,
    StreamInterrupted,
    /// Every upstream that could serve the request is at its `max_in_flight` with a full
    /// waiting room, or the wait for a slot timed out.
    UpstreamSaturated,
    /// Every deployment that could serve the request has its circuit breaker open (or is
    /// sitting out a 429), so none was tried.
    CircuitOpen,
    /// The client did not send its request's body in time.
    RequestTimeout,
    /// The request's headers are larger than the gateway accepts.
    HeadersTooLarge,
    /// A missing or unknown client key.
    InvalidApiKey,
    /// The client's key may not use the model; the client is told it does not exist.
    ModelNotAllowed,
    /// The client's key, or the gateway as a whole, is over a rate or concurrency limit.
    RateLimitExceeded,
    /// The client's key has spent its budget for the period.
    InsufficientQuota,
    /// The shared store that keeps limits and budgets could not be asked, and the policy is
    /// to refuse rather than decide without it.
    LimitsUnavailable,
    Internal,
}

impl ErrorType {
    pub const ALL: [ErrorType; 24] = [
        ErrorType::InvalidRequest,
        ErrorType::UnsupportedMediaType,
        ErrorType::PayloadTooLarge,
        ErrorType::ModelNotFound,
        ErrorType::NotFound,
        ErrorType::MethodNotAllowed,
        ErrorType::UpstreamClientError,
        ErrorType::UpstreamRateLimited,
        ErrorType::UpstreamOverloaded,
        ErrorType::UpstreamServerError,
        ErrorType::UpstreamUnavailable,
        ErrorType::UpstreamTimeout,
        ErrorType::UpstreamMalformed,
        ErrorType::StreamInterrupted,
        ErrorType::UpstreamSaturated,
        ErrorType::CircuitOpen,
        ErrorType::RequestTimeout,
        ErrorType::HeadersTooLarge,
        ErrorType::InvalidApiKey,
        ErrorType::ModelNotAllowed,
        ErrorType::RateLimitExceeded,
        ErrorType::InsufficientQuota,
        ErrorType::LimitsUnavailable,
        ErrorType::Internal,
    ];

    /// The metric label value, also sent as the error's `code`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::UnsupportedMediaType => "unsupported_media_type",
            ErrorType::PayloadTooLarge => "payload_too_large",
            ErrorType::ModelNotFound => "model_not_found",
            ErrorType::NotFound => "not_found",
            ErrorType::MethodNotAllowed => "method_not_allowed",
            ErrorType::UpstreamClientError => "upstream_client_error",
            ErrorType::UpstreamRateLimited => "upstream_rate_limited",
            ErrorType::UpstreamOverloaded => "upstream_overloaded",
            ErrorType::UpstreamServerError => "upstream_server_error",
            ErrorType::UpstreamUnavailable => "upstream_unavailable",
            ErrorType::UpstreamTimeout => "upstream_timeout",
            ErrorType::UpstreamMalformed => "upstream_malformed",
            ErrorType::StreamInterrupted => "stream_interrupted",
            ErrorType::UpstreamSaturated => "upstream_saturated",
            ErrorType::CircuitOpen => "circuit_open",
            ErrorType::RequestTimeout => "request_timeout",
            ErrorType::HeadersTooLarge => "headers_too_large",
            ErrorType::InvalidApiKey => "invalid_api_key",
            ErrorType::ModelNotAllowed => "model_not_allowed",
            ErrorType::RateLimitExceeded => "rate_limit_exceeded",
            ErrorType::InsufficientQuota => "insufficient_quota",
            ErrorType::LimitsUnavailable => "limits_unavailable",
            ErrorType::Internal => "internal",
        }
    }

    pub const fn fault(self) -> Fault {
        match self {
            ErrorType::InvalidRequest
            | ErrorType::UnsupportedMediaType
            | ErrorType::PayloadTooLarge
            | ErrorType::ModelNotFound
            | ErrorType::NotFound
            | ErrorType::MethodNotAllowed
            | ErrorType::UpstreamClientError
            | ErrorType::RequestTimeout
            | ErrorType::HeadersTooLarge
            | ErrorType::InvalidApiKey
            | ErrorType::ModelNotAllowed
            | ErrorType::RateLimitExceeded
            | ErrorType::InsufficientQuota => Fault::Client,
            ErrorType::UpstreamRateLimited
            | ErrorType::UpstreamOverloaded
            | ErrorType::UpstreamServerError
            | ErrorType::UpstreamUnavailable
            | ErrorType::UpstreamTimeout
            | ErrorType::UpstreamMalformed
            | ErrorType::StreamInterrupted
            | ErrorType::UpstreamSaturated
            | ErrorType::CircuitOpen
            | ErrorType::LimitsUnavailable => Fault::Upstream,
            ErrorType::Internal => Fault::Gateway,
        }
    }

    /// The status the gateway answers with when it produces this error itself.
    /// Upstream client errors keep the upstream's own status; 400 is the fallback.
    pub const fn status(self) -> u16 {
        match self {
            ErrorType::InvalidRequest | ErrorType::UpstreamClientError => 400,
            ErrorType::UnsupportedMediaType => 415,
            ErrorType::PayloadTooLarge => 413,
            ErrorType::ModelNotFound | ErrorType::NotFound | ErrorType::ModelNotAllowed => 404,
            ErrorType::InvalidApiKey => 401,
            ErrorType::RequestTimeout => 408,
            ErrorType::HeadersTooLarge => 431,
            ErrorType::RateLimitExceeded | ErrorType::InsufficientQuota => 429,
            ErrorType::MethodNotAllowed => 405,
            ErrorType::UpstreamRateLimited => 429,
            ErrorType::UpstreamOverloaded => 529,
            ErrorType::UpstreamServerError
            | ErrorType::UpstreamUnavailable
            | ErrorType::UpstreamMalformed
            | ErrorType::StreamInterrupted => 502,
            ErrorType::UpstreamTimeout => 504,
            ErrorType::UpstreamSaturated
            | ErrorType::CircuitOpen
            | ErrorType::LimitsUnavailable => 503,
            ErrorType::Internal => 500,
        }
    }

    /// The `code` in the body: the label value, except where the client must not learn more
    /// than OpenAI would tell it (a model its key may not use does not exist, for it).
    pub const fn code(self) -> &'static str {
        match self {
            ErrorType::ModelNotAllowed => ErrorType::ModelNotFound.as_str(),
            other => other.as_str(),
        }
    }

    /// The OpenAI error `type` for the body.
    pub const fn openai_type(self) -> &'static str {
        match self {
            ErrorType::ModelNotFound | ErrorType::NotFound | ErrorType::ModelNotAllowed => {
                "not_found_error"
            }
            ErrorType::RateLimitExceeded => "requests",
            ErrorType::InsufficientQuota => "insufficient_quota",
            ErrorType::UpstreamRateLimited => "rate_limit_error",
            ErrorType::UpstreamOverloaded => "overloaded_error",
            _ => match self.fault() {
                Fault::Client => "invalid_request_error",
                Fault::Upstream => "upstream_error",
                Fault::Gateway => "server_error",
            },
        }
    }

    /// Anthropic's error `type` for the body, on the Messages endpoints. Anthropic's SDKs
    /// pick the exception class by status; the type is what a client logs.
    pub const fn anthropic_type(self) -> &'static str {
        match self {
            ErrorType::PayloadTooLarge => "request_too_large",
            ErrorType::ModelNotFound | ErrorType::NotFound | ErrorType::ModelNotAllowed => {
                "not_found_error"
            }
            ErrorType::InvalidApiKey => "authentication_error",
            ErrorType::UpstreamRateLimited
            | ErrorType::RateLimitExceeded
            | ErrorType::InsufficientQuota => "rate_limit_error",
            ErrorType::UpstreamOverloaded
            | ErrorType::UpstreamSaturated
            | ErrorType::CircuitOpen => "overloaded_error",
            _ => match self.fault() {
                Fault::Client => "invalid_request_error",
                Fault::Upstream | Fault::Gateway => "api_error",
            },
        }
    }

    /// Classifies a status code the gateway did not produce itself (a framework error).
    pub const fn from_status(status: u16) -> ErrorType {
        match status {
            404 => ErrorType::NotFound,
            405 => ErrorType::MethodNotAllowed,
            408 => ErrorType::RequestTimeout,
            413 => ErrorType::PayloadTooLarge,
            431 => ErrorType::HeadersTooLarge,
            415 => ErrorType::UnsupportedMediaType,
            400..=499 => ErrorType::InvalidRequest,
            _ => ErrorType::Internal,
        }
    }

    /// Position in [`ErrorType::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for e in ErrorType::ALL {
            let s = e.as_str();
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert!(seen.insert(s), "duplicate label {s}");
        }
    }

    #[test]
    fn index_matches_position_in_all() {
        for (i, e) in ErrorType::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }

    #[test]
    fn upstream_faults_answer_with_gateway_statuses_and_client_faults_with_4xx() {
        for e in ErrorType::ALL {
            match e.fault() {
                Fault::Client => assert!((400..500).contains(&e.status()), "{e:?}"),
                Fault::Upstream => assert!(e.status() == 429 || e.status() >= 502, "{e:?}"),
                Fault::Gateway => assert_eq!(e.status(), 500),
            }
        }
    }

    #[test]
    fn framework_statuses_map_to_the_closed_set() {
        assert_eq!(ErrorType::from_status(413), ErrorType::PayloadTooLarge);
        assert_eq!(ErrorType::from_status(418), ErrorType::InvalidRequest);
        assert_eq!(ErrorType::from_status(503), ErrorType::Internal);
    }
}
