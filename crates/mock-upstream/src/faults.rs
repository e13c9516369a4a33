//! The fault profile: how often and how badly the mock misbehaves. Set at start-up (flags or
//! [`crate::MockOptions`]) and changed at run time through `PUT /admin/faults`; each request
//! rolls its own [`FaultPlan`] from the profile in force when it arrived.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest `retry_after_secs` accepted: a day is more than any provider asks for, and keeps
/// "now + secs" well inside what an HTTP-date can express.
pub(crate) const MAX_RETRY_AFTER_SECS: u64 = 86_400;

/// Every fault knob. All zero (and `error_status` 500) means a well-behaved upstream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultProfile {
    /// Share of requests (0..=1) answered with `error_status` and an OpenAI error body.
    pub error_rate: f64,
    /// Status of injected errors (400..=599); a 429 carries `Retry-After: 1` unless
    /// `retry_after_secs` says otherwise.
    pub error_status: u16,
    /// When set, every injected error carries `Retry-After` with this many seconds
    /// (at most 86400).
    pub retry_after_secs: Option<u64>,
    /// Send `Retry-After` as an HTTP-date (now + the seconds) instead of a number of seconds;
    /// real providers send both forms.
    pub retry_after_http_date: bool,
    /// Delay before the response headers, in milliseconds.
    pub latency_ms: u64,
    /// Uniform spread around `latency_ms` (never below zero), in milliseconds.
    pub jitter_ms: u64,
    /// Share of requests (0..=1) that never get an answer.
    pub hang_rate: f64,
    /// Share of requests (0..=1) answered 200 with a truncated JSON body, or, in a stream, with
    /// one event whose data is not JSON.
    pub malformed_rate: f64,
    /// Streams: delay between the response headers and the first content chunk.
    pub ttft_ms: u64,
    /// Streams: delay between consecutive chunks after the first content chunk.
    pub token_interval_ms: u64,
    /// Share of streams (0..=1) dropped mid-way, without the final chunk or `[DONE]`.
    pub stream_cut_rate: f64,
}

impl Default for FaultProfile {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            error_status: 500,
            retry_after_secs: None,
            retry_after_http_date: false,
            latency_ms: 0,
            jitter_ms: 0,
            hang_rate: 0.0,
            malformed_rate: 0.0,
            ttft_ms: 0,
            token_interval_ms: 0,
            stream_cut_rate: 0.0,
        }
    }
}

/// A partial profile, as sent to `PUT /admin/faults`: the fields present replace those of the
/// profile in force. The fields are [`FaultProfile`]'s, plus `fail_next`; any other name is
/// refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    pub error_rate: Option<f64>,
    pub error_status: Option<u16>,
    /// Absent leaves it as it is; `null` unsets it; a number sets it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after_secs: Option<Option<u64>>,
    pub retry_after_http_date: Option<bool>,
    pub latency_ms: Option<u64>,
    pub jitter_ms: Option<u64>,
    pub hang_rate: Option<f64>,
    pub malformed_rate: Option<f64>,
    pub ttft_ms: Option<u64>,
    pub token_interval_ms: Option<u64>,
    pub stream_cut_rate: Option<f64>,
    /// Not a profile field: sets the countdown of failures kept beside the profile (the next
    /// N completion, chat and embedding requests fail); [`FaultPatch::apply`] leaves it to the
    /// caller.
    pub fail_next: Option<u64>,
}

/// A field that is present, `null` included: tells "unset it" (`Some(None)`) from "leave it"
/// (`None`, through `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// What `/admin/faults` shows and answers: the profile in force and, beside it, the failures
/// still due from `fail_next` (state that counts down, so not part of the `Copy` profile).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct FaultStatus {
    #[serde(flatten)]
    pub(crate) profile: FaultProfile,
    /// How many of the next completion, chat and embedding requests will fail.
    pub(crate) fail_next: u64,
}

/// A profile value out of its range; the message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// A rate outside 0..=1.
    #[error("`{field}` must be between 0 and 1, got {value}")]
    RateOutOfRange {
        /// The field's name.
        field: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// An error status that is not an HTTP error.
    #[error("`error_status` must be between 400 and 599, got {0}")]
    StatusOutOfRange(u16),
    /// A `Retry-After` too far away to be meant.
    #[error("`retry_after_secs` must be at most {MAX_RETRY_AFTER_SECS}, got {0}")]
    RetryAfterOutOfRange(u64),
}

impl FaultError {
    /// The name of the field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Self::RateOutOfRange { field, .. } => field,
            Self::StatusOutOfRange(_) => "error_status",
            Self::RetryAfterOutOfRange(_) => "retry_after_secs",
        }
    }
}

impl FaultProfile {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), FaultError> {
        let rates = [
            ("error_rate", self.error_rate),
            ("hang_rate", self.hang_rate),
            ("malformed_rate", self.malformed_rate),
            ("stream_cut_rate", self.stream_cut_rate),
        ];
        for (field, value) in rates {
            // `contains` is false for NaN too.
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultError::RateOutOfRange { field, value });
            }
        }
        if !(400..=599).contains(&self.error_status) {
            return Err(FaultError::StatusOutOfRange(self.error_status));
        }
        match self.retry_after_secs {
            Some(secs) if secs > MAX_RETRY_AFTER_SECS => {
                Err(FaultError::RetryAfterOutOfRange(secs))
            }
            _ => Ok(()),
        }
    }

    /// Rolls this request's faults. Knobs at zero consume no randomness, so a seeded run's
    /// content does not depend on which knobs exist.
    pub(crate) fn roll(&self, rng: &mut fastrand::Rng) -> FaultPlan {
        let mut hit = |rate: f64| rate > 0.0 && rng.f64() < rate;
        let hang = hit(self.hang_rate);
        let error = hit(self.error_rate);
        let malformed = hit(self.malformed_rate);
        let stream_cut = hit(self.stream_cut_rate);
        let latency_ms = if self.jitter_ms == 0 {
            self.latency_ms
        } else {
            let low = self.latency_ms.saturating_sub(self.jitter_ms);
            let high = self.latency_ms.saturating_add(self.jitter_ms);
            rng.u64(low..=high)
        };
        FaultPlan {
            latency: Duration::from_millis(latency_ms),
            hang,
            error,
            malformed,
            stream_cut,
        }
    }
}

impl FaultPatch {
    /// The profile with this patch's fields laid over `base`, if the result is valid.
    pub fn apply(&self, base: &FaultProfile) -> Result<FaultProfile, FaultError> {
        let merged = FaultProfile {
            error_rate: self.error_rate.unwrap_or(base.error_rate),
            error_status: self.error_status.unwrap_or(base.error_status),
            retry_after_secs: self.retry_after_secs.unwrap_or(base.retry_after_secs),
            retry_after_http_date: self
                .retry_after_http_date
                .unwrap_or(base.retry_after_http_date),
            latency_ms: self.latency_ms.unwrap_or(base.latency_ms),
            jitter_ms: self.jitter_ms.unwrap_or(base.jitter_ms),
            hang_rate: self.hang_rate.unwrap_or(base.hang_rate),
            malformed_rate: self.malformed_rate.unwrap_or(base.malformed_rate),
            ttft_ms: self.ttft_ms.unwrap_or(base.ttft_ms),
            token_interval_ms: self.token_interval_ms.unwrap_or(base.token_interval_ms),
            stream_cut_rate: self.stream_cut_rate.unwrap_or(base.stream_cut_rate),
        };
        merged.validate()?;
        Ok(merged)
    }
}

/// What one request will suffer, decided when it arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct FaultPlan {
    /// Wait this long before the response headers.
    pub(crate) latency: Duration,
    /// Never answer.
    pub(crate) hang: bool,
    /// Answer with the profile's error status.
    pub(crate) error: bool,
    /// Answer 200 with a body that is not valid JSON (one bad event in a stream).
    pub(crate) malformed: bool,
    /// Drop the stream mid-way.
    pub(crate) stream_cut: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_replaces_only_the_fields_it_names() {
        let base = FaultProfile {
            latency_ms: 40,
            error_status: 503,
            ..FaultProfile::default()
        };
        let patch = FaultPatch {
            error_rate: Some(0.25),
            ..FaultPatch::default()
        };
        let merged = patch.apply(&base).unwrap();
        assert_eq!(merged.error_rate, 0.25);
        assert_eq!(merged.latency_ms, 40);
        assert_eq!(merged.error_status, 503);
    }

    #[test]
    fn a_rate_above_one_is_rejected_naming_the_field() {
        let patch = FaultPatch {
            stream_cut_rate: Some(1.5),
            ..FaultPatch::default()
        };
        let error = patch.apply(&FaultProfile::default()).unwrap_err();
        assert_eq!(error.field(), "stream_cut_rate");
        assert!(error.to_string().contains("`stream_cut_rate`"), "{error}");
    }

    #[test]
    fn a_negative_rate_and_nan_are_rejected() {
        for value in [-0.1, f64::NAN] {
            let patch = FaultPatch {
                hang_rate: Some(value),
                ..FaultPatch::default()
            };
            assert_eq!(
                patch.apply(&FaultProfile::default()).unwrap_err().field(),
                "hang_rate"
            );
        }
    }

    #[test]
    fn an_error_status_outside_4xx_and_5xx_is_rejected() {
        for status in [200, 399, 600] {
            let patch = FaultPatch {
                error_status: Some(status),
                ..FaultPatch::default()
            };
            let error = patch.apply(&FaultProfile::default()).unwrap_err();
            assert_eq!(error, FaultError::StatusOutOfRange(status));
        }
        let patch = FaultPatch {
            error_status: Some(429),
            ..FaultPatch::default()
        };
        assert_eq!(
            patch.apply(&FaultProfile::default()).unwrap().error_status,
            429
        );
    }

    #[test]
    fn retry_after_is_left_by_an_absent_field_unset_by_null_and_bounded() {
        let base = FaultProfile {
            retry_after_secs: Some(7),
            ..FaultProfile::default()
        };
        let patch = |json: &str| serde_json::from_str::<FaultPatch>(json).unwrap();
        let left = patch(r#"{"error_rate": 0.5}"#).apply(&base).unwrap();
        assert_eq!(left.retry_after_secs, Some(7));
        let unset = patch(r#"{"retry_after_secs": null}"#).apply(&base).unwrap();
        assert_eq!(unset.retry_after_secs, None);
        let set = patch(r#"{"retry_after_secs": 30, "retry_after_http_date": true}"#)
            .apply(&base)
            .unwrap();
        assert_eq!(
            (set.retry_after_secs, set.retry_after_http_date),
            (Some(30), true)
        );
        let error = patch(r#"{"retry_after_secs": 86401}"#)
            .apply(&base)
            .unwrap_err();
        assert_eq!(error, FaultError::RetryAfterOutOfRange(86_401));
        assert_eq!(error.field(), "retry_after_secs");
    }

    #[test]
    fn a_patch_serialises_back_to_what_it_was_read_from() {
        for json in [r#"{"fail_next":3}"#, r#"{"retry_after_secs":null}"#] {
            let patch: FaultPatch = serde_json::from_str(json).unwrap();
            let again: FaultPatch =
                serde_json::from_value(serde_json::to_value(patch).unwrap()).unwrap();
            assert_eq!(again, patch, "{json}");
        }
    }

    #[test]
    fn the_status_shows_the_profile_fields_and_the_countdown_side_by_side() {
        let status = FaultStatus {
            profile: FaultProfile::default(),
            fail_next: 2,
        };
        let json = serde_json::to_value(status).unwrap();
        assert_eq!(json["fail_next"], 2);
        assert_eq!(json["error_status"], 500);
        assert_eq!(json["retry_after_secs"], serde_json::Value::Null);
    }

    #[test]
    fn unknown_patch_fields_are_refused_by_name() {
        let error = serde_json::from_str::<FaultPatch>(r#"{"error_rat": 1}"#).unwrap_err();
        assert!(error.to_string().contains("error_rat"), "{error}");
    }

    #[test]
    fn jitter_never_takes_latency_below_zero_nor_outside_its_band() {
        let profile = FaultProfile {
            latency_ms: 10,
            jitter_ms: 30,
            ..FaultProfile::default()
        };
        let mut rng = fastrand::Rng::with_seed(7);
        let mut seen_zero = false;
        for _ in 0..2000 {
            let latency = profile.roll(&mut rng).latency.as_millis();
            assert!(latency <= 40, "{latency}");
            seen_zero |= latency == 0;
        }
        assert!(
            seen_zero,
            "the band's low end is clamped to zero and reachable"
        );
    }

    #[test]
    fn certain_rates_always_fire_and_zero_rates_never_do() {
        let always = FaultProfile {
            error_rate: 1.0,
            hang_rate: 1.0,
            malformed_rate: 1.0,
            stream_cut_rate: 1.0,
            ..FaultProfile::default()
        };
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            let plan = always.roll(&mut rng);
            assert!(plan.error && plan.hang && plan.malformed && plan.stream_cut);
            assert_eq!(FaultProfile::default().roll(&mut rng), FaultPlan::default());
        }
    }
}
