//! The admin API: the fault profile at run time, the counters, and the alert sink.

use std::time::Duration;

use futures_util::StreamExt;
use mcp_mock_upstream::{FaultProfile, MockOptions};
use serde_json::{Value, json};

use crate::helpers::{chat_request, spawn_mock, spawn_with_faults, streaming};

#[tokio::test]
async fn a_fault_patch_merges_into_the_profile_and_takes_effect() {
    let mock = spawn_with_faults(FaultProfile {
        latency_ms: 5,
        ..FaultProfile::default()
    })
    .await;
    let response = mock
        .put_faults(&json!({"error_rate": 1.0, "error_status": 502}))
        .await;
    assert_eq!(response.status(), 200);
    let profile: Value = response.json().await.unwrap();
    assert_eq!(profile["error_rate"], 1.0);
    assert_eq!(profile["error_status"], 502);
    assert_eq!(profile["latency_ms"], 5);
    assert_eq!(mock.get_json("/admin/faults").await, profile);

    let response = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    assert_eq!(response.status(), 502);
}

#[tokio::test]
async fn an_invalid_patch_is_refused_by_name_and_changes_nothing() {
    let mock = spawn_mock(MockOptions::default()).await;
    let before = mock.get_json("/admin/faults").await;

    let response = mock
        .put_faults(&json!({"error_rate": 0.5, "eror_status": 1}))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("eror_status"),
        "{body}"
    );

    let response = mock.put_faults(&json!({"hang_rate": 1.5})).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "hang_rate");

    let response = mock.put_faults(&json!({"error_status": 302})).await;
    assert_eq!(response.status(), 400);

    let response = mock
        .client
        .put(mock.url("/admin/faults"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    assert_eq!(mock.get_json("/admin/faults").await, before);
}

#[tokio::test]
async fn deleting_the_faults_restores_the_start_up_profile() {
    let start = FaultProfile {
        latency_ms: 7,
        error_status: 429,
        ..FaultProfile::default()
    };
    let mock = spawn_with_faults(start).await;
    mock.put_faults(&json!({"latency_ms": 0, "hang_rate": 0.5}))
        .await;
    let response = mock
        .client
        .delete(mock.url("/admin/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let restored: Value = response.json().await.unwrap();
    assert_eq!(profile_of(&restored), start);
    assert_eq!(restored["fail_next"], 0);
    let current = mock.get_json("/admin/faults").await;
    assert_eq!(profile_of(&current), start);
}

/// The profile part of an `/admin/faults` answer (which also shows the `fail_next` countdown).
fn profile_of(faults: &Value) -> FaultProfile {
    let mut profile = faults.clone();
    profile.as_object_mut().unwrap().remove("fail_next");
    serde_json::from_value(profile).unwrap()
}

#[tokio::test]
async fn stats_count_api_requests_and_completed_streams_but_not_admin_calls() {
    let mock = spawn_mock(MockOptions::default()).await;
    mock.post_api("/chat/completions", &chat_request("hi"))
        .await;
    let body = mock
        .post_api("/chat/completions", &streaming(chat_request("hi"), false))
        .await
        .text()
        .await
        .unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"));
    mock.get_json("/health").await;
    let stats = mock.wait_for_stat("streams_completed", 1).await;
    assert_eq!(
        stats,
        json!({
            "instance": "mock", "requests_total": 2, "in_flight": 0, "max_in_flight": 1,
            "streams_started": 1, "streams_completed": 1, "streams_cancelled": 0, "streams_cut": 0,
            "last_request_id": null,
        })
    );
}

#[tokio::test]
async fn max_in_flight_keeps_the_peak_of_requests_held_together() {
    let mock = spawn_with_faults(FaultProfile {
        latency_ms: 60_000,
        ..FaultProfile::default()
    })
    .await;
    // Held by the latency until their clients leave, so all three are in flight at once.
    let held: Vec<_> = (0..3)
        .map(|_| {
            let client = mock.client.clone();
            let url = format!("{}/chat/completions", mock.base_url);
            tokio::spawn(async move { client.post(url).json(&chat_request("hi")).send().await })
        })
        .collect();
    let stats = mock.wait_for_stat("in_flight", 3).await;
    assert_eq!(stats["max_in_flight"], 3);

    for request in &held {
        request.abort();
    }
    let stats = mock.wait_for_stat("in_flight", 0).await;
    assert_eq!(stats["max_in_flight"], 3, "the peak outlives the requests");

    mock.put_faults(&json!({"latency_ms": 0})).await;
    mock.post_api("/chat/completions", &chat_request("hi"))
        .await;
    let stats = mock.wait_for_stat("requests_total", 4).await;
    assert_eq!(
        stats["max_in_flight"], 3,
        "one request alone is no new peak"
    );
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_shows_up_as_a_cancelled_stream() {
    let mock = spawn_with_faults(FaultProfile {
        token_interval_ms: 50,
        ..FaultProfile::default()
    })
    .await;
    let mut request = streaming(chat_request("hi"), true);
    request["max_tokens"] = 100.into();
    let response = mock.post_api("/chat/completions", &request).await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    assert_eq!(mock.stats().await["in_flight"], 1);
    drop(body);

    let stats = mock.wait_for_stat("streams_cancelled", 1).await;
    assert_eq!(stats["streams_completed"], 0);
    assert_eq!(stats["streams_started"], 1);
    mock.wait_for_stat("in_flight", 0).await;
}

fn webhook(alerts: &[(&str, &str)]) -> Value {
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|(status, name)| {
            json!({
                "status": status,
                "labels": {"alertname": name, "severity": "page", "instance": "proxy:8080"},
                "annotations": {"summary": format!("{name} summary"), "runbook_url": "x"},
                "startsAt": "2025-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": format!("fp-{name}"),
            })
        })
        .collect();
    json!({
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "mock-upstream", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": alerts,
    })
}

#[tokio::test]
async fn the_alert_sink_keeps_received_alerts_newest_last() {
    let mock = spawn_mock(MockOptions::default()).await;
    let post = |payload: Value| {
        mock.client
            .post(mock.url("/admin/alerts"))
            .json(&payload)
            .send()
    };
    let response = post(webhook(&[
        ("firing", "HighErrorRate"),
        ("firing", "UpstreamDown"),
    ]))
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    post(webhook(&[("resolved", "HighErrorRate")]))
        .await
        .unwrap();

    let alerts = mock.get_json("/admin/alerts").await;
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 3);
    assert_eq!(alerts[0]["labels"]["alertname"], "HighErrorRate");
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["annotations"]["summary"], "HighErrorRate summary");
    assert_eq!(alerts[0]["receiver"], "mock-upstream");
    assert_eq!(alerts[0]["fingerprint"], "fp-HighErrorRate");
    assert_eq!(alerts[2]["status"], "resolved");
}

#[tokio::test]
async fn the_alert_sink_refuses_a_body_that_is_not_json() {
    let mock = spawn_mock(MockOptions::default()).await;
    let response = mock
        .client
        .post(mock.url("/admin/alerts"))
        .body("firing!")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(mock.get_json("/admin/alerts").await, json!([]));
}
