//! Waiting for the gateway before sending traffic: in the compose stack the loadgen may start
//! before the gateway listens, and requests sent into a closed port would only fill the
//! summaries with failures. Polls `GET {target}/health` until it answers 200, logging every
//! few seconds, and gives up after the configured wait.

use std::time::Duration;

use tokio::time::Instant;

use crate::shutdown::Stop;
use crate::target::Target;

/// Time between two probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// Time between two "still waiting" log lines.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// How the wait ended, when it did not time out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `/health` answered 200.
    Healthy,
    /// A stop was asked for while waiting.
    Stopped,
}

/// The target did not become healthy in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotHealthy {
    /// The URL probed last, the one that did not answer 200 (of several replicas, the first
    /// that did not).
    pub url: String,
    /// How long the loadgen waited.
    pub waited: Duration,
    /// What the last probe saw.
    pub last_error: String,
}

impl std::fmt::Display for NotHealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} did not answer 200 within {} s (last probe: {})",
            self.url,
            self.waited.as_secs(),
            self.last_error
        )
    }
}

impl std::error::Error for NotHealthy {}

/// Probes the target's `/health` (every replica's) until it answers 200, `stop` fires, or
/// `wait` has passed.
pub async fn wait_until_healthy(
    target: &Target,
    wait: Duration,
    mut stop: Stop,
) -> Result<Readiness, NotHealthy> {
    let started = Instant::now();
    let deadline = started + wait;
    let mut next_log = started + LOG_INTERVAL;
    loop {
        let unhealthy = match target.probe_health().await {
            Ok(()) => {
                let url = target.health_urls().join(",");
                tracing::info!(%url, waited_ms = started.elapsed().as_millis() as u64, "target is healthy");
                return Ok(Readiness::Healthy);
            }
            Err(unhealthy) => unhealthy,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(NotHealthy {
                url: unhealthy.url,
                waited: wait,
                last_error: unhealthy.error,
            });
        }
        if now >= next_log {
            tracing::info!(url = %unhealthy.url, error = %unhealthy.error, waited_s = started.elapsed().as_secs(), "waiting for the target to be healthy");
            next_log += LOG_INTERVAL;
        }
        tokio::select! {
            () = tokio::time::sleep(PROBE_INTERVAL.min(deadline - now)) => {}
            () = stop.stopped() => return Ok(Readiness::Stopped),
        }
    }
}
