//! `scenario incident`: the fault is set after the baseline, cleared after the incident, and
//! cleared on the way out when the scenario is stopped mid-incident.

use std::time::{Duration, Instant};

use mcp_loadgen::scenario::{self, Incident, ScenarioConfig};
use mcp_loadgen::shutdown::stop_pair;
use mcp_loadgen::traffic::TrafficConfig;
use mcp_mock_upstream::FaultProfile;
use serde_json::Value;

use crate::helpers::{Gateway, Mock, closed_port, traffic};

const ERRORS: Incident = Incident::Errors {
    rate: 0.3,
    status: 500,
};

fn scenario(target: &str, mock_root: &str, phases: [u64; 3]) -> ScenarioConfig {
    let [baseline, incident, recovery] = phases.map(Duration::from_millis);
    ScenarioConfig {
        traffic: TrafficConfig {
            duration: None,
            ..traffic(target, 40.0, Duration::ZERO)
        },
        mock_admin: mock_root.to_owned(),
        incident: ERRORS,
        baseline,
        incident_for: incident,
        recovery,
    }
}

fn error_rate(faults: &Value) -> f64 {
    faults["error_rate"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_sets_the_fault_then_clears_it_and_the_gateway_answers_502_in_between() {
    let gateway = Gateway::spawn();
    let mock = &gateway.mock;
    let config = scenario(&gateway.root, &mock.root, [1000, 2000, 1000]);
    let (_switch, stop) = stop_pair();
    let running = tokio::spawn(async move { scenario::run(&config, stop).await });
    let count_502 = || async {
        gateway
            .scrape()
            .await
            .sum("mcp_server_requests_total", &[("status", "502")])
    };

    let during = mock
        .faults_until(Duration::from_secs(5), |f| error_rate(f) == 0.3)
        .await;
    assert_eq!(during["error_status"], 500);
    let at_start = count_502().await;
    assert!(at_start <= 3.0, "502s before the incident: {at_start}");

    let after = mock
        .faults_until(Duration::from_secs(5), |f| error_rate(f) == 0.0)
        .await;
    let mut start_up = serde_json::to_value(FaultProfile::default()).unwrap();
    start_up["fail_next"] = 0.into();
    assert_eq!(after, start_up);
    let at_clear = count_502().await;
    // 2 s at 40/s with 30% failing is about 24 answers; far fewer means the fault never bit.
    assert!(
        at_clear - at_start >= 8.0,
        "502s during the incident: {}",
        at_clear - at_start
    );

    let summary = running.await.unwrap().unwrap();
    let phases: Vec<_> = summary.phases.iter().map(|phase| phase.name).collect();
    assert_eq!(phases, ["baseline", "incident", "recovery"]);
    let summary = summary.traffic;
    let at_end = count_502().await;
    assert!(
        at_end - at_clear <= 3.0,
        "502s during the recovery: {}",
        at_end - at_clear
    );
    // The loadgen saw exactly what the gateway answered.
    assert_eq!(summary.status(502) as f64, at_end);
    assert_eq!(
        summary.status(500),
        0,
        "the gateway turns upstream 5xx into 502"
    );
    assert!(
        summary.started >= 120,
        "traffic ran through every phase: {}",
        summary.started
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_the_incident_still_clears_the_fault() {
    let mock = Mock::spawn(FaultProfile::default());
    let config = scenario(&mock.root, &mock.root, [200, 60_000, 60_000]);
    let (switch, stop) = stop_pair();
    let running = tokio::spawn(async move { scenario::run(&config, stop).await });

    mock.faults_until(Duration::from_secs(5), |f| error_rate(f) == 0.3)
        .await;
    let stopped_at = Instant::now();
    switch.stop();
    let summary = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the scenario ends soon after a stop")
        .unwrap()
        .unwrap();

    assert!(stopped_at.elapsed() < Duration::from_secs(7));
    assert_eq!(error_rate(&mock.faults().await), 0.0);
    let phases: Vec<_> = summary.phases.iter().map(|phase| phase.name).collect();
    assert_eq!(phases, ["baseline", "incident"], "no recovery after a stop");
    assert!(summary.traffic.started > 0);
    let sent = mock.stats().await["requests_total"].as_u64().unwrap();
    assert_eq!(sent, summary.traffic.started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_mock_admin_fails_the_scenario_before_any_traffic() {
    let mock = Mock::spawn(FaultProfile::default());
    let admin = format!("http://127.0.0.1:{}", closed_port());
    let config = scenario(&mock.root, &admin, [200, 60_000, 60_000]);
    let (_switch, stop) = stop_pair();

    let result = tokio::time::timeout(Duration::from_secs(10), scenario::run(&config, stop))
        .await
        .expect("the scenario gives up promptly");

    let error = format!("{:#}", result.unwrap_err());
    assert!(error.contains("admin API does not answer"), "{error}");
    assert_eq!(
        mock.stats().await["requests_total"],
        0,
        "no traffic was sent"
    );
}
