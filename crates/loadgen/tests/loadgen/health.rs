//! Waiting for `GET /health` before sending traffic.

use std::time::{Duration, Instant};

use mcp_loadgen::health::NotHealthy;
use mcp_loadgen::shutdown::stop_pair;
use mcp_loadgen::traffic::{self, TrafficConfig};
use mcp_mock_upstream::FaultProfile;

use crate::helpers::{Mock, closed_port, traffic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_health_times_out_cleanly_when_nothing_listens() {
    let target = format!("http://127.0.0.1:{}", closed_port());
    let config = TrafficConfig {
        health_wait: Duration::from_secs(1),
        ..traffic(&target, 20.0, Duration::from_secs(1))
    };
    let (_switch, stop) = stop_pair();
    let started = Instant::now();

    let error = traffic::run_when_healthy(&config, stop).await.unwrap_err();

    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(4), "gave up after {waited:?}");
    let not_healthy = error
        .downcast_ref::<NotHealthy>()
        .expect("a health timeout");
    assert_eq!(not_healthy.url, format!("{target}/health"));
    assert!(
        not_healthy.last_error.contains("onnect"),
        "{}",
        not_healthy.last_error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_waiting_for_health_ends_the_run_without_traffic() {
    let target = format!("http://127.0.0.1:{}", closed_port());
    let config = TrafficConfig {
        health_wait: Duration::from_secs(60),
        ..traffic(&target, 20.0, Duration::from_secs(1))
    };
    let (switch, stop) = stop_pair();
    let waiting = tokio::spawn(async move { traffic::run_when_healthy(&config, stop).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    switch.stop();

    let summary = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the wait ends on a stop")
        .unwrap()
        .unwrap();
    assert_eq!(summary.started, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_starts_once_a_late_target_becomes_healthy() {
    // Reserve a port, start waiting on it, then bring the mock up there.
    let port = closed_port();
    let target = format!("http://127.0.0.1:{port}");
    let config = traffic(&target, 20.0, Duration::from_millis(500));
    let (_switch, stop) = stop_pair();
    let waiting = tokio::spawn(async move { traffic::run_when_healthy(&config, stop).await });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!waiting.is_finished());
    let mock = Mock::spawn_on(port, FaultProfile::default());

    let summary = waiting.await.unwrap().unwrap();

    assert!(summary.started >= 5, "started {}", summary.started);
    assert_eq!(summary.classes().total(), summary.started);
    let stats = mock.stats().await;
    assert_eq!(stats["requests_total"].as_u64(), Some(summary.started));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_several_targets_traffic_waits_for_every_one_and_names_the_one_missing() {
    let mock = Mock::spawn(FaultProfile::default());
    let missing = format!("http://127.0.0.1:{}", closed_port());
    let config = TrafficConfig {
        targets: vec![mock.root.clone(), missing.clone()],
        health_wait: Duration::from_secs(1),
        ..traffic(&mock.root, 20.0, Duration::from_secs(1))
    };
    let (_switch, stop) = stop_pair();

    let error = traffic::run_when_healthy(&config, stop).await.unwrap_err();

    let not_healthy = error
        .downcast_ref::<NotHealthy>()
        .expect("a health timeout");
    assert_eq!(not_healthy.url, format!("{missing}/health"));
    assert_eq!(
        mock.stats().await["requests_total"].as_u64(),
        Some(0),
        "nothing is sent before every target is healthy"
    );
}
