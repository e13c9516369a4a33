//! The command line: the serve flags (each with a `MOCK_*` environment variable, for compose
//! files), and the `healthcheck` subcommand.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use crate::faults::{FaultError, FaultPatch, FaultProfile};
use crate::state::instance_header;
use crate::telemetry::LogFormat;
use crate::{DEFAULT_INSTANCE, MockOptions, healthcheck};

/// An OpenAI-compatible upstream simulator with latency and fault knobs.
#[derive(Debug, Parser)]
#[command(
    name = "mcp-mock-upstream",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How to serve.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exit 0 if the URL answers 200 within 2 s, else 1 (for container health checks).
    Healthcheck {
        /// The URL to probe.
        #[arg(long, default_value = healthcheck::DEFAULT_URL)]
        url: String,
    },
}

/// Serving flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "MOCK_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Serve the fixtures verbatim (the cheap benchmark upstream).
    #[arg(long, env = "MOCK_FIXED")]
    pub fixed: bool,
    /// Require `Authorization: Bearer KEY` on /v1/*.
    #[arg(long, env = "MOCK_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Server worker threads.
    #[arg(long, env = "MOCK_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Seed for reproducible content and fault rolls.
    #[arg(long, env = "MOCK_SEED")]
    pub seed: Option<u64>,
    /// Name sent as `x-mock-instance` on every /v1/* answer and shown in /admin/stats.
    #[arg(long, env = "MOCK_INSTANCE", default_value = DEFAULT_INSTANCE, value_parser = instance)]
    pub instance: String,
    /// Log line format.
    #[arg(long, env = "MOCK_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    /// The start-up fault profile.
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// Start-up fault knobs; the admin API can change them later.
#[derive(Debug, Args)]
pub struct FaultArgs {
    /// Share of requests (0..=1) answered with --error-status.
    #[arg(long, env = "MOCK_ERROR_RATE")]
    pub error_rate: Option<f64>,
    /// Status of injected errors (400..=599) [default: 500].
    #[arg(long, env = "MOCK_ERROR_STATUS")]
    pub error_status: Option<u16>,
    /// The next N completion, chat and embedding requests fail with --error-status.
    #[arg(long, env = "MOCK_FAIL_NEXT")]
    pub fail_next: Option<u64>,
    /// Every injected error carries `Retry-After` with this many seconds (at most 86400)
    /// [default: only a 429 does, with 1].
    #[arg(long, env = "MOCK_RETRY_AFTER_SECS")]
    pub retry_after_secs: Option<u64>,
    /// Send `Retry-After` as an HTTP-date (now + the seconds).
    #[arg(long, env = "MOCK_RETRY_AFTER_HTTP_DATE")]
    pub retry_after_http_date: bool,
    /// Delay before the response headers, in ms.
    #[arg(long, env = "MOCK_LATENCY_MS")]
    pub latency_ms: Option<u64>,
    /// Uniform spread around --latency-ms, in ms.
    #[arg(long, env = "MOCK_JITTER_MS")]
    pub jitter_ms: Option<u64>,
    /// Share of requests (0..=1) never answered.
    #[arg(long, env = "MOCK_HANG_RATE")]
    pub hang_rate: Option<f64>,
    /// Share of requests (0..=1) answered with invalid JSON.
    #[arg(long, env = "MOCK_MALFORMED_RATE")]
    pub malformed_rate: Option<f64>,
    /// Streams: delay before the first content chunk, in ms.
    #[arg(long, env = "MOCK_TTFT_MS")]
    pub ttft_ms: Option<u64>,
    /// Streams: delay between chunks, in ms.
    #[arg(long, env = "MOCK_TOKEN_INTERVAL_MS")]
    pub token_interval_ms: Option<u64>,
    /// Share of streams (0..=1) dropped mid-way.
    #[arg(long, env = "MOCK_STREAM_CUT_RATE")]
    pub stream_cut_rate: Option<f64>,
}

impl ServeArgs {
    /// The options these flags describe; out-of-range fault values are refused by name.
    pub fn options(&self) -> Result<MockOptions, FaultError> {
        Ok(MockOptions {
            profile: self.faults.patch().apply(&FaultProfile::default())?,
            fixed: self.fixed,
            api_key: self.api_key.clone(),
            workers: self.workers,
            seed: self.seed,
            instance: self.instance.clone(),
            fail_next: self.faults.fail_next.unwrap_or(0),
        })
    }
}

impl FaultArgs {
    fn patch(&self) -> FaultPatch {
        FaultPatch {
            error_rate: self.error_rate,
            error_status: self.error_status,
            retry_after_secs: self.retry_after_secs.map(Some),
            // A flag that is off leaves the default (off) in place.
            retry_after_http_date: self.retry_after_http_date.then_some(true),
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            hang_rate: self.hang_rate,
            malformed_rate: self.malformed_rate,
            ttft_ms: self.ttft_ms,
            token_interval_ms: self.token_interval_ms,
            stream_cut_rate: self.stream_cut_rate,
            // The countdown is not part of the profile: see `ServeArgs::options`.
            fail_next: None,
        }
    }
}

fn instance(value: &str) -> Result<String, String> {
    instance_header(value)
        .map(|_| value.to_owned())
        .map_err(|error| error.to_string())
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM (what `docker stop` sends).
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_flags_become_the_start_up_profile() {
        let cli = Cli::try_parse_from([
            "mcp-mock-upstream",
            "--error-rate",
            "0.5",
            "--error-status",
            "429",
            "--ttft-ms",
            "30",
            "--fixed",
        ])
        .unwrap();
        let options = cli.serve.options().unwrap();
        assert!(options.fixed);
        assert_eq!(options.profile.error_rate, 0.5);
        assert_eq!(options.profile.error_status, 429);
        assert_eq!(options.profile.ttft_ms, 30);
        assert_eq!(options.profile.latency_ms, 0);
    }

    #[test]
    fn the_instance_the_countdown_and_retry_after_come_from_flags() {
        let cli = Cli::try_parse_from([
            "mcp-mock-upstream",
            "--instance",
            "secondary",
            "--fail-next",
            "3",
            "--retry-after-secs",
            "20",
            "--retry-after-http-date",
        ])
        .unwrap();
        let options = cli.serve.options().unwrap();
        assert_eq!(options.instance, "secondary");
        assert_eq!(options.fail_next, 3);
        assert_eq!(options.profile.retry_after_secs, Some(20));
        assert!(options.profile.retry_after_http_date);

        let defaults = Cli::try_parse_from(["mcp-mock-upstream"]).unwrap();
        let options = defaults.serve.options().unwrap();
        assert_eq!((options.instance.as_str(), options.fail_next), ("mock", 0));
        assert_eq!(options.profile.retry_after_secs, None);
        assert!(!options.profile.retry_after_http_date);
    }

    #[test]
    fn an_instance_name_that_is_no_header_value_is_refused() {
        for name in ["", " padded", "line\nbreak", "café"] {
            let parsed = Cli::try_parse_from(["mcp-mock-upstream", "--instance", name]);
            assert!(parsed.is_err(), "{name:?} was accepted");
        }
    }

    #[test]
    fn an_out_of_range_flag_is_refused_by_name() {
        let cli = Cli::try_parse_from(["mcp-mock-upstream", "--hang-rate", "2"]).unwrap();
        assert_eq!(cli.serve.options().unwrap_err().field(), "hang_rate");
    }

    #[test]
    fn the_healthcheck_subcommand_defaults_to_the_local_health_url() {
        let cli = Cli::try_parse_from(["mcp-mock-upstream", "healthcheck"]).unwrap();
        match cli.command {
            Some(Command::Healthcheck { url }) => assert_eq!(url, healthcheck::DEFAULT_URL),
            None => panic!("expected the healthcheck subcommand"),
        }
    }
}
