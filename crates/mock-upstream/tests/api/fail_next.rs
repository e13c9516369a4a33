//! The `fail_next` countdown: exactly the next N completion, chat and embedding requests fail,
//! however many arrive at once; then the profile rules again.

use futures_util::future::join_all;
use mcp_mock_upstream::MockOptions;
use serde_json::{Value, json};

use crate::helpers::{TestMock, chat_request, completion_request, spawn_mock, streaming};

/// Request `index` of a varied batch: chat, streamed chat, completions and embeddings.
async fn varied_request(mock: &TestMock, index: usize) -> u16 {
    let (path, body) = match index % 4 {
        0 => ("/chat/completions", chat_request("hi")),
        1 => ("/chat/completions", streaming(chat_request("hi"), false)),
        2 => ("/completions", completion_request("once upon")),
        _ => (
            "/embeddings",
            json!({"model": "text-embedding-3-small", "input": "x"}),
        ),
    };
    let response = mock.post_api(path, &body).await;
    let status = response.status().as_u16();
    // Read to the end, so that every stream is over before the counts are checked.
    response.bytes().await.unwrap();
    status
}

async fn remaining(mock: &TestMock) -> Value {
    mock.get_json("/admin/faults").await["fail_next"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_n_of_many_concurrent_requests_fail_then_the_profile_rules_again() {
    let mock = spawn_mock(MockOptions {
        workers: 4,
        ..MockOptions::default()
    })
    .await;
    let response = mock
        .put_faults(&json!({"fail_next": 7, "error_status": 503}))
        .await;
    assert_eq!(response.status(), 200);
    let faults: Value = response.json().await.unwrap();
    assert_eq!(faults["fail_next"], 7);
    assert_eq!(faults["error_rate"], 0.0, "the rate is left as it was");

    let statuses = join_all((0..48).map(|index| varied_request(&mock, index))).await;

    let failed = statuses.iter().filter(|&&status| status == 503).count();
    let served = statuses.iter().filter(|&&status| status == 200).count();
    assert_eq!((failed, served), (7, 41), "{statuses:?}");
    assert_eq!(remaining(&mock).await, 0);
    assert_eq!(varied_request(&mock, 0).await, 200);
}

#[tokio::test]
async fn an_injected_failure_has_the_error_status_and_its_openai_body() {
    let mock = spawn_mock(MockOptions::default()).await;
    mock.put_faults(&json!({"fail_next": 1, "error_status": 429}))
        .await;
    let response = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn model_listings_and_invalid_requests_take_no_failure() {
    let mock = spawn_mock(MockOptions::default()).await;
    mock.put_faults(&json!({"fail_next": 1})).await;

    let models = mock
        .client
        .get(format!("{}/models", mock.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let invalid = mock.post_raw("/chat/completions", r#"{"model": 1}"#).await;
    assert_eq!(invalid.status(), 400);
    assert_eq!(remaining(&mock).await, 1);

    let failed = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    assert_eq!(failed.status(), 500);
    let served = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    assert_eq!(served.status(), 200);
}

#[tokio::test]
async fn the_start_up_count_applies_at_once_and_deleting_the_faults_restores_it() {
    let mock = spawn_mock(MockOptions {
        fail_next: 2,
        ..MockOptions::default()
    })
    .await;
    assert_eq!(remaining(&mock).await, 2);
    assert_eq!(varied_request(&mock, 2).await, 500);
    assert_eq!(remaining(&mock).await, 1);

    let response = mock.put_faults(&json!({"fail_next": 0})).await;
    assert_eq!(response.json::<Value>().await.unwrap()["fail_next"], 0);
    assert_eq!(varied_request(&mock, 2).await, 200);

    let response = mock
        .client
        .delete(mock.url("/admin/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["fail_next"], 2);
    let statuses = [
        varied_request(&mock, 3).await,
        varied_request(&mock, 3).await,
        varied_request(&mock, 3).await,
    ];
    assert_eq!(statuses, [500, 500, 200]);
}

#[tokio::test]
async fn a_patch_refused_for_another_field_leaves_the_countdown_alone() {
    let mock = spawn_mock(MockOptions::default()).await;
    let response = mock
        .put_faults(&json!({"fail_next": 3, "error_rate": 2.0}))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(remaining(&mock).await, 0);
}
