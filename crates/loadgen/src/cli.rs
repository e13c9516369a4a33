//! The command line. Every flag also reads a `LOADGEN_*` environment variable, so that the
//! compose file can configure the loadgen without rewriting its command. Client keys are
//! secrets: their environment variable's value is left out of `--help`, and the flags' `Debug`
//! form shows none.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::keys::ApiKey;
use crate::scenario::{Incident, ScenarioConfig};
use crate::schedule;
use crate::telemetry::LogFormat;
use crate::traffic::TrafficConfig;

/// Demo traffic and incident scenarios for the MCP Server stack.
#[derive(Debug, Parser)]
#[command(name = "mcp-loadgen", version)]
pub struct Cli {
    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "LOADGEN_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Steady open-loop traffic until stopped (Ctrl-C, SIGTERM) or --duration.
    Run(RunArgs),
    /// Steady traffic with an upstream incident in the middle.
    #[command(subcommand)]
    Scenario(ScenarioCommand),
    /// Show or change the mock upstream's fault profile.
    Faults(FaultsArgs),
}

/// The steady traffic's flags, shared by `run` and the scenarios.
#[derive(Debug, Clone, Args)]
pub struct TrafficArgs {
    /// The gateway's root URL (where /health and /v1/... live). Several replicas: repeat the
    /// flag or separate the URLs with commas; requests go to each in turn.
    #[arg(
        long = "target",
        value_name = "URL",
        env = "LOADGEN_TARGET",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    pub targets: Vec<String>,
    /// Requests started per second, whatever the answers' latency.
    #[arg(long, env = "LOADGEN_RATE", default_value_t = 5.0, value_parser = rate)]
    pub rate: f64,
    /// Most requests in flight; a request due beyond it is skipped and counted.
    #[arg(long, env = "LOADGEN_CONCURRENCY_LIMIT", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency_limit: u32,
    /// Share (0..=1) of chat and completion requests that are streamed.
    #[arg(long, env = "LOADGEN_STREAM_SHARE", default_value_t = 0.3, value_parser = share)]
    pub stream_share: f64,
    /// Seed for a reproducible sequence of requests.
    #[arg(long, env = "LOADGEN_SEED")]
    pub seed: Option<u64>,
    /// Seconds to wait for GET {target}/health to answer 200 before giving up (exit 1).
    #[arg(long, env = "LOADGEN_WAIT_SECS", default_value_t = 120)]
    pub wait_secs: u64,
    /// Seconds a request, a stream included, may take to its last byte.
    #[arg(long, env = "LOADGEN_REQUEST_TIMEOUT_SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,
    /// Seconds between two summary lines.
    #[arg(long, env = "LOADGEN_REPORT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub report_secs: u64,
    /// A client key, sent as `Authorization: Bearer KEY`; repeat the flag (or separate keys with
    /// commas) for several, presented in turn. None: no `Authorization` header.
    // Hyphen values are taken as keys so that clap never quotes one back in an error.
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "LOADGEN_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub api_keys: Vec<ApiKey>,
}

/// `run`'s flags.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub traffic: TrafficArgs,
    /// Stop after this many seconds [default: run until stopped].
    #[arg(long, env = "LOADGEN_DURATION")]
    pub duration: Option<u64>,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// A share of upstream answers become errors (the error-rate and burn-rate alerts).
    Incident(IncidentArgs),
    /// Every upstream answer is delayed (the latency and time-to-first-token alerts).
    SlowUpstream(SlowUpstreamArgs),
    /// The primary upstream fails hard, then heals (the gateway's retries, fallback and
    /// circuit breaker); answers are counted per phase by the upstream that served them.
    Failover(FailoverArgs),
}

/// Flags every scenario shares.
#[derive(Debug, Clone, Args)]
pub struct PhaseArgs {
    #[command(flatten)]
    pub traffic: TrafficArgs,
    /// The mock upstream's root URL (where /admin/faults lives).
    #[arg(
        long,
        env = "LOADGEN_MOCK_ADMIN",
        default_value = "http://127.0.0.1:8081"
    )]
    pub mock_admin: String,
    /// Seconds of healthy traffic before the incident.
    #[arg(long, env = "LOADGEN_BASELINE", default_value_t = 60)]
    pub baseline: u64,
    /// Seconds of traffic after the fault is cleared.
    #[arg(long, env = "LOADGEN_RECOVERY", default_value_t = 300)]
    pub recovery: u64,
}

/// `scenario incident`'s flags.
#[derive(Debug, Clone, Args)]
pub struct IncidentArgs {
    #[command(flatten)]
    pub phases: PhaseArgs,
    /// Seconds the fault stays in force.
    #[arg(long, env = "LOADGEN_INCIDENT", default_value_t = 300)]
    pub incident: u64,
    /// Share (0..=1) of upstream answers that fail.
    #[arg(long, env = "LOADGEN_ERROR_RATE", default_value_t = 0.3, value_parser = share)]
    pub error_rate: f64,
    /// Status of the failing upstream answers (the gateway turns 5xx into 502).
    #[arg(long, env = "LOADGEN_ERROR_STATUS", default_value_t = 500,
          value_parser = clap::value_parser!(u16).range(400..=599))]
    pub error_status: u16,
}

/// `scenario slow-upstream`'s flags.
#[derive(Debug, Clone, Args)]
pub struct SlowUpstreamArgs {
    #[command(flatten)]
    pub phases: PhaseArgs,
    /// Seconds the delay stays in force; the latency alerts wait 10 minutes before firing.
    #[arg(long, env = "LOADGEN_INCIDENT", default_value_t = 900)]
    pub incident: u64,
    /// Delay before every upstream answer's headers, in milliseconds.
    #[arg(long, env = "LOADGEN_LATENCY_MS", default_value_t = 4000)]
    pub latency_ms: u64,
    /// Uniform spread around --latency-ms, in milliseconds.
    #[arg(long, env = "LOADGEN_JITTER_MS", default_value_t = 1000)]
    pub jitter_ms: u64,
}

/// `scenario failover`'s flags. `--mock-admin` names the primary's admin root: the fault is
/// set on the primary only.
#[derive(Debug, Clone, Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub phases: PhaseArgs,
    /// Seconds the primary stays down.
    #[arg(long, env = "LOADGEN_INCIDENT", default_value_t = 120)]
    pub incident: u64,
    /// Share (0..=1) of the primary's answers that fail.
    #[arg(long, env = "LOADGEN_ERROR_RATE", default_value_t = 1.0, value_parser = share)]
    pub error_rate: f64,
    /// Status of the primary's failing answers.
    #[arg(long, env = "LOADGEN_ERROR_STATUS", default_value_t = 503,
          value_parser = clap::value_parser!(u16).range(400..=599))]
    pub error_status: u16,
}

/// `faults`' flags.
#[derive(Debug, Clone, Args)]
pub struct FaultsArgs {
    /// The mock upstream's root URL (where /admin/faults lives).
    #[arg(
        long,
        env = "LOADGEN_MOCK_ADMIN",
        default_value = "http://127.0.0.1:8081"
    )]
    pub mock_admin: String,
    #[command(subcommand)]
    pub action: FaultsAction,
}

/// What to do with the fault profile; each prints the resulting profile.
#[derive(Debug, Clone, Subcommand)]
pub enum FaultsAction {
    /// Merge a JSON patch, e.g. '{"error_rate":0.3}', into the profile.
    Set {
        /// The fields to change, as a JSON object.
        patch: String,
    },
    /// Restore the mock's start-up profile.
    Clear,
    /// Print the profile in force.
    Show,
}

impl TrafficArgs {
    /// The traffic these flags describe.
    pub fn config(&self) -> TrafficConfig {
        TrafficConfig {
            rate: self.rate,
            concurrency_limit: self.concurrency_limit as usize,
            stream_share: self.stream_share,
            seed: self.seed,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            report_every: Duration::from_secs(self.report_secs),
            health_wait: Duration::from_secs(self.wait_secs),
            // An empty LOADGEN_API_KEYS, or a stray comma, means no key rather than an empty one.
            api_keys: self
                .api_keys
                .iter()
                .filter(|key| !key.is_empty())
                .cloned()
                .collect(),
            // As with the keys, a stray comma adds no target.
            targets: self
                .targets
                .iter()
                .map(|target| target.trim())
                .filter(|target| !target.is_empty())
                .map(str::to_owned)
                .collect(),
            ..TrafficConfig::new("")
        }
    }
}

impl RunArgs {
    /// The traffic `run` sends.
    pub fn config(&self) -> TrafficConfig {
        TrafficConfig {
            duration: self.duration.map(Duration::from_secs),
            ..self.traffic.config()
        }
    }
}

impl ScenarioCommand {
    /// The scenario these flags describe.
    pub fn config(&self) -> ScenarioConfig {
        let (phases, incident, incident_secs) = match self {
            Self::Incident(args) => (
                &args.phases,
                Incident::Errors {
                    rate: args.error_rate,
                    status: args.error_status,
                },
                args.incident,
            ),
            Self::SlowUpstream(args) => (
                &args.phases,
                Incident::Slow {
                    latency_ms: args.latency_ms,
                    jitter_ms: args.jitter_ms,
                },
                args.incident,
            ),
            Self::Failover(args) => (
                &args.phases,
                Incident::Outage {
                    rate: args.error_rate,
                    status: args.error_status,
                },
                args.incident,
            ),
        };
        ScenarioConfig {
            traffic: phases.traffic.config(),
            mock_admin: phases.mock_admin.clone(),
            incident,
            baseline: Duration::from_secs(phases.baseline),
            incident_for: Duration::from_secs(incident_secs),
            recovery: Duration::from_secs(phases.recovery),
        }
    }
}

fn rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value.parse().map_err(|e| format!("{e}"))?;
    schedule::period_for(rate).map_err(|e| e.to_string())?;
    Ok(rate)
}

fn share(value: &str) -> Result<f64, String> {
    let share: f64 = value.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(format!("must be between 0 and 1, got {share}"))
    }
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
