//! Whether a failed attempt is followed by another, where, and after how long.
//!
//! The answer depends only on facts about the request so far, so it is a table-tested pure
//! function ([`RetryPolicy::decide`]). Waiting, the retry budget and the deadline are the
//! caller's: it asks the budget before any further attempt and never waits past the deadline.

use std::time::{Duration, SystemTime};

use crate::upstream::Outcome;

/// Which failed attempts may be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOn {
    /// Failures without a usable status: connect errors, timeouts, malformed answers, broken
    /// answers.
    pub outcomes: Vec<Outcome>,
    /// Answers with these statuses (429 and 5xx, 529 included).
    pub statuses: Vec<u16>,
}

impl Default for RetryOn {
    fn default() -> Self {
        Self {
            outcomes: vec![Outcome::ConnectError, Outcome::Timeout],
            statuses: vec![429, 500, 502, 503, 504, 529],
        }
    }
}

impl RetryOn {
    /// Whether an attempt that ended with `outcome` (and `status`, when an answer came) may
    /// be retried.
    pub fn allows(&self, outcome: Outcome, status: Option<u16>) -> bool {
        match status {
            Some(status)
                if matches!(
                    outcome,
                    Outcome::RateLimited | Outcome::ServerError | Outcome::Overloaded
                ) =>
            {
                self.statuses.contains(&status)
            }
            _ => self.outcomes.contains(&outcome),
        }
    }
}

/// The retry settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, fallbacks included.
    pub max_attempts: u32,
    /// Attempts on one model's deployments before its fallback is tried.
    pub max_attempts_per_model: u32,
    pub retry_on: RetryOn,
    /// Backoff before attempt n+1 on a deployment already tried: a uniformly random wait in
    /// `[0, min(backoff_max, backoff_base * 2^n))` ("full jitter").
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// The longest `Retry-After` the gateway waits for; past it, the next deployment or
    /// model is tried at once.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_attempts_per_model: 2,
            retry_on: RetryOn::default(),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            retry_after_cap: Duration::from_secs(10),
        }
    }
}

/// A failed attempt, as far as the policy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub outcome: Outcome,
    /// The answer's status, if an answer came.
    pub status: Option<u16>,
    /// The answer's `Retry-After`, if it had one.
    pub retry_after: Option<Duration>,
}

/// Where the request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Attempts made so far, this one included.
    pub attempts: u32,
    /// Attempts made on the current model, this one included.
    pub attempts_on_model: u32,
    /// The current model has a deployment this request has not tried and that would take it.
    pub untried_deployment: bool,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Another attempt on the same model after `wait` (zero when it goes to a deployment not
    /// tried yet).
    Retry { wait: Duration },
    /// Move on to the next fallback model at once (if there is none, give up).
    NextModel,
    /// The failure is the answer.
    GiveUp,
}

impl RetryPolicy {
    /// Decides what follows `failure`. `jitter` is a uniform random number in `[0, 1)`.
    pub fn decide(&self, failure: &Failure, progress: &Progress, jitter: f64) -> Decision {
        if !self.retry_on.allows(failure.outcome, failure.status) {
            return Decision::GiveUp;
        }
        if progress.attempts >= self.max_attempts {
            return Decision::GiveUp;
        }
        if progress.attempts_on_model >= self.max_attempts_per_model {
            return Decision::NextModel;
        }
        // Another deployment of the same model is not held to this one's Retry-After.
        if progress.untried_deployment {
            return Decision::Retry {
                wait: Duration::ZERO,
            };
        }
        match failure.retry_after {
            Some(wait) if wait > self.retry_after_cap => Decision::NextModel,
            Some(wait) => Decision::Retry { wait },
            None => Decision::Retry {
                wait: self.backoff(progress.attempts_on_model, jitter),
            },
        }
    }

    /// The full-jitter backoff after the `n`-th attempt on a model (1-based).
    pub fn backoff(&self, n: u32, jitter: f64) -> Duration {
        let doublings = n.saturating_sub(1).min(30);
        let ceiling = self
            .backoff_base
            .saturating_mul(1 << doublings)
            .min(self.backoff_max);
        ceiling.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date in
/// the past means "now"; anything unreadable means no advice.
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Some providers send fractional seconds.
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn failure(outcome: Outcome, status: Option<u16>, retry_after: Option<u64>) -> Failure {
        Failure {
            outcome,
            status,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    fn progress(attempts: u32, on_model: u32, untried: bool) -> Progress {
        Progress {
            attempts,
            attempts_on_model: on_model,
            untried_deployment: untried,
        }
    }

    #[test]
    fn decisions_follow_the_table() {
        let p = RetryPolicy::default();
        let server = |s| failure(Outcome::ServerError, Some(s), None);
        let cases: Vec<(Failure, Progress, Decision)> = vec![
            // What is not retryable is the answer.
            (
                failure(Outcome::ClientError, Some(400), None),
                progress(1, 1, true),
                Decision::GiveUp,
            ),
            (server(501), progress(1, 1, true), Decision::GiveUp),
            (
                failure(Outcome::Malformed, None, None),
                progress(1, 1, true),
                Decision::GiveUp,
            ),
            // Another deployment of the model is tried at once.
            (
                server(503),
                progress(1, 1, true),
                Decision::Retry {
                    wait: Duration::ZERO,
                },
            ),
            (
                failure(Outcome::RateLimited, Some(429), Some(60)),
                progress(1, 1, true),
                Decision::Retry {
                    wait: Duration::ZERO,
                },
            ),
            // The same deployment again after its Retry-After, within the cap...
            (
                failure(Outcome::RateLimited, Some(429), Some(3)),
                progress(1, 1, false),
                Decision::Retry {
                    wait: Duration::from_secs(3),
                },
            ),
            // ...and past the cap, the next model at once.
            (
                failure(Outcome::RateLimited, Some(429), Some(11)),
                progress(1, 1, false),
                Decision::NextModel,
            ),
            // The model's attempts are used up: its fallback.
            (
                failure(Outcome::ConnectError, None, None),
                progress(2, 2, true),
                Decision::NextModel,
            ),
            // The request's attempts are used up.
            (
                failure(Outcome::Timeout, None, None),
                progress(3, 1, true),
                Decision::GiveUp,
            ),
        ];
        for (f, pr, expected) in cases {
            assert_eq!(p.decide(&f, &pr, 0.5), expected, "{f:?} {pr:?}");
        }
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_capped_ceiling() {
        let p = RetryPolicy {
            backoff_base: 100 * MS,
            backoff_max: 300 * MS,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1, 0.999_999).as_millis(), 99);
        assert_eq!(p.backoff(2, 0.5), 100 * MS);
        assert_eq!(p.backoff(3, 1.0), 300 * MS);
        assert_eq!(p.backoff(30, 1.0), 300 * MS);
        assert_eq!(p.backoff(3, 0.0), Duration::ZERO);
        let decided = p.decide(
            &failure(Outcome::ServerError, Some(502), None),
            &progress(1, 1, false),
            0.5,
        );
        assert_eq!(decided, Decision::Retry { wait: 50 * MS });
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let parse = |v: &str| parse_retry_after(v.as_bytes(), now);
        assert_eq!(parse("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(
            parse("Wed, 21 Oct 2015 07:28:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse("Wed, 21 Oct 2015 07:27:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse("soon"), None);
        assert_eq!(parse("-3"), None);
        assert_eq!(parse("1e400"), None);
    }

    #[test]
    fn the_retry_on_list_names_statuses_and_failures_apart() {
        let on = RetryOn::default();
        assert!(on.allows(Outcome::RateLimited, Some(429)));
        assert!(on.allows(Outcome::ServerError, Some(502)));
        // An overloaded upstream's 529 is retried by default, on another deployment first.
        assert!(on.allows(Outcome::Overloaded, Some(529)));
        assert!(!on.allows(Outcome::ServerError, Some(500 + 1)));
        assert!(on.allows(Outcome::ConnectError, None));
        assert!(!on.allows(Outcome::StreamInterrupted, None));
        assert!(!on.allows(Outcome::ClientError, Some(404)));
    }
}
