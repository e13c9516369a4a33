//! Why an upstream attempt failed, classified so that the metric outcome and the client's
//! error follow from one value.

use crate::ErrorType;
use crate::upstream::Outcome;

/// The cause of a failed attempt, from the HTTP client.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A failed upstream attempt: no usable answer arrived. An answer with an error status is
/// classified by [`Outcome::from_status`]; `Status` carries one whose status is the failure
/// the client is told about (a 5xx, which the client sees as a 502).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("could not reach the upstream")]
    Connect(#[source] Cause),
    #[error("the upstream connection broke while the answer was read")]
    Interrupted(#[source] Cause),
    #[error("the upstream answered {0}")]
    Status(u16),
    /// The answer was larger than the gateway holds in memory; reading stopped at the limit.
    #[error("the upstream's answer exceeded {limit} bytes")]
    TooLarge { limit: usize },
}

impl UpstreamError {
    pub(crate) fn from_send(e: hyper_util::client::legacy::Error) -> Self {
        // The connector's own timeout (connect_timeout) surfaces as an I/O timed-out error.
        let timed_out =
            std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .any(|s| {
                s.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            });
        if timed_out {
            UpstreamError::Timeout
        } else {
            // Refused, reset before the headers, DNS or TLS failures: the upstream was not
            // reached in a usable way.
            UpstreamError::Connect(Box::new(e))
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            UpstreamError::Timeout => Outcome::Timeout,
            UpstreamError::Connect(_) => Outcome::ConnectError,
            UpstreamError::Interrupted(_) => Outcome::StreamInterrupted,
            UpstreamError::Status(s) => Outcome::from_status(*s),
            UpstreamError::TooLarge { .. } => Outcome::Malformed,
        }
    }

    pub fn error_type(&self) -> ErrorType {
        self.outcome()
            .error_type()
            .unwrap_or(ErrorType::UpstreamServerError)
    }
}

/// An upstream configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("upstream base_url is not usable: {0}")]
    BaseUrl(&'static str),
    #[error("the upstream API key contains characters that cannot be sent in a header")]
    ApiKey,
    #[error("anthropic_version contains characters that cannot be sent in a header")]
    AnthropicVersion,
    #[error("could not set up TLS with the platform's trust store")]
    Tls(#[source] rustls::Error),
}
