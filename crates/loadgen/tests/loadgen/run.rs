//! `run`: the rate achieved, the mix, streams read to the end, limits and failures.

use std::time::Duration;

use mcp_loadgen::mix::{Endpoint, RequestKind, Weights};
use mcp_loadgen::shutdown::stop_pair;
use mcp_loadgen::tally::StatusClass;
use mcp_loadgen::traffic::{self, TrafficConfig};
use mcp_mock_upstream::FaultProfile;

use crate::helpers::{Gateway, Mock, closed_port, eventually, traffic};

/// Rate 40 for 2 s schedules 80 starts; a noisy machine may lose or bunch a few.
const EXPECTED_STARTS: std::ops::RangeInclusive<u64> = 70..=90;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_against_the_mock_starts_the_asked_rate_and_every_request_arrives() {
    let mock = Mock::spawn(FaultProfile::default());
    let (_switch, stop) = stop_pair();

    let summary =
        traffic::run_when_healthy(&traffic(&mock.root, 40.0, Duration::from_secs(2)), stop)
            .await
            .unwrap();

    assert!(
        EXPECTED_STARTS.contains(&summary.started),
        "started {}",
        summary.started
    );
    assert!(
        (35.0..=45.0).contains(&summary.rate()),
        "rate {}",
        summary.rate()
    );
    assert_eq!(summary.skipped, 0);
    let classes = summary.classes();
    assert_eq!(
        classes.total(),
        summary.started,
        "every request got an answer"
    );
    assert_eq!(classes.get(StatusClass::Failed), 0);
    assert!(summary.p50.is_some() && summary.p99 >= summary.p50);
    let stats = mock.stats().await;
    assert_eq!(stats["requests_total"].as_u64(), Some(summary.started));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_answers_from_the_mock_are_read_to_the_end() {
    let mock = Mock::spawn(FaultProfile::default());
    let (_switch, stop) = stop_pair();
    let config = TrafficConfig {
        weights: Weights::only(RequestKind::ChatSmall),
        stream_share: 0.5,
        ..traffic(&mock.root, 40.0, Duration::from_secs(1))
    };

    let summary = traffic::run(&config, stop).await.unwrap();

    assert!(summary.streams_completed > 5, "{summary:?}");
    assert_eq!(summary.stream_errors, 0);
    eventually(
        Duration::from_secs(3),
        "the mock to see every stream end",
        || async {
            let stats = mock.stats().await;
            stats["in_flight"] == 0 && stats["streams_completed"] == stats["streams_started"]
        },
    )
    .await;
    let stats = mock.stats().await;
    assert_eq!(
        stats["streams_started"].as_u64(),
        Some(summary.streams_completed)
    );
    assert_eq!(
        stats["streams_cancelled"], 0,
        "no stream was abandoned mid-way"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_through_the_gateway_hits_every_endpoint_and_the_gateway_counts_each_answer() {
    let gateway = Gateway::spawn();
    let (_switch, stop) = stop_pair();

    let summary =
        traffic::run_when_healthy(&traffic(&gateway.root, 40.0, Duration::from_secs(2)), stop)
            .await
            .unwrap();

    assert!(
        EXPECTED_STARTS.contains(&summary.started),
        "started {}",
        summary.started
    );
    let scrape = gateway.scrape().await;
    for endpoint in Endpoint::ALL {
        let seen = scrape.sum(
            "mcp_server_requests_total",
            &[("endpoint", endpoint.path())],
        );
        let sent = summary.endpoint(endpoint).total();
        assert!(sent > 0, "nothing sent to {}", endpoint.path());
        assert_eq!(seen, sent as f64, "{}", endpoint.path());
    }
    for (status, count) in &summary.statuses {
        let seen = scrape.sum(
            "mcp_server_requests_total",
            &[("status", &status.to_string())],
        );
        assert_eq!(seen, *count as f64, "status {status}");
    }
    // Streams went through the gateway and were read to the end, not abandoned.
    assert!(summary.streams_completed > 0);
    assert_eq!(summary.stream_errors, 0);
    assert!(scrape.sum("mcp_server_time_to_first_token_seconds_count", &[]) > 0.0);
    assert_eq!(scrape.sum("mcp_server_client_disconnects_total", &[]), 0.0);
    // Tokens flow for every model class the mix uses.
    for model in [
        "gpt-4o-mini",
        "gpt-3.5-turbo-instruct",
        "text-embedding-3-small",
    ] {
        let tokens = scrape.sum("mcp_server_token_usage_total", &[("model", model)]);
        assert!(tokens > 0.0, "no tokens for {model}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliberate_client_errors_reach_the_gateways_error_counters() {
    let gateway = Gateway::spawn();
    let cases = [
        (RequestKind::UnknownModel, 404, "model_not_found"),
        (RequestKind::MalformedBody, 400, "invalid_request"),
    ];
    for (kind, status, error_type) in cases {
        let (_switch, stop) = stop_pair();
        let config = TrafficConfig {
            weights: Weights::only(kind),
            ..traffic(&gateway.root, 20.0, Duration::from_millis(500))
        };
        let summary = traffic::run(&config, stop).await.unwrap();
        assert!(summary.status(status) > 0, "{kind:?}: {summary:?}");
        assert_eq!(summary.status(status), summary.started, "{kind:?}");
        let scrape = gateway.scrape().await;
        let counted = scrape.sum("mcp_server_errors_total", &[("error_type", error_type)]);
        assert_eq!(counted, summary.started as f64, "{error_type}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_cut_by_the_upstream_are_counted_as_stream_errors() {
    let mock = Mock::spawn(FaultProfile {
        stream_cut_rate: 1.0,
        ..FaultProfile::default()
    });
    let (_switch, stop) = stop_pair();
    let config = TrafficConfig {
        weights: Weights::only(RequestKind::Completion),
        stream_share: 1.0,
        ..traffic(&mock.root, 20.0, Duration::from_secs(1))
    };

    let summary = traffic::run(&config, stop).await.unwrap();

    assert!(summary.started > 5);
    assert_eq!(summary.stream_errors, summary.started);
    assert_eq!(summary.streams_completed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_concurrency_limit_are_skipped_not_queued() {
    // An upstream that never answers keeps every request in flight.
    let mock = Mock::spawn(FaultProfile {
        hang_rate: 1.0,
        ..FaultProfile::default()
    });
    let (_switch, stop) = stop_pair();
    let config = TrafficConfig {
        concurrency_limit: 5,
        request_timeout: Duration::from_secs(2),
        ..traffic(&mock.root, 50.0, Duration::from_secs(1))
    };

    let summary = traffic::run(&config, stop).await.unwrap();

    assert_eq!(summary.started, 5);
    assert!(
        (38..=50).contains(&summary.skipped),
        "skipped {}",
        summary.skipped
    );
    // The hung requests time out and are counted as failures, not lost.
    assert_eq!(summary.classes().get(StatusClass::Failed), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_counted_and_the_schedule_goes_on() {
    let target = format!("http://127.0.0.1:{}", closed_port());
    let (_switch, stop) = stop_pair();

    let summary = traffic::run(&traffic(&target, 20.0, Duration::from_secs(1)), stop)
        .await
        .unwrap();

    assert!(summary.started >= 15, "started {}", summary.started);
    assert_eq!(summary.classes().get(StatusClass::Failed), summary.started);
}
