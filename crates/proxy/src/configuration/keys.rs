//! Client keys, limits and budgets: `keys` (who may use the gateway, for which models, how
//! fast and for how much), `limits` (the gateway's own limits and the tokens reserved for a
//! request that does not say) and `metrics.key_label`.
//!
//! A key's secret is never a setting: the file holds its SHA-256 digest (`sha256`), or names
//! the environment variable that holds the secret (`key_env`), read into [`Secrets`].

use mcp_core::limits::keys::{digest, parse_digest};
use mcp_core::limits::{Budget, BudgetPeriod, KeyDigest, KeyLimits, KeyTable, Quota};
use serde::Deserialize;

use super::{Secrets, Settings, SettingsError};

/// One client key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The only thing about a key that becomes a label or a log field.
    pub name: String,
    /// The SHA-256 digest of the secret, 64 hexadecimal digits (`printf %s "$KEY" | sha256sum`).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Or: the environment variable that holds the secret.
    #[serde(default)]
    pub key_env: Option<String>,
    /// The models (names or aliases) the key may use; unset: every model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub limits: LimitSettings,
    #[serde(default)]
    pub budget: Option<BudgetSettings>,
}

/// Rate and concurrency limits; each unset means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
    pub concurrent_requests: Option<u32>,
}

impl LimitSettings {
    pub fn quota(&self) -> Quota {
        Quota {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
        }
    }
}

/// A key's budget in US dollars per UTC day or month.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSettings {
    pub usd: f64,
    pub period: BudgetPeriod,
}

/// The `limits` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// The gateway's own limits, over every request whatever its key.
    pub global: LimitSettings,
    /// Tokens reserved for a request that sets neither `max_tokens` nor
    /// `max_completion_tokens`, until its real usage is known.
    pub default_max_tokens: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            global: LimitSettings::default(),
            default_max_tokens: 4096,
        }
    }
}

/// The `metrics` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Per-key series (`key` = the key's name). Off, every key counts as `_all`: for
    /// deployments with thousands of keys.
    pub key_label: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { key_label: true }
    }
}

/// Where limits, reservations and spend are kept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSettings {
    pub backend: StateBackend,
    pub redis: RedisSettings,
}

impl Default for StateSettings {
    fn default() -> Self {
        Self {
            backend: StateBackend::Memory,
            redis: RedisSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// In this process: each replica keeps its own, and a restart starts again at zero.
    Memory,
    /// In Redis: shared by every replica, and kept across restarts.
    Redis,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// The environment variable holding the URL (`redis://[:password@]host:port[/db]`).
    pub url_env: String,
    /// Every key the gateway writes starts with it.
    pub key_prefix: String,
    /// The longest a decision waits for Redis.
    pub timeout_ms: u64,
    /// `fail_open`: decide in this process with `fail_open_share` of each limit; or
    /// `fail_closed`: refuse with 503.
    pub on_error: OnErrorSetting,
    /// Each replica's share of a limit while Redis cannot be asked (1 / replicas).
    pub fail_open_share: f64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url_env: "REDIS_URL".into(),
            key_prefix: "mcp".into(),
            timeout_ms: 50,
            on_error: OnErrorSetting::FailOpen,
            fail_open_share: 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnErrorSetting {
    FailOpen,
    FailClosed,
}

/// The label value of the gateway-wide limits.
pub const GLOBAL_KEY_LABEL: &str = "_global";
/// The label value of every key when per-key labels are off.
pub const ALL_KEYS_LABEL: &str = "_all";

impl Settings {
    /// The key table (digests by name) and each key's limits, in `KeyId` order.
    pub fn key_table(
        &self,
        secrets: &Secrets,
    ) -> Result<(KeyTable, Vec<KeyLimits>), SettingsError> {
        let mut digests: Vec<(String, KeyDigest)> = Vec::with_capacity(self.keys.len());
        let mut limits = Vec::with_capacity(self.keys.len());
        for (i, key) in self.keys.iter().enumerate() {
            let path = |field: &str| format!("keys[{i}].{field}");
            let secret_digest = match (&key.sha256, &key.key_env) {
                (Some(hex), None) => parse_digest(hex).ok_or_else(|| {
                    SettingsError::invalid(&path("sha256"), "must be 64 hexadecimal digits")
                })?,
                (None, Some(env)) => {
                    let secret = secrets.client_key(env).ok_or_else(|| {
                        SettingsError::invalid(
                            &path("key_env"),
                            format!("the environment variable `{env}` is not set"),
                        )
                    })?;
                    digest(secret)
                }
                _ => return Err(one_secret(i)),
            };
            digests.push((key.name.clone(), secret_digest));
            limits.push(KeyLimits {
                name: key.name.clone(),
                quota: key.limits.quota(),
                budget: key.budget.map(|b| Budget {
                    usd: b.usd,
                    period: b.period,
                }),
            });
        }
        let table = KeyTable::new(digests).map_err(|e| {
            let text = e.to_string();
            match text.split_once(": ") {
                Some((path, message)) => SettingsError::invalid(path, message),
                None => SettingsError::invalid("keys", text),
            }
        })?;
        Ok((table, limits))
    }

    pub(super) fn validate_keys(&self) -> Result<(), SettingsError> {
        for (i, key) in self.keys.iter().enumerate() {
            let path = |field: &str| format!("keys[{i}].{field}");
            let ok = !key.name.is_empty()
                && key.name.len() <= 64
                && !key.name.starts_with('_')
                && key
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return Err(SettingsError::invalid(
                    &path("name"),
                    "must be 1-64 letters, digits, '-', '_' or '.', not starting with '_'",
                ));
            }
            match (&key.sha256, &key.key_env) {
                (Some(hex), None) if parse_digest(hex).is_none() => {
                    return Err(SettingsError::invalid(
                        &path("sha256"),
                        "must be 64 hexadecimal digits",
                    ));
                }
                (Some(_), None) => {}
                (None, Some(env)) if env.is_empty() => {
                    return Err(SettingsError::invalid(
                        &path("key_env"),
                        "must name an environment variable",
                    ));
                }
                (None, Some(_)) => {}
                _ => return Err(one_secret(i)),
            }
            if let Some(models) = &key.models {
                let catalog = self.routing_table()?;
                for (m, model) in models.iter().enumerate() {
                    if catalog.catalog().is_open() || catalog.catalog().resolve(model).is_none() {
                        return Err(SettingsError::invalid(
                            &format!("keys[{i}].models[{m}]"),
                            format!("`{model}` is not a configured model"),
                        ));
                    }
                }
            }
            for (field, value) in [
                (
                    "limits.requests_per_minute",
                    key.limits.requests_per_minute.map(u64::from),
                ),
                ("limits.tokens_per_minute", key.limits.tokens_per_minute),
                (
                    "limits.concurrent_requests",
                    key.limits.concurrent_requests.map(u64::from),
                ),
            ] {
                if value == Some(0) {
                    return Err(SettingsError::invalid(&path(field), "must be at least 1"));
                }
            }
            if let Some(b) = key.budget
                && !(b.usd.is_finite() && b.usd > 0.0)
            {
                return Err(SettingsError::invalid(
                    &path("budget.usd"),
                    "must be a positive amount",
                ));
            }
        }
        let r = &self.state.redis;
        if self.state.backend == StateBackend::Redis {
            if r.url_env.is_empty() {
                return Err(SettingsError::invalid(
                    "state.redis.url_env",
                    "must name an environment variable",
                ));
            }
            if r.timeout_ms == 0 {
                return Err(SettingsError::invalid(
                    "state.redis.timeout_ms",
                    "must be greater than 0",
                ));
            }
            if !(r.fail_open_share > 0.0 && r.fail_open_share <= 1.0) {
                return Err(SettingsError::invalid(
                    "state.redis.fail_open_share",
                    "must be above 0 and at most 1",
                ));
            }
            let ok = !r.key_prefix.is_empty()
                && r.key_prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
            if !ok {
                return Err(SettingsError::invalid(
                    "state.redis.key_prefix",
                    "must be letters, digits, '-', '_', '.' or ':'",
                ));
            }
        }
        let g = &self.limits.global;
        for (field, value) in [
            ("requests_per_minute", g.requests_per_minute.map(u64::from)),
            ("tokens_per_minute", g.tokens_per_minute),
            ("concurrent_requests", g.concurrent_requests.map(u64::from)),
        ] {
            if value == Some(0) {
                return Err(SettingsError::invalid(
                    &format!("limits.global.{field}"),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

fn one_secret(i: usize) -> SettingsError {
    SettingsError::invalid(
        &format!("keys[{i}]"),
        "needs exactly one of `sha256` and `key_env`",
    )
}
