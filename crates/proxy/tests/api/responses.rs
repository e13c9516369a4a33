//! The Responses API through the gateway: plain and streamed answers relayed byte for byte,
//! usage in OpenAI's convention (cached and reasoning tokens inside the totals) counted and
//! priced, broken streams ended with the API's own error event, stored responses reached
//! where they live.

use mcp_core::{ModelSpec, Pricing};
use mcp_mock_upstream::fixtures;
use serde_json::{Value, json};

use crate::helpers::*;

const MODEL: &str = "gpt-4o-mini";

fn fixed() -> Spawn {
    let mut options = Spawn::default();
    options.mock.fixed = true;
    options.settings.models = vec![ModelSpec::new(MODEL).with_pricing(Pricing {
        cache_read_usd_per_million: Some(0.075),
        ..Pricing::new(0.15, 0.6)
    })];
    options
}

fn tokens(m: &crate::scrape::Scrape, family: &str, kind: &str) -> f64 {
    m.get(family, &[("model", MODEL), ("type", kind)])
}

#[tokio::test]
async fn a_plain_response_is_relayed_unchanged_and_its_cached_and_reasoning_tokens_counted() {
    let app = spawn(fixed()).await;
    let response = app
        .post_json("/v1/responses", &json!({"model": MODEL, "input": "hi"}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-mcp-upstream"], "primary");
    assert_eq!(response.text().await.unwrap(), fixtures::RESPONSES);
    let m = app.scrape().await;
    // The fixture: 2006 input tokens of which 1920 cached, 300 output of which 287 reasoning.
    assert_eq!(tokens(&m, "mcp_server_token_usage_total", "prompt"), 2006.0);
    assert_eq!(
        tokens(&m, "mcp_server_token_usage_total", "completion"),
        300.0
    );
    let details = "mcp_server_token_usage_details_total";
    assert_eq!(tokens(&m, details, "cache_read"), 1920.0);
    assert_eq!(tokens(&m, details, "cache_write"), 0.0);
    assert_eq!(tokens(&m, details, "reasoning"), 287.0);
    // 86 plain input tokens at $0.15, 1920 cached at $0.075, 300 output at $0.60 a million.
    let cost = m.get("mcp_server_cost_usd_total", &[("model", MODEL)]);
    let expected = (86.0 * 0.15 + 1920.0 * 0.075 + 300.0 * 0.6) / 1e6;
    assert!((cost - expected).abs() < 1e-12, "{cost} != {expected}");
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("model", MODEL), ("outcome", "success")]
        ),
        1.0
    );
    assert_eq!(m.get("mcp_server_usage_missing_total", &[]), 0.0);
}

#[tokio::test]
async fn a_streamed_response_is_relayed_byte_for_byte_and_counted_from_its_terminal_event() {
    let app = spawn(fixed()).await;
    let response = app
        .post_json(
            "/v1/responses",
            &json!({"model": MODEL, "input": "hi", "stream": true}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    assert_eq!(
        body,
        fixtures::RESPONSES_STREAM,
        "no [DONE] added, nothing taken"
    );
    let m = app.scrape().await;
    assert_eq!(tokens(&m, "mcp_server_token_usage_total", "prompt"), 2006.0);
    assert_eq!(
        tokens(&m, "mcp_server_token_usage_total", "completion"),
        100.0
    );
    let details = "mcp_server_token_usage_details_total";
    assert_eq!(tokens(&m, details, "cache_read"), 1920.0);
    assert_eq!(tokens(&m, details, "reasoning"), 96.0);
    let ttft = [("endpoint", "/v1/responses"), ("model", MODEL)];
    assert_eq!(
        m.get("mcp_server_time_to_first_token_seconds_count", &ttft),
        1.0
    );
    // Four output deltas: three gaps between them.
    assert_eq!(
        m.get(
            "mcp_server_inter_token_latency_seconds_count",
            &[("model", MODEL)]
        ),
        3.0
    );
    assert_eq!(
        m.get("mcp_server_errors_total", &[("endpoint", "/v1/responses")]),
        0.0
    );
}

/// The `data` of each event of an SSE body, with its `event:` name.
fn typed_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("");
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name.to_owned(), serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_broken_responses_stream_ends_with_the_apis_own_error_event() {
    let mut options = Spawn::default();
    options.mock.profile.stream_cut_rate = 1.0;
    let app = spawn(options).await;
    let response = app
        .post_json(
            "/v1/responses",
            &json!({"model": MODEL, "input": "hi", "stream": true, "max_output_tokens": 30}),
        )
        .await;
    let events = typed_events(&response.text().await.unwrap());
    let deltas = events
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .count();
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(last["type"], "error");
    assert_eq!(last["code"], "stream_interrupted");
    let before = events[events.len() - 2].1["sequence_number"]
        .as_u64()
        .unwrap();
    assert_eq!(last["sequence_number"], before + 1);
    assert!(!events.iter().any(|(n, _)| n == "response.completed"));
    let m = app.scrape().await;
    let labels = [
        ("endpoint", "/v1/responses"),
        ("error_type", "stream_interrupted"),
    ];
    assert_eq!(m.get("mcp_server_errors_total", &labels), 1.0);
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "stream_interrupted")]
        ),
        1.0
    );
    // No terminal event, so no usage: one output token per delta relayed.
    assert_eq!(
        tokens(&m, "mcp_server_token_usage_total", "completion"),
        deltas as f64
    );
}

#[tokio::test]
async fn a_failed_response_keeps_its_usage_and_the_upstreams_own_failure_event() {
    let failed = concat!(
        "event: response.output_text.delta\n",
        r#"data: {"type":"response.output_text.delta","delta":"Hi","sequence_number":1}"#,
        "\n\n",
        "event: response.failed\n",
        r#"data: {"type":"response.failed","sequence_number":2,"response":{"id":"resp_1","status":"failed","error":{"code":"server_error","message":"boom"},"usage":{"input_tokens":40,"input_tokens_details":{"cached_tokens":0},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":2}}}}"#,
        "\n\n"
    );
    let mut options = Spawn::default();
    options.upstream =
        Some(raw_upstream("text/event-stream", vec![failed.as_bytes().to_vec()]).await);
    let app = spawn(options).await;
    let body = app
        .post_json(
            "/v1/responses",
            &json!({"model": MODEL, "input": "hi", "stream": true}),
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        body, failed,
        "the upstream's failure event is the client's last"
    );
    let m = app.scrape().await;
    assert_eq!(tokens(&m, "mcp_server_token_usage_total", "prompt"), 40.0);
    assert_eq!(
        tokens(&m, "mcp_server_token_usage_total", "completion"),
        5.0
    );
    assert_eq!(
        tokens(&m, "mcp_server_token_usage_details_total", "reasoning"),
        2.0
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "stream_interrupted")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_chat_model_only_anthropic_serves_is_not_found_on_the_openai_endpoints() {
    let mut options = Spawn::default();
    options.upstreams = vec!["openai", "anthropic"];
    options.anthropic = vec!["anthropic"];
    options.settings.models = vec![
        model("gpt-4o-mini", vec![deployment("openai", 1)], &[]),
        model("claude-sonnet-4-5", vec![deployment("anthropic", 1)], &[]),
    ];
    let app = spawn(options).await;
    let response = app
        .post_json(
            "/v1/responses",
            &json!({"model": "claude-sonnet-4-5", "input": "hi"}),
        )
        .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("Anthropic API"), "{message}");
    let m = app.scrape().await;
    assert_eq!(m.get("mcp_server_upstream_requests_total", &[]), 0.0);
}

#[tokio::test]
async fn a_background_response_has_no_usage_yet_and_is_not_a_gap() {
    let queued =
        br#"{"id":"resp_bg","object":"response","status":"queued","background":true,"usage":null}"#;
    let mut options = Spawn::default();
    options.upstream = Some(raw_upstream("application/json", vec![queued.to_vec()]).await);
    let app = spawn(options).await;
    let body = json!({"model": MODEL, "input": "hi", "background": true});
    let response = app.post_json("/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), &queued[..]);
    let m = app.scrape().await;
    assert_eq!(m.get("mcp_server_usage_missing_total", &[]), 0.0);
    assert_eq!(m.get("mcp_server_token_usage_total", &[]), 0.0);
}
