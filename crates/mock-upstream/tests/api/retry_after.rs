//! `retry_after_secs` and `retry_after_http_date`: the `Retry-After` of injected errors, in
//! both of the forms real providers send, parsed as a client would.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use actix_web::http::header::HttpDate;
use mcp_mock_upstream::MockOptions;
use serde_json::json;

use crate::helpers::{TestMock, chat_request, spawn_mock};

async fn failing_mock(patch: serde_json::Value) -> TestMock {
    let mock = spawn_mock(MockOptions::default()).await;
    let mut faults = json!({"error_rate": 1.0, "error_status": 503});
    faults
        .as_object_mut()
        .unwrap()
        .extend(patch.as_object().unwrap().clone());
    assert_eq!(mock.put_faults(&faults).await.status(), 200);
    mock
}

async fn retry_after(mock: &TestMock) -> Option<String> {
    let response = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    assert_eq!(response.status(), 503);
    response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_seconds_form_is_sent_on_any_injected_status_and_null_unsets_it() {
    let mock = failing_mock(json!({"retry_after_secs": 7})).await;
    let value = retry_after(&mock).await.unwrap();
    assert_eq!(value.parse::<u64>().unwrap(), 7);
    assert_eq!(mock.get_json("/admin/faults").await["retry_after_secs"], 7);

    mock.put_faults(&json!({"retry_after_secs": null})).await;
    assert_eq!(
        retry_after(&mock).await,
        None,
        "a 503 carries none by default"
    );
}

#[tokio::test]
async fn the_date_form_is_an_http_date_the_seconds_ahead() {
    let mock = failing_mock(json!({"retry_after_secs": 30, "retry_after_http_date": true})).await;
    let before = SystemTime::now();
    let value = retry_after(&mock).await.unwrap();
    let after = SystemTime::now();

    assert!(value.ends_with(" GMT"), "{value}");
    let at = SystemTime::from(HttpDate::from_str(&value).unwrap());
    // An HTTP-date has whole seconds: the mock's "now + 30" is truncated to the second.
    let earliest = before + Duration::from_secs(29);
    let latest = after + Duration::from_secs(30);
    assert!(at >= earliest && at <= latest, "{value}");
}

#[tokio::test]
async fn the_countdown_failures_carry_it_too() {
    let mock = spawn_mock(MockOptions::default()).await;
    mock.put_faults(&json!({"fail_next": 1, "error_status": 502, "retry_after_secs": 2}))
        .await;
    let response = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["retry-after"], "2");
}

#[tokio::test]
async fn a_delay_beyond_a_day_is_refused_by_name() {
    let mock = spawn_mock(MockOptions::default()).await;
    let response = mock.put_faults(&json!({"retry_after_secs": 86_401})).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "retry_after_secs");
}
