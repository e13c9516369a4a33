//! What every request handler shares: the mode, the key, the fault profile in force, the
//! counters, the alert log and the source of randomness.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;

use crate::MockOptions;
use crate::alerts::AlertLog;
use crate::api_error::ApiError;
use crate::faults::{FaultError, FaultPatch, FaultProfile};
use crate::fixed::FixedReplies;
use crate::stats::Stats;

#[derive(Debug)]
pub(crate) struct AppState {
    /// Present in fixed mode.
    pub(crate) fixed: Option<FixedReplies>,
    /// The whole expected `Authorization` value, `Bearer KEY`, when a key is required.
    authorization: Option<String>,
    startup_profile: FaultProfile,
    profile: RwLock<FaultProfile>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) alerts: AlertLog,
    /// With a seed, every request's generator is forked from this one, so a run of
    /// sequential requests is reproducible.
    seeded: Option<Mutex<fastrand::Rng>>,
}

impl AppState {
    pub(crate) fn new(options: &MockOptions) -> Self {
        Self {
            fixed: options.fixed.then(FixedReplies::new),
            authorization: options.api_key.as_ref().map(|key| format!("Bearer {key}")),
            startup_profile: options.profile,
            profile: RwLock::new(options.profile),
            stats: Arc::default(),
            alerts: AlertLog::default(),
            seeded: options
                .seed
                .map(|seed| Mutex::new(fastrand::Rng::with_seed(seed))),
        }
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

    // The profile is a plain `Copy` value replaced whole, so a writer that panicked cannot
    // leave it torn: a poisoned lock is used as is.
    pub(crate) fn profile(&self) -> FaultProfile {
        *self.profile.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn patch_profile(&self, patch: &FaultPatch) -> Result<FaultProfile, FaultError> {
        let mut profile = self.profile.write().unwrap_or_else(PoisonError::into_inner);
        *profile = patch.apply(&profile)?;
        Ok(*profile)
    }

    pub(crate) fn reset_profile(&self) -> FaultProfile {
        let mut profile = self.profile.write().unwrap_or_else(PoisonError::into_inner);
        *profile = self.startup_profile;
        *profile
    }

    /// This request's random generator.
    pub(crate) fn request_rng(&self) -> fastrand::Rng {
        match &self.seeded {
            Some(root) => root.lock().unwrap_or_else(PoisonError::into_inner).fork(),
            None => fastrand::Rng::new(),
        }
    }
}
