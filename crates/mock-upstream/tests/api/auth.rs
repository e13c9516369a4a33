//! The optional API key on `/v1/*`.

use mcp_mock_upstream::MockOptions;
use serde_json::Value;

use crate::helpers::{TestMock, chat_request, spawn_mock};

const KEY: &str = "sk-mock-secret";

async fn spawn_keyed() -> TestMock {
    spawn_mock(MockOptions {
        api_key: Some(KEY.into()),
        ..MockOptions::default()
    })
    .await
}

async fn chat_with(mock: &TestMock, authorization: Option<&str>) -> reqwest::Response {
    let mut request = mock
        .client
        .post(format!("{}/chat/completions", mock.base_url))
        .json(&chat_request("hi"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_request_without_the_key_is_refused_with_invalid_api_key() {
    let mock = spawn_keyed().await;
    for authorization in [None, Some("Bearer sk-wrong"), Some(KEY)] {
        let response = chat_with(&mock, authorization).await;
        assert_eq!(response.status(), 401, "{authorization:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert!(
            !body.to_string().contains("sk-"),
            "the key is echoed: {body}"
        );
    }
    let response = mock
        .client
        .get(format!("{}/models", mock.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn the_right_key_is_served_and_probes_need_none() {
    let mock = spawn_keyed().await;
    let response = chat_with(&mock, Some(&format!("Bearer {KEY}"))).await;
    assert_eq!(response.status(), 200);
    mock.get_json("/health").await;
    mock.get_json("/admin/stats").await;
}
