//! The instance name: in `x-mock-instance` on every `/v1/*` answer, whatever it is, and in the
//! stats.

use mcp_mock_upstream::{MockOptions, MockUpstream};
use serde_json::json;

use crate::helpers::{TestMock, chat_request, read_stream, spawn_mock, streaming};

async fn named(instance: &str) -> TestMock {
    spawn_mock(MockOptions {
        instance: instance.to_owned(),
        ..MockOptions::default()
    })
    .await
}

fn instance_of(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get("x-mock-instance")
        .map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn success_error_and_stream_answers_name_the_instance() {
    let mock = named("primary").await;

    let served = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    assert_eq!(served.status(), 200);
    assert_eq!(instance_of(&served), Some("primary"));

    let stream = mock
        .post_api(
            "/completions",
            &streaming(json!({"model": "m", "prompt": "p"}), false),
        )
        .await;
    assert_eq!(instance_of(&stream), Some("primary"));
    let (body, broken) = read_stream(stream).await;
    assert!(!broken && body.ends_with("data: [DONE]\n\n"), "{body}");

    mock.put_faults(&json!({"fail_next": 1, "error_status": 503}))
        .await;
    let injected = mock
        .post_api("/embeddings", &json!({"model": "e", "input": "x"}))
        .await;
    assert_eq!(injected.status(), 503);
    assert_eq!(instance_of(&injected), Some("primary"));

    let invalid = mock.post_raw("/chat/completions", "{").await;
    assert_eq!(invalid.status(), 400);
    assert_eq!(instance_of(&invalid), Some("primary"));

    let unknown = mock
        .client
        .get(mock.url("/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(instance_of(&unknown), Some("primary"));
}

#[tokio::test]
async fn the_default_name_is_mock_and_the_stats_show_it_but_probes_are_not_named() {
    let mock = spawn_mock(MockOptions::default()).await;
    let served = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    assert_eq!(instance_of(&served), Some("mock"));
    let health = mock.client.get(mock.url("/health")).send().await.unwrap();
    assert_eq!(instance_of(&health), None);
    assert_eq!(mock.stats().await["instance"], "mock");

    let secondary = named("secondary").await;
    assert_eq!(secondary.stats().await["instance"], "secondary");
}

#[tokio::test]
async fn a_name_that_cannot_be_a_header_is_refused_at_bind() {
    let options = MockOptions {
        instance: "two\nlines".to_owned(),
        ..MockOptions::default()
    };
    let error = MockUpstream::bind("127.0.0.1:0".parse().unwrap(), options).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("instance name"), "{error}");
}
