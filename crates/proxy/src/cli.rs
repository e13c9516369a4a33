//! The command line: where the settings come from, two quick-start overrides, and a
//! self-check subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use url::Url;

use crate::configuration::{self, Settings, SettingsError};

/// MCP Server: an observable OpenAI-compatible LLM gateway.
#[derive(Debug, Parser)]
#[command(name = "mcp-proxy", version, about)]
pub struct Cli {
    /// A YAML settings file; `MCP__SECTION__KEY` environment variables override it.
    #[arg(long, env = "MCP_CONFIG", value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
    /// Listen on this address instead of `server.listen`.
    #[arg(long, value_name = "ADDR", global = true)]
    pub listen: Option<SocketAddr>,
    /// Forward to this OpenAI-compatible API root (e.g. `http://127.0.0.1:8000/v1`) instead of
    /// `upstream.base_url`.
    #[arg(long, value_name = "URL", global = true)]
    pub upstream: Option<Url>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and validate the settings, print them (they hold no secrets) and exit.
    CheckConfig,
    /// Exit 0 if the gateway at URL answers its health check, 1 otherwise (for container
    /// health checks, where images have no curl).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/health")]
        url: String,
    },
}

/// Asks `url` for a 200 within two seconds.
pub async fn healthcheck(url: &str) -> bool {
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
    {
        Ok(client) => client,
        Err(_) => return false,
    };
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

impl Cli {
    /// The settings from the file and the environment, with the flags applied on top.
    pub fn settings(&self) -> Result<Settings, SettingsError> {
        let mut settings = configuration::load(self.config.as_deref())?;
        if let Some(listen) = self.listen {
            settings.server.listen = listen;
        }
        if let Some(upstream) = &self.upstream {
            if !settings.upstreams.is_empty() {
                return Err(SettingsError::Invalid {
                    path: "--upstream".into(),
                    message: "cannot replace an `upstreams` list; override an entry with \
                              MCP__UPSTREAMS__<NAME>__BASE_URL instead"
                        .into(),
                });
            }
            settings.upstream.base_url = Some(upstream.clone());
            settings.validate()?;
        }
        Ok(settings)
    }
}
