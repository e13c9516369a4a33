//! The upstreams: either the one `upstream` section (the quick-start form: one upstream, any
//! model forwarded) or an `upstreams` list, whose entries take what they leave out from the
//! `upstream` section. Either way start-up sees one resolved list, [`UpstreamPlan`]s in
//! `UpstreamId` order, and the API keys those name, read from the environment into
//! [`Secrets`].

use std::collections::BTreeMap;
use std::time::Duration;

use mcp_core::resilience::ConcurrencyPolicy;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use mcp_core::upstream::UpstreamKind;

use super::{ANTHROPIC_BASE_URL, OPENAI_BASE_URL, Settings, SettingsError};

/// One entry of the `upstreams` list. Unset fields take the `upstream` section's value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamEntry {
    /// The `upstream` label value; what deployments name.
    pub name: String,
    /// The API root, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com/v1`.
    pub base_url: Url,
    /// The API it speaks: `openai` (the default) or `anthropic`.
    #[serde(default)]
    pub kind: Option<UpstreamKind>,
    /// Anthropic-kind upstreams: the `anthropic-version` sent when the client sends none.
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// The environment variable that holds this upstream's API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    #[serde(default)]
    pub request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub stream_idle_timeout_secs: Option<u64>,
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    #[serde(default)]
    pub queue: Option<QueueSettings>,
}

/// The waiting room in front of an upstream whose `max_in_flight` slots are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// Requests that may wait; more are refused at once.
    pub size: usize,
    /// How long one may wait before it is refused.
    pub timeout_ms: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            size: 64,
            timeout_ms: 5_000,
        }
    }
}

/// An upstream as the gateway will run it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamPlan {
    pub name: String,
    pub base_url: Url,
    pub kind: UpstreamKind,
    pub anthropic_version: String,
    pub api_key_env: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub stream_idle_timeout: Duration,
    pub concurrency: ConcurrencyPolicy,
}

impl Settings {
    /// The upstreams to run, in `UpstreamId` order. `has_key` tells whether an environment
    /// variable holds a key (it decides the single upstream's default base URL).
    pub fn upstream_plans(&self, has_key: impl Fn(&str) -> bool) -> Vec<UpstreamPlan> {
        let d = &self.upstream;
        let queue = d.queue;
        if self.upstreams.is_empty() {
            let (base_url, name) = d.resolve(has_key(&d.api_key_env));
            return vec![UpstreamPlan {
                name,
                base_url,
                kind: d.kind,
                anthropic_version: d.anthropic_version.clone(),
                api_key_env: d.api_key_env.clone(),
                connect_timeout: d.connect_timeout(),
                request_timeout: d.request_timeout(),
                stream_idle_timeout: d.stream_idle_timeout(),
                concurrency: ConcurrencyPolicy {
                    max_in_flight: d.max_in_flight,
                    queue: queue.size,
                    queue_timeout: Duration::from_millis(queue.timeout_ms),
                },
            }];
        }
        self.upstreams
            .iter()
            .map(|e| {
                let queue = e.queue.unwrap_or(queue);
                UpstreamPlan {
                    name: e.name.clone(),
                    base_url: e.base_url.clone(),
                    kind: e.kind.unwrap_or(d.kind),
                    anthropic_version: e
                        .anthropic_version
                        .clone()
                        .unwrap_or_else(|| d.anthropic_version.clone()),
                    api_key_env: e
                        .api_key_env
                        .clone()
                        .unwrap_or_else(|| d.api_key_env.clone()),
                    connect_timeout: Duration::from_millis(
                        e.connect_timeout_ms.unwrap_or(d.connect_timeout_ms),
                    ),
                    request_timeout: Duration::from_secs(
                        e.request_timeout_secs.unwrap_or(d.request_timeout_secs),
                    ),
                    stream_idle_timeout: Duration::from_secs(
                        e.stream_idle_timeout_secs
                            .unwrap_or(d.stream_idle_timeout_secs),
                    ),
                    concurrency: ConcurrencyPolicy {
                        max_in_flight: e.max_in_flight.unwrap_or(d.max_in_flight),
                        queue: queue.size,
                        queue_timeout: Duration::from_millis(queue.timeout_ms),
                    },
                }
            })
            .collect()
    }

    /// The upstream names, in `UpstreamId` order (the single upstream's as if no key is set:
    /// only its label can depend on the key, and validation needs no secrets).
    pub fn upstream_names(&self) -> Vec<String> {
        self.upstream_plans(|_| false)
            .into_iter()
            .map(|p| p.name)
            .collect()
    }

    pub(super) fn validate_upstreams(&self) -> Result<(), SettingsError> {
        if self.upstreams.is_empty() {
            if let Some(name) = &self.upstream.name {
                check_name("upstream.name", name)?;
            }
            return Ok(());
        }
        for key in ["base_url", "name"] {
            let set = match key {
                "base_url" => self.upstream.base_url.is_some(),
                _ => self.upstream.name.is_some(),
            };
            if set {
                return Err(SettingsError::invalid(
                    &format!("upstream.{key}"),
                    "not used when an `upstreams` list is configured; set it on each entry",
                ));
            }
        }
        for (i, entry) in self.upstreams.iter().enumerate() {
            let path = |key: &str| format!("upstreams[{i}].{key}");
            check_name(&path("name"), &entry.name)?;
            if self.upstreams[..i].iter().any(|e| e.name == entry.name) {
                return Err(SettingsError::invalid(
                    &path("name"),
                    format!("`{}` is used by an earlier upstream", entry.name),
                ));
            }
            check_url(&path("base_url"), &entry.base_url)?;
            for (key, value) in [
                ("connect_timeout_ms", entry.connect_timeout_ms),
                ("request_timeout_secs", entry.request_timeout_secs),
                ("stream_idle_timeout_secs", entry.stream_idle_timeout_secs),
            ] {
                if value == Some(0) {
                    return Err(SettingsError::invalid(&path(key), "must be greater than 0"));
                }
            }
            if entry.api_key_env.as_deref() == Some("") {
                return Err(SettingsError::invalid(
                    &path("api_key_env"),
                    "must name an environment variable",
                ));
            }
            if let Some(version) = &entry.anthropic_version {
                check_anthropic_version(&path("anthropic_version"), version)?;
            }
            if entry.queue.is_some_and(|q| q.timeout_ms == 0) {
                return Err(SettingsError::invalid(
                    &path("queue.timeout_ms"),
                    "must be greater than 0",
                ));
            }
        }
        Ok(())
    }
}

/// A version is sent as a header value: printable ASCII, as Anthropic's dates are.
pub(super) fn check_anthropic_version(path: &str, version: &str) -> Result<(), SettingsError> {
    let ok =
        !version.is_empty() && version.len() <= 64 && version.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(SettingsError::invalid(
            path,
            "must be a version such as `2023-06-01` (printable ASCII, no spaces)",
        ))
    }
}

/// Label values: short, and nothing a query would have to escape.
fn check_name(path: &str, name: &str) -> Result<(), SettingsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SettingsError::invalid(
            path,
            "must be 1-64 characters of letters, digits, '-', '_' or '.'",
        ))
    }
}

pub(super) fn check_url(path: &str, url: &Url) -> Result<(), SettingsError> {
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(SettingsError::invalid(path, "must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SettingsError::invalid(
            path,
            "must not contain credentials; set the API key variable instead",
        ));
    }
    Ok(())
}

/// `MCP__UPSTREAMS__<NAME>__<KEY>=value`, taken apart.
#[derive(Debug)]
pub(super) struct EntryOverride {
    name: String,
    field: String,
    value: String,
}

/// Overrides of list entries from the environment: `MCP__UPSTREAMS__<NAME>__<KEY>=value` sets
/// `<key>` on the upstream named `<name>` (case-insensitive; `_` in the variable matches `-`
/// in the name), since a list has no stable keys of its own for `MCP__SECTION__KEY`.
pub(super) fn split_entry_overrides(
    env: BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<EntryOverride>) {
    const PREFIX: &str = "MCP__UPSTREAMS__";
    let mut rest = BTreeMap::new();
    let mut overrides = Vec::new();
    for (key, value) in env {
        let upper = key.to_ascii_uppercase();
        match upper.strip_prefix(PREFIX).and_then(|t| t.split_once("__")) {
            Some((name, field)) => {
                overrides.push(EntryOverride {
                    name: name.to_owned(),
                    field: field.to_ascii_lowercase(),
                    value,
                });
            }
            None => {
                rest.insert(key, value);
            }
        }
    }
    (rest, overrides)
}

impl Settings {
    pub(super) fn apply_entry_overrides(
        &mut self,
        overrides: Vec<EntryOverride>,
    ) -> Result<(), SettingsError> {
        for EntryOverride { name, field, value } in overrides {
            let var = format!("MCP__UPSTREAMS__{name}__{}", field.to_ascii_uppercase());
            let matches = |e: &&mut UpstreamEntry| {
                e.name
                    .replace('-', "_")
                    .eq_ignore_ascii_case(&name.replace('-', "_"))
            };
            let Some(entry) = self.upstreams.iter_mut().find(matches) else {
                return Err(SettingsError::invalid(
                    &var,
                    "no upstream in the list has this name",
                ));
            };
            let number = |v: &str| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| SettingsError::invalid(&var, "must be a whole number"))
            };
            match field.as_str() {
                "base_url" => {
                    entry.base_url = Url::parse(value.trim())
                        .map_err(|e| SettingsError::invalid(&var, e.to_string()))?;
                }
                "api_key_env" => entry.api_key_env = Some(value),
                "kind" => {
                    let kind = serde_json::Value::String(value.trim().to_owned());
                    entry.kind = Some(serde_json::from_value(kind).map_err(|_| {
                        SettingsError::invalid(&var, "must be `openai` or `anthropic`")
                    })?);
                }
                "anthropic_version" => entry.anthropic_version = Some(value),
                "connect_timeout_ms" => entry.connect_timeout_ms = Some(number(&value)?),
                "request_timeout_secs" => entry.request_timeout_secs = Some(number(&value)?),
                "stream_idle_timeout_secs" => {
                    entry.stream_idle_timeout_secs = Some(number(&value)?);
                }
                "max_in_flight" => {
                    entry.max_in_flight =
                        Some(usize::try_from(number(&value)?).unwrap_or(usize::MAX));
                }
                _ => return Err(SettingsError::invalid(&var, "not a setting of an upstream")),
            }
        }
        Ok(())
    }
}

/// Secrets read from the environment at start-up, kept apart from the settings so that the
/// settings can be logged and compared freely: each upstream's API key, by the name of the
/// variable that holds it.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    keys: BTreeMap<String, SecretString>,
    /// Client keys named by `keys[].key_env`.
    client_keys: BTreeMap<String, SecretString>,
    /// The token `/metrics` requires (`server.metrics_token_env`).
    pub metrics_token: Option<SecretString>,
    /// The shared state store's URL (`state.redis.url_env`), which may hold a password.
    pub redis_url: Option<SecretString>,
}

impl Secrets {
    /// Reads every variable the settings name; an empty value counts as unset.
    pub fn from_env(settings: &Settings) -> Self {
        let mut secrets = Self::default();
        let names = std::iter::once(&settings.upstream.api_key_env).chain(
            settings
                .upstreams
                .iter()
                .filter_map(|e| e.api_key_env.as_ref()),
        );
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|k| !k.trim().is_empty())
                .map(SecretString::from)
        };
        for name in names {
            if let Some(key) = read(name) {
                secrets.keys.insert(name.clone(), key);
            }
        }
        secrets.redis_url = read(&settings.state.redis.url_env);
        secrets.metrics_token = settings.server.metrics_token_env.as_deref().and_then(read);
        for name in settings.keys.iter().filter_map(|k| k.key_env.as_ref()) {
            if let Some(key) = read(name) {
                secrets.client_keys.insert(name.clone(), key);
            }
        }
        secrets
    }

    /// Secrets holding the client key `key` in the variable `env`.
    pub fn with_client_key(mut self, env: impl Into<String>, key: impl Into<String>) -> Self {
        self.client_keys
            .insert(env.into(), SecretString::from(key.into()));
        self
    }

    /// A client key named by `keys[].key_env`.
    pub fn client_key(&self, env: &str) -> Option<&str> {
        self.client_keys.get(env).map(ExposeSecret::expose_secret)
    }

    /// Secrets holding `key` in the variable `env`.
    pub fn with_key(mut self, env: impl Into<String>, key: impl Into<String>) -> Self {
        self.keys.insert(env.into(), SecretString::from(key.into()));
        self
    }

    pub fn key(&self, env: &str) -> Option<&SecretString> {
        self.keys.get(env)
    }
}

/// The default base URL of the single upstream when a key is set.
pub(super) fn openai_base_url() -> Url {
    Url::parse(OPENAI_BASE_URL).expect("a valid constant URL")
}

/// The same, for the `anthropic` kind.
pub(super) fn anthropic_base_url() -> Url {
    Url::parse(ANTHROPIC_BASE_URL).expect("a valid constant URL")
}
