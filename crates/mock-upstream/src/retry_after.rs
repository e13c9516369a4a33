//! The `Retry-After` header of injected errors. Real providers send it as a number of seconds
//! or as an HTTP-date, and a gateway that honours it must read both; the profile picks which.

use std::time::{Duration, SystemTime};

use actix_web::http::header::{HeaderValue, HttpDate};

use crate::faults::FaultProfile;

/// What OpenAI sends with a 429 when the profile sets no delay.
const DEFAULT_429_SECS: u64 = 1;

/// The delay an injected error announces, decided with the profile and rendered when the
/// answer is built (the date form counts from then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryAfter {
    secs: u64,
    http_date: bool,
}

impl RetryAfter {
    /// What an injected error with `status` carries: the profile's `retry_after_secs` on every
    /// injected error when set, else 1 s on a 429 only.
    pub(crate) fn for_injected(profile: &FaultProfile, status: u16) -> Option<Self> {
        let secs = profile
            .retry_after_secs
            .or((status == 429).then_some(DEFAULT_429_SECS))?;
        Some(Self {
            secs,
            http_date: profile.retry_after_http_date,
        })
    }

    /// The header value at `now`: the seconds, or `now` + the seconds as an IMF-fixdate.
    pub(crate) fn header(self, now: SystemTime) -> Option<HeaderValue> {
        if !self.http_date {
            return Some(HeaderValue::from(self.secs));
        }
        // The seconds are validated to at most a day, so this neither overflows nor leaves the
        // years an HTTP-date can express; `None` would only drop the header, never panic.
        let at = now.checked_add(Duration::from_secs(self.secs))?;
        HeaderValue::from_str(&HttpDate::from(at).to_string()).ok()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::UNIX_EPOCH;

    use super::*;

    fn header(
        retry_after_secs: Option<u64>,
        retry_after_http_date: bool,
        status: u16,
        now: SystemTime,
    ) -> Option<HeaderValue> {
        let profile = FaultProfile {
            retry_after_secs,
            retry_after_http_date,
            ..FaultProfile::default()
        };
        RetryAfter::for_injected(&profile, status)?.header(now)
    }

    #[test]
    fn without_the_knob_only_a_429_says_one_second() {
        let now = SystemTime::now();
        assert_eq!(header(None, false, 429, now).unwrap(), "1");
        assert_eq!(header(None, false, 503, now), None);
    }

    #[test]
    fn the_knob_applies_to_every_injected_status() {
        let now = SystemTime::now();
        for status in [429, 500, 503] {
            assert_eq!(header(Some(30), false, status, now).unwrap(), "30");
        }
    }

    #[test]
    fn the_date_form_is_an_imf_fixdate_the_seconds_ahead() {
        // 2015-10-21T07:28:00Z, the example of RFC 9110.
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let value = header(Some(90), true, 503, now).unwrap();
        assert_eq!(value, "Wed, 21 Oct 2015 07:29:30 GMT");
        let parsed = HttpDate::from_str(value.to_str().unwrap()).unwrap();
        assert_eq!(SystemTime::from(parsed), now + Duration::from_secs(90));
        // The default 429 delay takes the date form too.
        let value = header(None, true, 429, now).unwrap();
        assert_eq!(value, "Wed, 21 Oct 2015 07:28:01 GMT");
    }
}
