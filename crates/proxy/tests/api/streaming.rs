//! Streamed answers: relayed as they arrive, accounted like plain ones, and ended cleanly
//! whatever breaks.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use mcp_mock_upstream::FaultProfile;
use serde_json::{Value, json};

use crate::helpers::*;

fn stream_body(model: &str, max_tokens: u64) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Stream something."}],
        "max_tokens": max_tokens,
        "stream": true
    })
}

fn with_cadence(ttft_ms: u64, token_interval_ms: u64) -> Spawn {
    let mut options = Spawn::default();
    options.mock.profile = FaultProfile {
        ttft_ms,
        token_interval_ms,
        ..FaultProfile::default()
    };
    options
}

/// The `data` payloads of a stream, read with a real SSE parser, and when each arrived.
async fn read_events(response: reqwest::Response) -> Vec<(Instant, String)> {
    let mut events = response.bytes_stream().eventsource();
    let mut out = Vec::new();
    while let Some(event) = events.next().await {
        let event = event.expect("a well-formed SSE stream");
        out.push((Instant::now(), event.data));
    }
    out
}

fn json_events(events: &[(Instant, String)]) -> Vec<Value> {
    events
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(d).expect("each event is JSON"))
        .collect()
}

fn content_events(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        })
        .count()
}

#[tokio::test]
async fn events_reach_the_client_as_the_upstream_sends_them() {
    let app = spawn(with_cadence(0, 150)).await;
    let started = Instant::now();
    let response = app.chat(&stream_body(CHAT_MODEL, 8)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let events = read_events(response).await;
    let last = events.last().unwrap().0 - started;
    let second = events[1].0 - started;
    let chunks = json_events(&events);
    // At least four content chunks 150 ms apart: the stream lasts well over 450 ms, and
    // its first content event arrived long before the upstream sent its last one.
    assert!(content_events(&chunks) >= 4, "{chunks:?}");
    assert!(last >= Duration::from_millis(450), "{last:?}");
    assert!(
        last - second >= Duration::from_millis(300),
        "first {second:?}, last {last:?}"
    );
    assert_eq!(events.last().unwrap().1, "[DONE]");
}

#[tokio::test]
async fn the_usage_chunk_the_gateway_asked_for_is_counted_and_removed() {
    let app = spawn(with_cadence(0, 0)).await;
    let response = app.chat(&stream_body(CHAT_MODEL, 12)).await;
    let events = read_events(response).await;
    let chunks = json_events(&events);
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty()),
        "no usage-only chunk reaches a client that did not ask for it"
    );
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let content = content_events(&chunks) as f64;
    let m = app.scrape().await;
    let completion = m.get(
        "mcp_server_token_usage_total",
        &[("model", CHAT_MODEL), ("type", "completion")],
    );
    assert_eq!(completion, content, "one word per chunk in the mock");
    assert!(m.get("mcp_server_token_usage_total", &[("type", "prompt")]) > 0.0);
    assert_eq!(m.get("mcp_server_usage_missing_total", &[]), 0.0);
}

#[tokio::test]
async fn a_client_that_asked_for_usage_gets_the_chunk_and_the_same_count() {
    let app = spawn(with_cadence(0, 0)).await;
    let mut body = stream_body(CHAT_MODEL, 12);
    body["stream_options"] = json!({"include_usage": true});
    let events = read_events(app.chat(&body).await).await;
    let chunks = json_events(&events);
    let usage_chunk = chunks
        .iter()
        .find(|c| c["choices"].as_array().unwrap().is_empty())
        .expect("the usage chunk is passed through");
    let m = app.scrape().await;
    for kind in ["prompt", "completion"] {
        assert_eq!(
            m.get(
                "mcp_server_token_usage_total",
                &[("model", CHAT_MODEL), ("type", kind)]
            ),
            usage_chunk["usage"][format!("{kind}_tokens")]
                .as_f64()
                .unwrap(),
            "{kind}"
        );
    }
    assert_eq!(
        m.get(
            "mcp_server_request_tokens_count",
            &[("model", CHAT_MODEL), ("type", "prompt")]
        ),
        1.0
    );
}

#[tokio::test]
async fn time_to_first_token_and_inter_token_latency_move_by_the_expected_counts() {
    let app = spawn(with_cadence(100, 30)).await;
    let events = read_events(app.chat(&stream_body(CHAT_MODEL, 6)).await).await;
    let content = content_events(&json_events(&events)) as f64;
    let m = app.scrape().await;
    let ttft_count = m.get(
        "mcp_server_time_to_first_token_seconds_count",
        &[("endpoint", "/v1/chat/completions"), ("model", CHAT_MODEL)],
    );
    let ttft_sum = m.get(
        "mcp_server_time_to_first_token_seconds_sum",
        &[("endpoint", "/v1/chat/completions"), ("model", CHAT_MODEL)],
    );
    assert_eq!(ttft_count, 1.0);
    assert!(
        ttft_sum >= 0.1,
        "the mock waited 100 ms before the first token: {ttft_sum}"
    );
    let itl_count = m.get(
        "mcp_server_inter_token_latency_seconds_count",
        &[("model", CHAT_MODEL)],
    );
    assert_eq!(itl_count, content - 1.0);
    // The gateway's own share: small, and not the 100 ms + 30 ms waits.
    let overhead = m.get(
        "mcp_server_overhead_seconds_sum",
        &[("endpoint", "/v1/chat/completions"), ("stream", "true")],
    );
    assert!(overhead < 0.05, "overhead {overhead} counts waits");
    assert_eq!(
        m.get("mcp_server_overhead_seconds_count", &[("stream", "true")]),
        1.0
    );
}

#[tokio::test]
async fn a_client_leaving_mid_stream_closes_the_upstream_and_keeps_its_tokens() {
    let app = spawn(with_cadence(0, 100)).await;
    let response = app.chat(&stream_body(CHAT_MODEL, 60)).await;
    let mut events = response.bytes_stream().eventsource();
    let mut content = 0;
    while content < 3 {
        let event = events.next().await.unwrap().unwrap();
        let chunk: Value = serde_json::from_str(&event.data).unwrap();
        if chunk["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
        {
            content += 1;
        }
    }
    drop(events);
    let m = app
        .eventually(Duration::from_secs(3), "the stream is settled", |m| {
            m.get("mcp_server_active_connections", &[]) == 0.0
        })
        .await;
    assert_eq!(
        m.get(
            "mcp_server_client_disconnects_total",
            &[
                ("endpoint", "/v1/chat/completions"),
                ("phase", "mid_stream")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "cancelled")]
        ),
        1.0
    );
    let completion = m.get("mcp_server_token_usage_total", &[("type", "completion")]);
    assert!(
        completion >= 3.0,
        "tokens relayed before the disconnect: {completion}"
    );
    wait_until(
        Duration::from_secs(3),
        "the mock sees its stream cancelled",
        || async { app.mock_stats().await["streams_cancelled"] == 1 },
    )
    .await;
}

async fn assert_ends_with_error_event(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    let events = read_events(response).await;
    let chunks = json_events(&events);
    let last = chunks.last().expect("at least the error event");
    assert_eq!(last["error"]["code"], "stream_interrupted", "{last}");
    assert!(last["error"]["message"].as_str().is_some());
    chunks
}

async fn assert_interruption_counted(app: &TestApp, outcome: &str) {
    let m = app
        .eventually(Duration::from_secs(3), "the stream is settled", |m| {
            m.get("mcp_server_active_connections", &[]) == 0.0
        })
        .await;
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[
                ("error_type", "stream_interrupted"),
                ("endpoint", "/v1/chat/completions")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", outcome)]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_stream_cut_by_the_upstream_ends_with_an_error_event() {
    let mut options = with_cadence(0, 5);
    options.mock.profile.stream_cut_rate = 1.0;
    let app = spawn(options).await;
    assert_ends_with_error_event(app.chat(&stream_body(CHAT_MODEL, 30)).await).await;
    assert_interruption_counted(&app, "stream_interrupted").await;
}

#[tokio::test]
async fn a_malformed_event_ends_the_stream_with_an_error_event() {
    let mut options = with_cadence(0, 5);
    options.mock.profile.malformed_rate = 1.0;
    let app = spawn(options).await;
    let chunks = assert_ends_with_error_event(app.chat(&stream_body(CHAT_MODEL, 30)).await).await;
    assert!(
        chunks.len() >= 2,
        "events before the malformed one were relayed"
    );
    assert_interruption_counted(&app, "malformed").await;
}

#[tokio::test]
async fn an_upstream_that_goes_quiet_is_cut_at_the_idle_timeout() {
    let mut options = with_cadence(0, 5_000);
    options.settings.upstream.stream_idle_timeout_secs = 1;
    let app = spawn(options).await;
    let started = Instant::now();
    assert_ends_with_error_event(app.chat(&stream_body(CHAT_MODEL, 30)).await).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_interruption_counted(&app, "timeout").await;
}

#[tokio::test]
async fn an_upstream_error_before_the_first_byte_is_a_plain_json_error() {
    let app = spawn_with_faults(FaultProfile {
        error_rate: 1.0,
        error_status: 503,
        ..FaultProfile::default()
    })
    .await;
    let response = app.chat(&stream_body(CHAT_MODEL, 5)).await;
    assert_eq!(response.status(), 502);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_server_error");
}

#[tokio::test]
async fn legacy_completions_stream_too() {
    let app = spawn(with_cadence(0, 0)).await;
    let response = app
        .post_json(
            "/v1/completions",
            &json!({"model": COMPLETION_MODEL, "prompt": "Say this is a test", "max_tokens": 6, "stream": true}),
        )
        .await;
    let events = read_events(response).await;
    let chunks = json_events(&events);
    let text_chunks = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .count() as f64;
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_token_usage_total",
            &[("model", COMPLETION_MODEL), ("type", "completion")]
        ),
        text_chunks
    );
    assert_eq!(
        m.get(
            "mcp_server_time_to_first_token_seconds_count",
            &[("endpoint", "/v1/completions")]
        ),
        1.0
    );
}

#[tokio::test]
async fn an_event_growing_past_the_limit_ends_the_stream_with_an_error_event() {
    let first = b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n".to_vec();
    // An event that never ends: 5 pieces of 100 bytes, no blank line.
    let mut pieces = vec![first];
    pieces.push(b"data: {\"id\":\"c2\",\"choices\":[{\"delta\":{\"content\":\"".to_vec());
    pieces.extend(std::iter::repeat_n(vec![b'x'; 100], 5));
    let mut options = Spawn::default();
    options.upstream = Some(raw_upstream("text/event-stream", pieces).await);
    options.settings.upstream.max_response_bytes = 300;
    let app = spawn(options).await;
    let chunks = assert_ends_with_error_event(app.chat(&stream_body(CHAT_MODEL, 30)).await).await;
    assert_eq!(
        chunks.len(),
        2,
        "the complete event, then the error: {chunks:?}"
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "Hi");
    let message = chunks[1]["error"]["message"].as_str().unwrap();
    assert!(message.contains("larger than 300 bytes"), "{message}");
    assert_interruption_counted(&app, "malformed").await;
}
