//! Steady open-loop traffic: on every tick of the [`Schedule`] a request is drawn from the
//! [`RequestMix`] and sent in its own task, whether or not earlier answers have come back.
//! In-flight requests are capped: a tick that finds the cap reached is counted as skipped, so
//! a stuck gateway costs bounded memory instead of an ever-growing queue. Every
//! `report_every` one summary line is logged, and a final summary when the traffic stops.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::health::{self, Readiness};
use crate::keys::ApiKey;
use crate::mix::{Endpoint, RequestMix, Weights};
use crate::phases::PhaseTally;
use crate::schedule::Schedule;
use crate::shutdown::Stop;
use crate::tally::{StatusClass, Summary, Tally};
use crate::target::Target;

/// How long requests still in flight may finish once the traffic stops; then they are
/// abandoned (well inside the 10 s `docker stop` gives before it kills).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What to send, where, and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficConfig {
    /// The gateway's root URLs, e.g. `http://127.0.0.1:8080`: one, or one per replica, sent
    /// requests in turn.
    pub targets: Vec<String>,
    /// Requests started per second.
    pub rate: f64,
    /// Stop after this long; `None` runs until stopped.
    pub duration: Option<Duration>,
    /// Most requests in flight at once; beyond it requests are skipped.
    pub concurrency_limit: usize,
    /// Share (0..=1) of chat and completion requests that ask for a stream.
    pub stream_share: f64,
    /// Makes the sequence of requests reproducible.
    pub seed: Option<u64>,
    /// The request mix.
    pub weights: Weights,
    /// Longest a request (a stream included) may take to its last byte.
    pub request_timeout: Duration,
    /// Time between two summary lines.
    pub report_every: Duration,
    /// How long to wait for `GET /health` before giving up.
    pub health_wait: Duration,
    /// Client keys, presented in turn; none: requests carry no `Authorization` header.
    pub api_keys: Vec<ApiKey>,
}

impl TrafficConfig {
    /// The defaults, aimed at `target`.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            targets: vec![target.into()],
            rate: 5.0,
            duration: None,
            concurrency_limit: 256,
            stream_share: 0.3,
            seed: None,
            weights: Weights::DEFAULT,
            request_timeout: Duration::from_secs(120),
            report_every: Duration::from_secs(10),
            health_wait: Duration::from_secs(120),
            api_keys: Vec::new(),
        }
    }

    /// The client for [`Self::targets`], with the keys it presents.
    pub fn open_target(&self) -> anyhow::Result<Target> {
        Target::new(&self.targets, self.request_timeout, &self.api_keys)
    }
}

/// Waits for the target's `/health`, then sends traffic until `duration` or `stop`. A stop
/// during the wait ends the run with nothing sent; a wait that times out is an error.
pub async fn run_when_healthy(config: &TrafficConfig, stop: Stop) -> anyhow::Result<Summary> {
    let target = config.open_target()?;
    match health::wait_until_healthy(&target, config.health_wait, stop.clone()).await? {
        Readiness::Healthy => run_against(config, target, stop, None).await,
        Readiness::Stopped => {
            tracing::info!("stopped before the target was healthy; nothing sent");
            Ok(Tally::new().summary())
        }
    }
}

/// Sends traffic until `duration` or `stop`, without waiting for `/health` first.
pub async fn run(config: &TrafficConfig, stop: Stop) -> anyhow::Result<Summary> {
    let target = config.open_target()?;
    run_against(config, target, stop, None).await
}

/// Like [`run`], and also counts every answer in the phase of `phases` that was current when
/// its request started.
pub async fn run_in_phases(
    config: &TrafficConfig,
    stop: Stop,
    phases: Arc<PhaseTally>,
) -> anyhow::Result<Summary> {
    let target = config.open_target()?;
    run_against(config, target, stop, Some(phases)).await
}

async fn run_against(
    config: &TrafficConfig,
    target: Target,
    mut stop: Stop,
    phases: Option<Arc<PhaseTally>>,
) -> anyhow::Result<Summary> {
    let mut schedule = Schedule::start(config.rate).context("invalid --rate")?;
    let mut mix = RequestMix::new(config.weights, config.stream_share, config.seed)
        .with_keys(config.api_keys.len());
    let tally = Arc::new(Tally::new());
    let permits = Arc::new(Semaphore::new(
        config.concurrency_limit.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut in_flight = JoinSet::new();
    let report_every = config.report_every.max(Duration::from_millis(100));
    let mut reports = tokio::time::interval_at(Instant::now() + report_every, report_every);
    reports.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let started = Instant::now();
    let finished = async {
        match config.duration {
            Some(duration) => tokio::time::sleep_until(started + duration).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(finished);
    tracing::info!(
        url = %target.roots().join(","),
        rate = config.rate,
        duration_s = config.duration.map(|d| d.as_secs_f64()),
        concurrency_limit = config.concurrency_limit,
        stream_share = config.stream_share,
        seed = config.seed,
        // How many, never which: the keys are secrets.
        api_keys = config.api_keys.len(),
        "sending traffic"
    );

    loop {
        tokio::select! {
            biased;
            () = stop.stopped() => break,
            () = &mut finished => break,
            _ = reports.tick() => log_window(&tally.take_window(), in_flight.len()),
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Err(error) = joined {
                    tracing::warn!(%error, "a request task failed");
                }
            }
            _ = schedule.next() => {
                let request = mix.draw();
                // A permit travels with its task and frees its slot when the task ends.
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    tally.skipped();
                    continue;
                };
                tally.started();
                let target = target.clone();
                let tally = Arc::clone(&tally);
                let phase = phases.as_ref().map(|phases| (Arc::clone(phases), phases.current()));
                in_flight.spawn(async move {
                    let outcome = target.send(&request).await;
                    tally.record(&outcome);
                    if let Some((phases, index)) = phase {
                        phases.record(index, &outcome);
                    }
                    drop(permit);
                });
            }
        }
    }

    let sent_for = started.elapsed();
    drain(&mut in_flight).await;
    let mut summary = tally.summary();
    // The rate is about the sending, not the wait for the last answers.
    summary.elapsed = sent_for;
    log_final(&summary);
    Ok(summary)
}

/// Lets the requests in flight finish, for a while.
async fn drain(in_flight: &mut JoinSet<()>) {
    if in_flight.is_empty() {
        return;
    }
    tracing::info!(
        in_flight = in_flight.len(),
        "traffic stopped; waiting for the answers in flight"
    );
    let finished = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            abandoned = in_flight.len(),
            "requests still in flight after {} s are abandoned",
            DRAIN_TIMEOUT.as_secs()
        );
        in_flight.shutdown().await;
    }
}

fn millis(latency: Option<Duration>) -> String {
    latency.map_or_else(
        || "-".to_owned(),
        |l| format!("{:.1}", l.as_secs_f64() * 1e3),
    )
}

fn log_window(window: &Summary, in_flight: usize) {
    let classes = window.classes();
    tracing::info!(
        window_s = format_args!("{:.0}", window.elapsed.as_secs_f64()),
        rate_per_s = format_args!("{:.1}", window.rate()),
        p50_ms = %millis(window.p50),
        p99_ms = %millis(window.p99),
        status_2xx = classes.get(StatusClass::Success),
        status_4xx = classes.get(StatusClass::ClientError),
        status_5xx = classes.get(StatusClass::ServerError),
        failed = classes.get(StatusClass::Failed),
        skipped = window.skipped,
        streams_ok = window.streams_completed,
        stream_errors = window.stream_errors,
        in_flight,
        "traffic"
    );
}

fn log_final(summary: &Summary) {
    let classes = summary.classes();
    let statuses: Vec<String> = summary
        .statuses
        .iter()
        .map(|(status, count)| format!("{status}={count}"))
        .collect();
    tracing::info!(
        duration_s = format_args!("{:.1}", summary.elapsed.as_secs_f64()),
        started = summary.started,
        rate_per_s = format_args!("{:.1}", summary.rate()),
        p50_ms = %millis(summary.p50),
        p99_ms = %millis(summary.p99),
        status_2xx = classes.get(StatusClass::Success),
        status_4xx = classes.get(StatusClass::ClientError),
        status_5xx = classes.get(StatusClass::ServerError),
        failed = classes.get(StatusClass::Failed),
        unfinished = summary.started.saturating_sub(classes.total()),
        skipped = summary.skipped,
        streams_ok = summary.streams_completed,
        stream_errors = summary.stream_errors,
        statuses = %statuses.join(" "),
        "final summary"
    );
    for endpoint in Endpoint::ALL {
        let counts = summary.endpoint(endpoint);
        tracing::info!(
            endpoint = endpoint.path(),
            status_2xx = counts.get(StatusClass::Success),
            status_4xx = counts.get(StatusClass::ClientError),
            status_5xx = counts.get(StatusClass::ServerError),
            failed = counts.get(StatusClass::Failed),
            "final summary by endpoint"
        );
    }
}
