//! The Messages API over real sockets: Anthropic's key header and version, its error shape
//! (a 529 as `overloaded_error`), and typed events that Anthropic's SDKs read.

use mcp_mock_upstream::{FaultProfile, MockOptions};
use serde_json::{Value, json};

use crate::helpers::*;

fn message() -> Value {
    json!({"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
}

async fn post(mock: &TestMock, headers: &[(&str, &str)], body: &Value) -> reqwest::Response {
    let mut request = mock.client.post(mock.url("/v1/messages")).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_key_goes_in_x_api_key_and_a_version_is_required() {
    let mock = spawn_mock(MockOptions {
        api_key: Some("k".into()),
        ..MockOptions::default()
    })
    .await;
    let version = ("anthropic-version", "2023-06-01");
    let bearer = post(&mock, &[("authorization", "Bearer k"), version], &message()).await;
    assert_eq!(bearer.status(), 401);
    let body: Value = bearer.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    let unversioned = post(&mock, &[("x-api-key", "k")], &message()).await;
    assert_eq!(unversioned.status(), 400);
    let ok = post(&mock, &[("x-api-key", "k"), version], &message()).await;
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("request-id"));
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(
        body["usage"]["input_tokens"], 7,
        "2 characters: 1, plus 3 and 3"
    );
}

#[tokio::test]
async fn an_injected_529_is_anthropics_overloaded_error_and_a_500_its_api_error() {
    for (status, kind) in [(529, "overloaded_error"), (500, "api_error")] {
        let mock = spawn_with_faults(FaultProfile {
            error_rate: 1.0,
            error_status: status,
            ..FaultProfile::default()
        })
        .await;
        let response = post(&mock, &[("anthropic-version", "2023-06-01")], &message()).await;
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], kind);
    }
}

#[tokio::test]
async fn a_stream_names_every_event_and_ends_with_message_stop() {
    let mock = spawn_mock(MockOptions::default()).await;
    let mut body = message();
    body["stream"] = json!(true);
    let text = post(&mock, &[("anthropic-version", "2023-06-01")], &body)
        .await
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.lines().next().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"event: message_start"));
    assert_eq!(events.last(), Some(&"event: message_stop"));
    assert!(events.iter().all(|e| e.starts_with("event: ")));
    let deltas = events
        .iter()
        .filter(|e| **e == "event: content_block_delta")
        .count();
    let delta_line = text
        .split("\n\n")
        .find(|e| e.starts_with("event: message_delta"))
        .unwrap();
    let usage: Value = serde_json::from_str(
        delta_line
            .lines()
            .nth(1)
            .unwrap()
            .strip_prefix("data: ")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(usage["usage"]["output_tokens"], deltas);
}
