//! How one upstream attempt ended, and everything that follows from it: the `outcome` label,
//! whether the upstream was reachable, whether the attempt counts against the deployment's
//! circuit breaker, whether another attempt may be made, and the error the client gets when
//! no other attempt is. This is the one place that maps an attempt's result to policy.

use crate::ErrorType;

/// How one upstream attempt ended; the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    /// A 4xx other than 429: the client's request was refused by the upstream.
    ClientError,
    /// 429: the upstream's own rate limit.
    RateLimited,
    /// 5xx other than 529.
    ServerError,
    /// 529: the upstream is overloaded for everyone (Anthropic's `overloaded_error`), or it
    /// said so inside a stream.
    Overloaded,
    /// No answer (or no complete answer) within the deadline.
    Timeout,
    /// The upstream could not be reached: refused, reset before the headers, DNS, TLS.
    ConnectError,
    /// A 2xx that is not JSON, an unreadable stream event, or an answer past the size limit.
    Malformed,
    /// The connection broke while the answer was read, or the upstream reported an error
    /// inside a stream.
    StreamInterrupted,
    /// The client went away first; says nothing about the upstream.
    Cancelled,
}

impl Outcome {
    pub const ALL: [Outcome; 10] = [
        Outcome::Success,
        Outcome::ClientError,
        Outcome::RateLimited,
        Outcome::ServerError,
        Outcome::Overloaded,
        Outcome::Timeout,
        Outcome::ConnectError,
        Outcome::Malformed,
        Outcome::StreamInterrupted,
        Outcome::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ClientError => "client_error",
            Outcome::RateLimited => "rate_limited",
            Outcome::ServerError => "server_error",
            Outcome::Overloaded => "overloaded",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::Malformed => "malformed",
            Outcome::StreamInterrupted => "stream_interrupted",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// The outcome of an attempt that got an answer with this status.
    pub const fn from_status(status: u16) -> Outcome {
        match status {
            200..=399 => Outcome::Success,
            429 => Outcome::RateLimited,
            529 => Outcome::Overloaded,
            400..=499 => Outcome::ClientError,
            _ => Outcome::ServerError,
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }

    /// What the attempt says about whether the upstream can be reached: `Some(false)` when it
    /// could not be, `Some(true)` when it answered, `None` when the attempt says nothing.
    pub const fn reachability(self) -> Option<bool> {
        match self {
            Outcome::Timeout | Outcome::ConnectError => Some(false),
            Outcome::Cancelled => None,
            _ => Some(true),
        }
    }

    /// Whether the attempt counts as a failure of the deployment for its circuit breaker.
    /// The client's own 4xx never does; a 429 does not either (the deployment sits out its
    /// `Retry-After` instead); a cancelled attempt says nothing.
    pub const fn trips_breaker(self) -> bool {
        matches!(
            self,
            Outcome::ServerError
                | Outcome::Overloaded
                | Outcome::Timeout
                | Outcome::ConnectError
                | Outcome::Malformed
                | Outcome::StreamInterrupted
        )
    }

    /// Whether the attempt counts as a success for the circuit breaker.
    pub const fn heals_breaker(self) -> bool {
        matches!(self, Outcome::Success | Outcome::ClientError)
    }

    /// The error the client gets when this attempt's failure is the last word. Answers the
    /// gateway relays as they are (2xx, the upstream's own 4xx) have none.
    pub const fn error_type(self) -> Option<ErrorType> {
        match self {
            Outcome::Success | Outcome::Cancelled => None,
            Outcome::ClientError => Some(ErrorType::UpstreamClientError),
            Outcome::RateLimited => Some(ErrorType::UpstreamRateLimited),
            Outcome::ServerError => Some(ErrorType::UpstreamServerError),
            Outcome::Overloaded => Some(ErrorType::UpstreamOverloaded),
            Outcome::Timeout => Some(ErrorType::UpstreamTimeout),
            Outcome::ConnectError | Outcome::StreamInterrupted => {
                Some(ErrorType::UpstreamUnavailable)
            }
            Outcome::Malformed => Some(ErrorType::UpstreamMalformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_position_in_all() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
    }

    #[test]
    fn the_clients_own_errors_and_rate_limits_never_trip_a_breaker() {
        for o in Outcome::ALL {
            let expected = matches!(
                o,
                Outcome::ServerError
                    | Outcome::Overloaded
                    | Outcome::Timeout
                    | Outcome::ConnectError
                    | Outcome::Malformed
                    | Outcome::StreamInterrupted
            );
            assert_eq!(o.trips_breaker(), expected, "{o:?}");
            assert!(!(o.trips_breaker() && o.heals_breaker()), "{o:?}");
        }
        assert!(!Outcome::from_status(404).trips_breaker());
        assert!(!Outcome::from_status(429).trips_breaker());
        assert!(Outcome::from_status(503).trips_breaker());
        assert_eq!(Outcome::from_status(529), Outcome::Overloaded);
        assert!(Outcome::from_status(529).trips_breaker());
    }

    #[test]
    fn only_unanswered_attempts_mark_an_upstream_unreachable() {
        assert_eq!(Outcome::ConnectError.reachability(), Some(false));
        assert_eq!(Outcome::Timeout.reachability(), Some(false));
        assert_eq!(Outcome::ServerError.reachability(), Some(true));
        assert_eq!(Outcome::Cancelled.reachability(), None);
    }

    #[test]
    fn every_failure_has_an_error_for_the_client() {
        for o in Outcome::ALL {
            let relayed = matches!(o, Outcome::Success | Outcome::Cancelled);
            assert_eq!(o.error_type().is_none(), relayed, "{o:?}");
        }
        assert_eq!(
            Outcome::RateLimited.error_type().map(ErrorType::status),
            Some(429)
        );
        // An overloaded upstream's 529 reaches the client as a 529, as a 429 stays a 429.
        assert_eq!(
            Outcome::Overloaded.error_type().map(ErrorType::status),
            Some(529)
        );
    }
}
