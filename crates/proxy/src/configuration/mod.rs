//! Settings: built-in defaults, then a YAML file, then `MCP__SECTION__KEY` environment
//! variables, then the quick-start flags. Unknown keys are refused and every error names the
//! key it is about, so a typo stops start-up instead of being silently ignored.
//!
//! Upstream API keys are never part of the settings: they only name the environment
//! variables that hold them (see [`Secrets`]).

mod keys;
mod routing;
mod upstreams;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mcp_core::routing::RoutingTable;
use mcp_core::upstream::{DEFAULT_ANTHROPIC_VERSION, UpstreamKind};
use mcp_core::{ModelCatalog, ModelSpec};
use serde::Deserialize;
use url::Url;

pub use keys::{
    ALL_KEYS_LABEL, BudgetSettings as KeyBudgetSettings, GLOBAL_KEY_LABEL, KeyEntry, LimitSettings,
    LimitsSection, MetricsSettings, OnErrorSetting, RedisSettings, StateBackend, StateSettings,
};
pub use routing::{BreakerSettings, BudgetSettings, FailureKind, RetryTrigger, RoutingSettings};
pub use upstreams::{QueueSettings, Secrets, UpstreamEntry, UpstreamPlan};

/// Where requests go when no upstream is configured and no API key is set: the mock upstream
/// that `make run` starts beside the proxy.
pub const DEFAULT_MOCK_BASE_URL: &str = "http://127.0.0.1:8081/v1";
/// Where requests go when an API key is set and no upstream is configured.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// The same, for an upstream of the `anthropic` kind.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com/v1";
/// The prefix of environment overrides: `MCP__SERVER__LISTEN` sets `server.listen`.
pub const ENV_PREFIX: &str = "MCP";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    /// The single upstream, or the defaults of the `upstreams` list's entries.
    #[serde(default)]
    pub upstream: UpstreamSettings,
    /// Several upstreams, named by the models' deployments. Empty: `upstream` is the one.
    #[serde(default)]
    pub upstreams: Vec<UpstreamEntry>,
    /// The models clients may use and where they are served. Empty: any model is forwarded
    /// to the (first) upstream and counted as `other`.
    #[serde(default)]
    pub models: Vec<ModelSpec>,
    #[serde(default)]
    pub routing: RoutingSettings,
    /// Client keys. Empty: the gateway is open to anyone who can reach it.
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Where limits, reservations and spend are kept.
    #[serde(default)]
    pub state: StateSettings,
    #[serde(default)]
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long in-flight requests and streams may take to finish once the gateway stops
    /// accepting connections after a shutdown signal; streams still open then end with an
    /// error event.
    pub shutdown_timeout_secs: u64,
    /// After a shutdown signal `/ready` answers 503 at once, and new connections are still
    /// accepted for this long, so that a load balancer notices before they are refused.
    pub drain_delay_secs: u64,
    /// How long an idle client connection is kept open.
    pub keep_alive_secs: u64,
    /// A client must send its request's head (line and headers) within this time.
    pub client_header_timeout_ms: u64,
    /// A client must send its request's body within this time (408 otherwise).
    pub body_timeout_secs: u64,
    /// The largest request head (every header name and value) accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// Open client connections at most (shared evenly by the workers).
    pub max_connections: usize,
    /// Serve `/metrics` (with `/health` and `/ready`) on this address instead of `listen`.
    pub admin_listen: Option<SocketAddr>,
    /// The environment variable holding a bearer token that `/metrics` requires.
    pub metrics_token_env: Option<String>,
    /// `/ready` answers 503 while every upstream is down. Behind a load balancer whose other
    /// replicas share those upstreams (Kubernetes), turn it off: an outage would empty the
    /// Service, and clients would get refused connections instead of the gateway's errors.
    pub ready_requires_upstream: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            max_body_bytes: 10 * 1024 * 1024,
            shutdown_timeout_secs: 30,
            drain_delay_secs: 5,
            keep_alive_secs: 75,
            client_header_timeout_ms: 5_000,
            body_timeout_secs: 60,
            max_header_bytes: 32 * 1024,
            max_connections: 10_000,
            admin_listen: None,
            metrics_token_env: None,
            ready_requires_upstream: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSettings {
    /// The `upstream` label value. Default: `mock`, `openai` (`anthropic`) or `primary`, from
    /// the base URL.
    pub name: Option<String>,
    /// The API the upstream speaks: `openai` (and compatible servers) or `anthropic`.
    pub kind: UpstreamKind,
    /// The API root. Default: OpenAI's (Anthropic's, for the `anthropic` kind) when an API
    /// key is set, else the mock.
    pub base_url: Option<Url>,
    /// Anthropic-kind upstreams: the `anthropic-version` header sent when the client sends
    /// none.
    pub anthropic_version: String,
    /// The mock upstream's API root, used when neither `base_url` nor an API key is set.
    pub mock_base_url: Url,
    /// The environment variable that holds the upstream API key.
    pub api_key_env: String,
    pub connect_timeout_ms: u64,
    /// The whole exchange for a plain answer; until the response headers for a stream.
    pub request_timeout_secs: u64,
    /// A stream that sends nothing for this long is ended with an error event.
    pub stream_idle_timeout_secs: u64,
    /// The largest plain answer, or single stream event, read from the upstream; a larger
    /// one becomes a 502 (or ends the stream with an error event).
    pub max_response_bytes: usize,
    pub pool_idle_timeout_secs: u64,
    pub pool_max_idle_per_host: usize,
    /// Consecutive attempts that could not reach the upstream after which it counts as down.
    pub unhealthy_after: u32,
    /// How often the upstream's model list is fetched to learn whether it is up; 0 disables.
    pub health_check_interval_secs: u64,
    /// Attempts in flight to the upstream at most; 0 means no limit.
    pub max_in_flight: usize,
    /// The waiting room when `max_in_flight` is reached.
    pub queue: QueueSettings,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            name: None,
            kind: UpstreamKind::OpenAi,
            base_url: None,
            anthropic_version: DEFAULT_ANTHROPIC_VERSION.to_owned(),
            mock_base_url: Url::parse(DEFAULT_MOCK_BASE_URL).expect("a valid constant URL"),
            api_key_env: "OPENAI_API_KEY".into(),
            connect_timeout_ms: 5_000,
            request_timeout_secs: 600,
            stream_idle_timeout_secs: 60,
            max_response_bytes: 128 * 1024 * 1024,
            pool_idle_timeout_secs: 90,
            pool_max_idle_per_host: 1024,
            unhealthy_after: 3,
            health_check_interval_secs: 15,
            max_in_flight: 0,
            queue: QueueSettings::default(),
        }
    }
}

impl UpstreamSettings {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn stream_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.stream_idle_timeout_secs)
    }

    /// The base URL and label name actually used, given whether an API key is set.
    pub fn resolve(&self, has_key: bool) -> (Url, String) {
        let (url, default_name) = match (&self.base_url, has_key, self.kind) {
            (Some(url), _, _) => (url.clone(), "primary"),
            (None, true, UpstreamKind::OpenAi) => (upstreams::openai_base_url(), "openai"),
            (None, true, UpstreamKind::Anthropic) => (upstreams::anthropic_base_url(), "anthropic"),
            (None, false, _) => (self.mock_base_url.clone(), "mock"),
        };
        let name = self.name.clone().unwrap_or_else(|| default_name.into());
        (url, name)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `mcp_proxy=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Settings that cannot be used, with the key they are about.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("could not read settings: {0}")]
    Source(#[from] config::ConfigError),
    #[error("invalid setting `{path}`: {message}")]
    Invalid { path: String, message: String },
}

impl SettingsError {
    pub(crate) fn invalid(path: &str, message: impl Into<String>) -> Self {
        SettingsError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Loads settings from the optional file and the process environment.
pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
    load_from(file, None)
}

/// Like [`load`], with the environment given as a map (for tests).
pub fn load_from(
    file: Option<&Path>,
    env: Option<config::Map<String, String>>,
) -> Result<Settings, SettingsError> {
    // List entries are overridden by name, which the config crate cannot do: take those
    // variables out and apply them after the list is read.
    let env = env.unwrap_or_else(|| {
        std::env::vars()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect()
    });
    let (env, entry_overrides) = upstreams::split_entry_overrides(env.into_iter().collect());
    let env: config::Map<String, String> = env.into_iter().collect();
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(
            config::File::from(file)
                .format(config::FileFormat::Yaml)
                .required(true),
        );
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    let merged = builder.build()?;
    let mut settings: Settings = serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = e.path().to_string();
        SettingsError::invalid(&path, e.into_inner().to_string())
    })?;
    settings.apply_entry_overrides(entry_overrides)?;
    settings.validate()?;
    Ok(settings)
}

impl Settings {
    /// Checks what serde cannot: ranges, and values that only make sense together.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let positive = |path: &str, v: u64| {
            if v == 0 {
                Err(SettingsError::invalid(path, "must be greater than 0"))
            } else {
                Ok(())
            }
        };
        positive("server.max_body_bytes", self.server.max_body_bytes as u64)?;
        positive(
            "server.client_header_timeout_ms",
            self.server.client_header_timeout_ms,
        )?;
        positive("server.body_timeout_secs", self.server.body_timeout_secs)?;
        positive(
            "server.max_header_bytes",
            self.server.max_header_bytes as u64,
        )?;
        positive("server.max_connections", self.server.max_connections as u64)?;
        if self.server.admin_listen == Some(self.server.listen) {
            return Err(SettingsError::invalid(
                "server.admin_listen",
                "must differ from server.listen",
            ));
        }
        if self.server.metrics_token_env.as_deref() == Some("") {
            return Err(SettingsError::invalid(
                "server.metrics_token_env",
                "must name an environment variable",
            ));
        }
        positive(
            "upstream.connect_timeout_ms",
            self.upstream.connect_timeout_ms,
        )?;
        positive(
            "upstream.request_timeout_secs",
            self.upstream.request_timeout_secs,
        )?;
        positive(
            "upstream.stream_idle_timeout_secs",
            self.upstream.stream_idle_timeout_secs,
        )?;
        positive(
            "upstream.unhealthy_after",
            self.upstream.unhealthy_after.into(),
        )?;
        positive(
            "upstream.max_response_bytes",
            self.upstream.max_response_bytes as u64,
        )?;
        positive("upstream.queue.timeout_ms", self.upstream.queue.timeout_ms)?;
        for (path, url) in [
            ("upstream.base_url", self.upstream.base_url.as_ref()),
            ("upstream.mock_base_url", Some(&self.upstream.mock_base_url)),
        ] {
            if let Some(url) = url {
                upstreams::check_url(path, url)?;
            }
        }
        self.validate_upstreams()?;
        upstreams::check_anthropic_version(
            "upstream.anthropic_version",
            &self.upstream.anthropic_version,
        )?;
        if self.upstream.api_key_env.is_empty() {
            return Err(SettingsError::invalid(
                "upstream.api_key_env",
                "must name an environment variable",
            ));
        }
        self.routing.validate()?;
        self.routing_table()?;
        self.validate_keys()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| SettingsError::invalid("log.level", e.to_string()))?;
        Ok(())
    }
}

impl Settings {
    /// The model table resolved against the upstreams.
    pub fn routing_table(&self) -> Result<RoutingTable, SettingsError> {
        let catalog = ModelCatalog::new(self.models.clone())
            .map_err(|e| SettingsError::invalid("models", e.to_string()))?;
        let kinds: Vec<UpstreamKind> = self
            .upstream_plans(|_| false)
            .iter()
            .map(|p| p.kind)
            .collect();
        let table = RoutingTable::new(catalog, &self.upstream_names()).map_err(|e| {
            // Routing errors lead with the key they are about.
            let text = e.to_string();
            match text.split_once(": ") {
                Some((path, message)) => SettingsError::invalid(path, message),
                None => SettingsError::invalid("models", text),
            }
        })?;
        Ok(table.with_kinds(&kinds))
    }
}

#[cfg(test)]
mod tests;
