//! The configuration in force, and replacing it while requests run.
//!
//! Every request takes the current [`AppState`] when it arrives and keeps it to its end, so a
//! reload never changes the rules under a running request and never drops one. A reload
//! (SIGHUP, or [`Gateway::reload_with`]) reads the settings again, builds a new state that
//! takes over the old one's upstream pools and slots, breakers and budgets, and swaps it in;
//! settings that cannot work leave the old state in force and say why in the log. Counted in
//! `mcp_server_config_reloads_total{result}` and
//! `mcp_server_config_last_reload_success_timestamp_seconds`, as Prometheus reports its own.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use mcp_core::metrics::ReloadResult;

use crate::configuration::{Secrets, Settings, SettingsError};
use crate::state::{AppState, BuildError, Shared};

/// Reads the settings and secrets again, the way the process first read them.
pub type Loader = Box<dyn Fn() -> Result<(Settings, Secrets), SettingsError> + Send + Sync>;

/// The current state, and what a reload needs.
pub struct Gateway {
    current: ArcSwap<AppState>,
    shared: Shared,
    /// The settings in force, to tell which changes need a restart.
    settings: Mutex<Settings>,
    loader: Mutex<Option<Loader>>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// Why a reload left the configuration as it was.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no settings source to reload from")]
    NoSource,
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl Gateway {
    pub fn new(state: AppState, shared: Shared, settings: Settings) -> Self {
        shared.metrics.gateway.record_config_load(None, unix_now());
        Self {
            current: ArcSwap::from_pointee(state),
            shared,
            settings: Mutex::new(settings),
            loader: Mutex::new(None),
        }
    }

    /// The state a request arriving now gets.
    pub fn current(&self) -> Arc<AppState> {
        self.current.load_full()
    }

    /// Where [`Gateway::reload`] reads the settings from.
    pub fn set_loader(&self, loader: Loader) {
        *lock(&self.loader) = Some(loader);
    }

    /// Reads the settings again and puts them in force, or keeps the old ones.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let loaded = {
            let loader = lock(&self.loader);
            let loader = loader.as_ref().ok_or(ReloadError::NoSource)?;
            loader()
        };
        match loaded {
            Ok((settings, secrets)) => self.reload_with(settings, &secrets),
            Err(e) => {
                self.failed(&e);
                Err(e.into())
            }
        }
    }

    /// Puts `settings` in force, or keeps the old ones if they cannot work.
    pub fn reload_with(&self, settings: Settings, secrets: &Secrets) -> Result<(), ReloadError> {
        let outcome = settings
            .validate()
            .map_err(ReloadError::from)
            .and_then(|()| {
                let previous = self.current.load();
                AppState::build(&settings, secrets, &self.shared, Some(&previous))
                    .map_err(ReloadError::from)
            });
        match outcome {
            Ok(state) => {
                let mut in_force = lock(&self.settings);
                for key in needs_restart(&in_force, &settings) {
                    tracing::warn!(key, "this setting changed and takes effect after a restart");
                }
                *in_force = settings;
                self.current.store(Arc::new(state));
                self.shared
                    .metrics
                    .gateway
                    .record_config_load(Some(ReloadResult::Success), unix_now());
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.failed(&e);
                Err(e)
            }
        }
    }

    fn failed(&self, e: &dyn std::error::Error) {
        self.shared
            .metrics
            .gateway
            .record_config_load(Some(ReloadResult::Failure), unix_now());
        tracing::error!(error = %e, "configuration reload failed; the previous configuration stays in force");
    }
}

/// Settings read only at start-up.
fn needs_restart(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.server.listen != new.server.listen {
        keys.push("server.listen");
    }
    if old.server.workers != new.server.workers {
        keys.push("server.workers");
    }
    if old.server.keep_alive_secs != new.server.keep_alive_secs {
        keys.push("server.keep_alive_secs");
    }
    if old.server.shutdown_timeout_secs != new.server.shutdown_timeout_secs {
        keys.push("server.shutdown_timeout_secs");
    }
    if old.upstream.health_check_interval_secs != new.upstream.health_check_interval_secs {
        keys.push("upstream.health_check_interval_secs");
    }
    if old.log.level != new.log.level || old.log.format != new.log.format {
        keys.push("log");
    }
    keys
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
