//! `scenario failover`: the fault is set on the primary only, then cleared, and every answer is
//! counted in its phase by the upstream that served it: through a stand-in for the gateway's
//! fallback (named upstreams, no errors during the outage), and straight at the primary (no
//! header, so every answer is `unknown`, and the outage shows as errors).

use std::time::Duration;

use mcp_loadgen::phases::{PhaseSummary, UNKNOWN_UPSTREAM};
use mcp_loadgen::scenario::{self, Incident, ScenarioConfig, ScenarioSummary};
use mcp_loadgen::shutdown::stop_pair;
use mcp_loadgen::tally::StatusClass;
use mcp_loadgen::traffic::TrafficConfig;
use mcp_mock_upstream::FaultProfile;
use serde_json::Value;

use crate::fallback::FallbackGateway;
use crate::helpers::{Mock, traffic};

/// Requests in flight when a phase changes may meet the other phase's profile: one started
/// just before the fault is set may reach the mock after it, and one started just before the
/// fault is cleared may reach it after that (the recovery is exact: its requests all start once
/// the fault is gone).
const BOUNDARY_SLACK: u64 = 3;

fn failover(target: &str, primary_admin: &str, phases: [u64; 3]) -> ScenarioConfig {
    let [baseline, outage, recovery] = phases.map(Duration::from_millis);
    ScenarioConfig {
        traffic: TrafficConfig {
            duration: None,
            ..traffic(target, 40.0, Duration::ZERO)
        },
        mock_admin: primary_admin.to_owned(),
        incident: Incident::Outage {
            rate: 1.0,
            status: 503,
        },
        baseline,
        incident_for: outage,
        recovery,
    }
}

/// Runs the scenario, checking on the primary's admin API that the fault is set, then cleared.
async fn run_watching_the_primary(config: ScenarioConfig, primary: &Mock) -> ScenarioSummary {
    let (_switch, stop) = stop_pair();
    let running = tokio::spawn(async move { scenario::run(&config, stop).await });
    let during = primary
        .faults_until(Duration::from_secs(5), |f| f["error_rate"] == 1.0)
        .await;
    assert_eq!(during["error_status"], 503);
    let after = primary
        .faults_until(Duration::from_secs(5), |f| f["error_rate"] == 0.0)
        .await;
    assert_eq!(after["error_status"], 500, "the start-up profile is back");
    running.await.unwrap().unwrap()
}

fn phases(summary: &ScenarioSummary) -> [&PhaseSummary; 3] {
    let names: Vec<_> = summary.phases.iter().map(|phase| phase.name).collect();
    assert_eq!(names, ["baseline", "outage", "recovery"]);
    [0, 1, 2].map(|index| &summary.phases[index])
}

fn requests_total(stats: &Value) -> u64 {
    stats["requests_total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_fallback_the_outage_moves_answers_to_the_secondary_and_back() {
    let primary = Mock::spawn(FaultProfile::default());
    let secondary = Mock::spawn(FaultProfile::default());
    let gateway = FallbackGateway::spawn(&primary.root, &secondary.root).await;
    let config = failover(&gateway.root, &primary.root, [1000, 1500, 1000]);

    let summary = run_watching_the_primary(config, &primary).await;

    assert_eq!(secondary.faults().await["error_rate"], 0.0, "never touched");
    let [baseline, outage, recovery] = phases(&summary);
    for phase in [baseline, outage, recovery] {
        assert_eq!(
            phase.errors(),
            0,
            "the fallback hid every failure: {phase:?}"
        );
        assert_eq!(phase.upstreams.get(UNKNOWN_UPSTREAM), 0, "{phase:?}");
    }
    assert!(baseline.upstreams.get("primary") >= 20, "{baseline:?}");
    assert!(
        baseline.upstreams.get("secondary") <= BOUNDARY_SLACK,
        "{baseline:?}"
    );
    assert!(outage.upstreams.get("secondary") >= 30, "{outage:?}");
    // The primary still refuses the mix's malformed bodies (400) itself: validation comes
    // before the injected fault. Apart from those, it serves only requests at the boundary.
    assert!(
        outage.upstreams.get("primary")
            <= outage.classes.get(StatusClass::ClientError) + BOUNDARY_SLACK,
        "{outage:?}"
    );
    // Recovery requests start once the fault is cleared: all of them are the primary's.
    assert!(recovery.upstreams.get("primary") >= 20, "{recovery:?}");
    assert_eq!(recovery.upstreams.get("secondary"), 0, "{recovery:?}");

    // Every request reached the primary first, and every one the secondary served is counted.
    assert_eq!(
        requests_total(&primary.stats().await),
        summary.traffic.started
    );
    let served_by_secondary: u64 = summary
        .phases
        .iter()
        .map(|phase| phase.upstreams.get("secondary"))
        .sum();
    assert_eq!(
        requests_total(&secondary.stats().await),
        served_by_secondary
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn straight_at_the_primary_every_answer_is_unknown_and_the_outage_shows_as_errors() {
    let primary = Mock::spawn(FaultProfile::default());
    let config = failover(&primary.root, &primary.root, [800, 1200, 800]);

    let summary = run_watching_the_primary(config, &primary).await;

    let [baseline, outage, recovery] = phases(&summary);
    for phase in [baseline, outage, recovery] {
        let answers = phase.upstreams.total();
        assert!(answers >= 15, "{phase:?}");
        assert_eq!(phase.upstreams.get(UNKNOWN_UPSTREAM), answers, "{phase:?}");
    }
    assert!(baseline.errors() <= BOUNDARY_SLACK, "{baseline:?}");
    // Outage requests meet the fault (503, or 400 for a malformed body), but at the boundary.
    assert!(
        outage.classes.get(StatusClass::Success) <= BOUNDARY_SLACK,
        "{outage:?}"
    );
    assert!(outage.errors() >= 30, "{outage:?}");
    assert_eq!(recovery.errors(), 0, "{recovery:?}");
    let server_errors: u64 = summary
        .phases
        .iter()
        .map(|phase| phase.classes.get(StatusClass::ServerError))
        .sum();
    assert_eq!(summary.traffic.status(503), server_errors);
}
