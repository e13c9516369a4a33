//! Every fault knob, in generated and fixed mode.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mcp_mock_upstream::FaultProfile;
use serde_json::Value;

use crate::helpers::{
    chat_request, read_stream, spawn_fixed, spawn_with_faults, sse_data, streaming,
};

fn always_failing(status: u16) -> FaultProfile {
    FaultProfile {
        error_rate: 1.0,
        error_status: status,
        ..FaultProfile::default()
    }
}

#[tokio::test]
async fn error_rate_one_answers_every_request_with_the_error_status() {
    let mock = spawn_with_faults(always_failing(503)).await;
    for _ in 0..3 {
        let response = mock
            .post_api("/chat/completions", &chat_request("hi"))
            .await;
        assert_eq!(response.status(), 503);
        assert!(response.headers().get("retry-after").is_none());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "server_error");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn an_injected_429_says_when_to_retry_and_that_no_requests_remain() {
    let mock = spawn_with_faults(always_failing(429)).await;
    let response = mock
        .post_api(
            "/embeddings",
            &serde_json::json!({"model": "e", "input": "x"}),
        )
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn an_injected_500_is_the_error_fixture() {
    let mock = spawn_fixed(always_failing(500)).await;
    let response = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.text().await.unwrap(),
        mcp_mock_upstream::fixtures::ERROR
    );
}

#[tokio::test]
async fn a_hung_request_never_gets_an_answer() {
    let mock = spawn_with_faults(FaultProfile {
        hang_rate: 1.0,
        ..FaultProfile::default()
    })
    .await;
    let started = Instant::now();
    let error = mock
        .client
        .post(format!("{}/chat/completions", mock.base_url))
        .json(&chat_request("hi"))
        .timeout(Duration::from_millis(400))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    // The hung request is released once its client goes away.
    let stats = mock.wait_for_stat("in_flight", 0).await;
    assert_eq!(stats["requests_total"], 1);
}

#[tokio::test]
async fn a_malformed_answer_is_a_json_200_whose_body_does_not_parse() {
    let mock = spawn_with_faults(FaultProfile {
        malformed_rate: 1.0,
        ..FaultProfile::default()
    })
    .await;
    let response = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.text().await.unwrap();
    assert!(body.starts_with("{\""), "{body}");
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
}

#[tokio::test]
async fn a_malformed_fixed_answer_is_the_fixture_cut_short() {
    let mock = spawn_fixed(FaultProfile {
        malformed_rate: 1.0,
        ..FaultProfile::default()
    })
    .await;
    let response = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let fixture = mcp_mock_upstream::fixtures::CHAT_COMPLETION;
    assert_eq!(body, fixture[..fixture.len() / 2]);
    assert!(serde_json::from_str::<Value>(&body).is_err());
}

/// The stream still ends normally, with exactly one event that is not JSON in the middle.
fn assert_one_corrupt_event_mid_stream(body: &str) {
    let data = sse_data(body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let corrupt: Vec<usize> = data[..data.len() - 1]
        .iter()
        .enumerate()
        .filter(|(_, payload)| serde_json::from_str::<Value>(payload).is_err())
        .map(|(index, _)| index)
        .collect();
    assert_eq!(corrupt.len(), 1, "{data:?}");
    assert!(
        corrupt[0] > 0 && corrupt[0] < data.len() - 2,
        "{corrupt:?} of {}",
        data.len()
    );
}

#[tokio::test]
async fn a_malformed_stream_has_one_invalid_event_in_the_middle_in_both_modes() {
    let profile = FaultProfile {
        malformed_rate: 1.0,
        ..FaultProfile::default()
    };
    for mock in [spawn_with_faults(profile).await, spawn_fixed(profile).await] {
        let request = streaming(chat_request("hi"), true);
        let response = mock.post_api("/chat/completions", &request).await;
        assert_eq!(response.status(), 200);
        assert_one_corrupt_event_mid_stream(&response.text().await.unwrap());
    }
}

#[tokio::test]
async fn a_cut_stream_ends_abruptly_after_some_content_and_is_counted() {
    let profile = FaultProfile {
        stream_cut_rate: 1.0,
        ..FaultProfile::default()
    };
    for mock in [spawn_with_faults(profile).await, spawn_fixed(profile).await] {
        let request = streaming(chat_request("hi"), true);
        let response = mock.post_api("/chat/completions", &request).await;
        assert_eq!(response.status(), 200);
        let (body, failed) = read_stream(response).await;
        assert!(failed, "the body ended cleanly: {body}");
        assert!(!body.contains("[DONE]"), "{body}");
        assert!(!body.contains("finish_reason\":\"stop"), "{body}");
        assert!(
            body.contains("\"content\":\""),
            "no content before the cut: {body}"
        );
        let stats = mock.wait_for_stat("streams_cut", 1).await;
        assert_eq!(stats["streams_completed"], 0);
    }
}

#[tokio::test]
async fn latency_with_jitter_delays_the_headers_within_its_band() {
    let mock = spawn_with_faults(FaultProfile {
        latency_ms: 200,
        jitter_ms: 50,
        ..FaultProfile::default()
    })
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        let response = mock
            .post_api("/chat/completions", &chat_request("hi"))
            .await;
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 200);
        assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(250 + 750), "{elapsed:?}");
    }
}

#[tokio::test]
async fn latency_applies_to_fixed_mode_streams_before_the_headers() {
    let mock = spawn_fixed(FaultProfile {
        latency_ms: 150,
        ..FaultProfile::default()
    })
    .await;
    let started = Instant::now();
    let response = mock
        .post_api("/chat/completions", &streaming(chat_request("hi"), false))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    let mut stream = response.bytes_stream();
    assert!(stream.next().await.unwrap().unwrap().starts_with(b"data: "));
}
