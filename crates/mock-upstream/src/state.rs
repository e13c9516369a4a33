//! What every request handler shares: the mode, the key, the instance name, the fault profile
//! in force and the `fail_next` countdown, the counters, the alert log and the source of
//! randomness.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use actix_web::HttpRequest;
use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};

use crate::MockOptions;
use crate::alerts::AlertLog;
use crate::api_error::ApiError;
use crate::fail_next::FailNext;
use crate::faults::{FaultError, FaultPatch, FaultProfile, FaultStatus};
use crate::fixed::FixedReplies;
use crate::prompt_cache::PromptCache;
use crate::responses::ResponseStore;
use crate::stats::Stats;

/// Names the mock that answered, so that a test running several (a primary and a fallback)
/// can tell which one served a request.
pub(crate) const INSTANCE_HEADER: HeaderName = HeaderName::from_static("x-mock-instance");

/// An instance name that cannot be sent as a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the instance name {0:?} must be non-empty printable ASCII without surrounding spaces")]
pub(crate) struct InvalidInstance(String);

/// The `x-mock-instance` value for `name`.
pub(crate) fn instance_header(name: &str) -> Result<HeaderValue, InvalidInstance> {
    let invalid = || InvalidInstance(name.to_owned());
    // A header parser strips surrounding whitespace, so such a name would not come back as
    // sent; and a client reads a header as text only when it is ASCII.
    let printable = name
        .bytes()
        .all(|byte| byte.is_ascii_graphic() || byte == b' ');
    if name.is_empty() || name.trim() != name || !printable {
        return Err(invalid());
    }
    HeaderValue::from_str(name).map_err(|_| invalid())
}

#[derive(Debug)]
pub(crate) struct AppState {
    /// Present in fixed mode.
    pub(crate) fixed: Option<FixedReplies>,
    /// The whole expected `Authorization` value, `Bearer KEY`, when a key is required.
    authorization: Option<String>,
    pub(crate) instance: String,
    /// `instance` as sent in [`INSTANCE_HEADER`], built once.
    pub(crate) instance_header: HeaderValue,
    startup_profile: FaultProfile,
    profile: RwLock<FaultProfile>,
    pub(crate) fail_next: FailNext,
    pub(crate) stats: Arc<Stats>,
    pub(crate) alerts: AlertLog,
    /// Prefixes seen, for the cached tokens of generated usage.
    pub(crate) prompt_cache: PromptCache,
    /// Generated Responses API answers, for retrieval and continuation.
    pub(crate) responses: ResponseStore,
    /// The key alone, for Anthropic's `x-api-key`.
    api_key: Option<String>,
    /// With a seed, every request's generator is forked from this one, so a run of
    /// sequential requests is reproducible.
    seeded: Option<Mutex<fastrand::Rng>>,
}

impl AppState {
    pub(crate) fn new(options: &MockOptions) -> Result<Self, InvalidInstance> {
        Ok(Self {
            fixed: options.fixed.then(FixedReplies::new),
            authorization: options.api_key.as_ref().map(|key| format!("Bearer {key}")),
            instance: options.instance.clone(),
            instance_header: instance_header(&options.instance)?,
            startup_profile: options.profile,
            profile: RwLock::new(options.profile),
            fail_next: FailNext::new(options.fail_next),
            stats: Arc::default(),
            alerts: AlertLog::default(),
            prompt_cache: PromptCache::default(),
            responses: ResponseStore::default(),
            api_key: options.api_key.clone(),
            seeded: options
                .seed
                .map(|seed| Mutex::new(fastrand::Rng::with_seed(seed))),
        })
    }

    /// Checks `Authorization: Bearer KEY` when a key is configured.
    pub(crate) fn authorize(&self, request: &HttpRequest) -> Result<(), ApiError> {
        let Some(expected) = &self.authorization else {
            return Ok(());
        };
        match request.headers().get(AUTHORIZATION) {
            Some(value) if value.as_bytes() == expected.as_bytes() => Ok(()),
            Some(_) => Err(ApiError::invalid_api_key(true)),
            None => Err(ApiError::invalid_api_key(false)),
        }
    }

    /// Checks Anthropic's `x-api-key: KEY` when a key is configured.
    pub(crate) fn authorize_anthropic(&self, request: &HttpRequest) -> Result<(), ApiError> {
        let Some(expected) = &self.api_key else {
            return Ok(());
        };
        match request.headers().get("x-api-key") {
            Some(value) if value.as_bytes() == expected.as_bytes() => Ok(()),
            provided => Err(ApiError::invalid_api_key(provided.is_some()).anthropic()),
        }
    }

    // The profile is a plain `Copy` value replaced whole, so a writer that panicked cannot
    // leave it torn: a poisoned lock is used as is.
    pub(crate) fn profile(&self) -> FaultProfile {
        *self.profile.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The profile and the countdown, as `/admin/faults` shows them.
    pub(crate) fn faults(&self) -> FaultStatus {
        let profile = self.profile.read().unwrap_or_else(PoisonError::into_inner);
        self.status(*profile)
    }

    /// Applies a patch whole or not at all. The countdown is set under the profile's write
    /// lock, so that an admin reader never sees one half of a patch without the other.
    pub(crate) fn patch_faults(&self, patch: &FaultPatch) -> Result<FaultStatus, FaultError> {
        let mut profile = self.profile.write().unwrap_or_else(PoisonError::into_inner);
        *profile = patch.apply(&profile)?;
        if let Some(count) = patch.fail_next {
            self.fail_next.set(count);
        }
        Ok(self.status(*profile))
    }

    /// Back to the start-up profile and countdown.
    pub(crate) fn reset_faults(&self) -> FaultStatus {
        let mut profile = self.profile.write().unwrap_or_else(PoisonError::into_inner);
        *profile = self.startup_profile;
        self.fail_next.reset();
        self.status(*profile)
    }

    fn status(&self, profile: FaultProfile) -> FaultStatus {
        FaultStatus {
            profile,
            fail_next: self.fail_next.remaining(),
        }
    }

    /// This request's random generator.
    pub(crate) fn request_rng(&self) -> fastrand::Rng {
        match &self.seeded {
            Some(root) => root.lock().unwrap_or_else(PoisonError::into_inner).fork(),
            None => fastrand::Rng::new(),
        }
    }
}
