//! Scenarios: steady traffic the whole time, with the mock upstream broken on purpose in the
//! middle, so that an operator can watch an alert fire and resolve, or the gateway fail over.
//! Three phases: a baseline of healthy traffic, an [`Incident`] during which the mock's fault
//! profile is patched, and a recovery after the profile is reset to its start-up state. Every
//! answer is also counted in its phase, by the upstream that served it ([`PhaseTally`]).
//!
//! The fault is cleared on every way out of the incident phase, a stop included: a demo
//! interrupted mid-incident must not leave the stack failing.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::admin::MockAdmin;
use crate::health::{self, Readiness};
use crate::phases::{self, PhaseSummary, PhaseTally};
use crate::schedule;
use crate::shutdown::{Stop, stop_pair};
use crate::tally::{Summary, Tally};
use crate::traffic::{self, TrafficConfig};

/// The phase before the fault, in the log lines and the phase summary.
const BASELINE: &str = "baseline";
/// The phase after the fault is cleared.
const RECOVERY: &str = "recovery";

/// What breaks during the incident.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Incident {
    /// A share of requests answered with an error status (the error-rate alerts).
    Errors { rate: f64, status: u16 },
    /// Every answer delayed (the latency and time-to-first-token alerts).
    Slow { latency_ms: u64, jitter_ms: u64 },
    /// The primary upstream fails hard (the gateway's retries, fallback and circuit breaker);
    /// the patch is the same as [`Self::Errors`], on the primary's admin API.
    Outage { rate: f64, status: u16 },
}

impl Incident {
    /// The patch sent to `PUT /admin/faults`.
    pub fn patch(&self) -> Value {
        match *self {
            Self::Errors { rate, status } | Self::Outage { rate, status } => {
                json!({"error_rate": rate, "error_status": status})
            }
            Self::Slow {
                latency_ms,
                jitter_ms,
            } => json!({"latency_ms": latency_ms, "jitter_ms": jitter_ms}),
        }
    }

    /// The name of the phase it is in force, in the log lines and the phase summary.
    pub fn phase(&self) -> &'static str {
        match self {
            Self::Errors { .. } | Self::Slow { .. } => "incident",
            Self::Outage { .. } => "outage",
        }
    }
}

impl std::fmt::Display for Incident {
    /// As in "incident started: 30% 500s" or "outage started: the primary answers 100% 503s".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Rounded to a tenth of a percent: 0.3 × 100 is 30.000000000000004.
        let percent = |rate: f64| (rate * 1000.0).round() / 10.0;
        match *self {
            Self::Errors { rate, status } => write!(f, "{}% {status}s", percent(rate)),
            Self::Outage { rate, status } => {
                write!(f, "the primary answers {}% {status}s", percent(rate))
            }
            Self::Slow {
                latency_ms,
                jitter_ms,
            } => write!(f, "{latency_ms} ms ± {jitter_ms} ms before every answer"),
        }
    }
}

/// A whole scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioConfig {
    /// The steady traffic; its `duration` is ignored (the phases decide).
    pub traffic: TrafficConfig,
    /// The mock upstream's root URL, where `/admin/faults` lives (the primary's, for an
    /// [`Incident::Outage`]).
    pub mock_admin: String,
    pub incident: Incident,
    /// Healthy traffic before the incident.
    pub baseline: Duration,
    /// How long the fault stays in force.
    pub incident_for: Duration,
    /// Healthy traffic after the fault is cleared.
    pub recovery: Duration,
}

/// What a scenario saw: the whole run, and each phase by itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioSummary {
    /// The traffic's summary over every phase.
    pub traffic: Summary,
    /// The phases begun, in order: baseline, the incident's, recovery.
    pub phases: Vec<PhaseSummary>,
}

/// Waits for the target's `/health`, then runs the phases with traffic throughout. Returns the
/// traffic's summary and the phases'; an error if the fault could not be set or cleared.
pub async fn run(config: &ScenarioConfig, stop: Stop) -> anyhow::Result<ScenarioSummary> {
    schedule::period_for(config.traffic.rate)?;
    let admin = MockAdmin::new(&config.mock_admin)?;
    // Built with the keys, so that a key that cannot be sent fails before the baseline.
    let target = config.traffic.open_target()?;
    let wait = config.traffic.health_wait;
    if health::wait_until_healthy(&target, wait, stop.clone()).await? == Readiness::Stopped {
        tracing::info!("stopped before the target was healthy; nothing sent");
        return Ok(ScenarioSummary {
            traffic: Tally::new().summary(),
            phases: Vec::new(),
        });
    }
    // Fail now rather than after the baseline if the fault cannot be set.
    let profile = admin
        .show()
        .await
        .context("the mock upstream's admin API does not answer")?;
    tracing::info!(%profile, "fault profile before the {}", config.incident.phase());

    let (traffic_switch, traffic_stop) = stop_pair();
    let traffic_config = TrafficConfig {
        duration: None,
        ..config.traffic.clone()
    };
    let tally = Arc::new(PhaseTally::new(BASELINE));
    let traffic = {
        let tally = Arc::clone(&tally);
        tokio::spawn(
            async move { traffic::run_in_phases(&traffic_config, traffic_stop, tally).await },
        )
    };
    let ran = run_phases(config, &admin, &tally, stop).await;
    tally.finish();
    traffic_switch.stop();
    let summary = traffic.await.context("the traffic task failed")??;
    let phases = tally.summaries();
    phases::log_summaries(&phases);
    ran?;
    Ok(ScenarioSummary {
        traffic: summary,
        phases,
    })
}

async fn run_phases(
    config: &ScenarioConfig,
    admin: &MockAdmin,
    tally: &PhaseTally,
    mut stop: Stop,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let at = || format!("{:.1}", started.elapsed().as_secs_f64());
    tracing::info!(t_s = %at(), seconds = config.baseline.as_secs_f64(), "baseline started");
    if !hold(config.baseline, &mut stop).await {
        tracing::info!(t_s = %at(), "stopped during the baseline; no fault was set");
        return Ok(());
    }

    let incident = config.incident;
    let phase = incident.phase();
    if let Err(error) = admin.set(&incident.patch()).await {
        // The patch may have been applied even if its answer was lost: undo it to be safe.
        clear(admin, phase, &at()).await.ok();
        return Err(error.context(format!("could not start the {phase}")));
    }
    // The phase begins once the fault is in force, so its requests all meet the fault.
    tally.begin(phase);
    tracing::info!(t_s = %at(), seconds = config.incident_for.as_secs_f64(), "{phase} started: {incident}");
    let interrupted = !hold(config.incident_for, &mut stop).await;
    if interrupted {
        tracing::warn!(t_s = %at(), "stopped during the {phase}; clearing the fault before exiting");
    }
    clear(admin, phase, &at()).await?;
    if interrupted {
        return Ok(());
    }

    // Likewise, recovery requests all start after the fault is gone.
    tally.begin(RECOVERY);
    tracing::info!(t_s = %at(), seconds = config.recovery.as_secs_f64(), "recovery started");
    if hold(config.recovery, &mut stop).await {
        tracing::info!(t_s = %at(), "scenario finished");
    } else {
        tracing::info!(t_s = %at(), "stopped during the recovery");
    }
    Ok(())
}

/// Resets the mock's fault profile, logging the outcome either way.
async fn clear(admin: &MockAdmin, phase: &str, at: &str) -> anyhow::Result<()> {
    match admin.clear().await {
        Ok(profile) => {
            tracing::info!(t_s = %at, %profile, "{phase} cleared");
            Ok(())
        }
        Err(error) => {
            tracing::error!(
                t_s = %at,
                error = %format!("{error:#}"),
                "could not clear the fault; run `mcp-loadgen faults clear` by hand"
            );
            Err(error.context(format!("could not clear the {phase}'s fault")))
        }
    }
}

/// Waits `phase` out; `false` if a stop came first.
async fn hold(phase: Duration, stop: &mut Stop) -> bool {
    tokio::select! {
        () = tokio::time::sleep(phase) => true,
        () = stop.stopped() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_incident_patches_rate_and_status_and_reads_as_a_percentage() {
        let incident = Incident::Errors {
            rate: 0.3,
            status: 500,
        };
        assert_eq!(
            incident.patch(),
            json!({"error_rate": 0.3, "error_status": 500})
        );
        assert_eq!(incident.to_string(), "30% 500s");
    }

    #[test]
    fn a_slow_incident_patches_latency_and_jitter() {
        let incident = Incident::Slow {
            latency_ms: 4000,
            jitter_ms: 1000,
        };
        assert_eq!(
            incident.patch(),
            json!({"latency_ms": 4000, "jitter_ms": 1000})
        );
        assert!(incident.to_string().starts_with("4000 ms"));
        assert_eq!(incident.phase(), "incident");
    }

    #[test]
    fn an_outage_patches_like_errors_and_names_its_phase() {
        let outage = Incident::Outage {
            rate: 1.0,
            status: 503,
        };
        assert_eq!(
            outage.patch(),
            json!({"error_rate": 1.0, "error_status": 503})
        );
        assert_eq!(outage.to_string(), "the primary answers 100% 503s");
        assert_eq!(outage.phase(), "outage");
    }
}
