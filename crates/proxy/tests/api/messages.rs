//! Anthropic's Messages API through the gateway: its key as `x-api-key` and an
//! `anthropic-version`, usage in Anthropic's convention (cache reads and writes outside
//! `input_tokens`) normalised, counted and priced, streams relayed unchanged and ended in
//! Anthropic's error shape when they break, a 529 passed through as its own outcome, and the
//! gateway's own errors in Anthropic's shape.

use mcp_core::{ModelSpec, Pricing};
use mcp_mock_upstream::fixtures;
use mcp_proxy::configuration::Secrets;
use serde_json::{Value, json};

use crate::helpers::*;

const CLAUDE: &str = "claude-sonnet-4-5";

/// One Anthropic-kind upstream (a mock that wants the key `sk-ant-test` in `x-api-key`).
fn anthropic() -> Spawn {
    let mut options = Spawn::default();
    options.upstreams = vec!["anthropic"];
    options.anthropic = vec!["anthropic"];
    options.mock.api_key = Some("sk-ant-test".into());
    options.settings.upstream.api_key_env = "MCP_TEST_ANTHROPIC_KEY".into();
    options.secrets = Secrets::default().with_key("MCP_TEST_ANTHROPIC_KEY", "sk-ant-test");
    options.settings.models = vec![ModelSpec::new(CLAUDE).with_pricing(Pricing {
        cache_read_usd_per_million: Some(0.3),
        cache_write_usd_per_million: Some(3.75),
        ..Pricing::new(3.0, 15.0)
    })];
    options
}

fn message(stream: bool) -> Value {
    json!({
        "model": CLAUDE,
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say something."}]
    })
}

fn tokens(m: &crate::scrape::Scrape, family: &str, kind: &str) -> f64 {
    m.get(family, &[("model", CLAUDE), ("type", kind)])
}

#[tokio::test]
async fn a_message_is_relayed_unchanged_and_its_cache_tokens_added_to_the_input() {
    let mut options = anthropic();
    options.mock.fixed = true;
    let app = spawn(options).await;
    let response = app.post_json("/v1/messages", &message(false)).await;
    assert_eq!(
        response.status(),
        200,
        "the key went as x-api-key, a version was set"
    );
    assert!(response.headers().contains_key("request-id"));
    assert_eq!(response.text().await.unwrap(), fixtures::MESSAGES);
    let m = app.scrape().await;
    // The fixture: input_tokens 50, cache reads 1800, cache writes 248, output 13.
    assert_eq!(tokens(&m, "mcp_server_token_usage_total", "prompt"), 2098.0);
    assert_eq!(
        tokens(&m, "mcp_server_token_usage_total", "completion"),
        13.0
    );
    let details = "mcp_server_token_usage_details_total";
    assert_eq!(tokens(&m, details, "cache_read"), 1800.0);
    assert_eq!(tokens(&m, details, "cache_write"), 248.0);
    assert_eq!(tokens(&m, details, "reasoning"), 0.0);
    let cost = m.get("mcp_server_cost_usd_total", &[("model", CLAUDE)]);
    let expected = (50.0 * 3.0 + 1800.0 * 0.3 + 248.0 * 3.75 + 13.0 * 15.0) / 1e6;
    assert!((cost - expected).abs() < 1e-12, "{cost} != {expected}");
}

#[tokio::test]
async fn a_streamed_message_counts_input_from_message_start_and_output_from_message_delta() {
    let mut options = anthropic();
    options.mock.fixed = true;
    let app = spawn(options).await;
    let response = app.post_json("/v1/messages", &message(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), fixtures::MESSAGES_STREAM);
    let m = app.scrape().await;
    assert_eq!(tokens(&m, "mcp_server_token_usage_total", "prompt"), 2098.0);
    assert_eq!(
        tokens(&m, "mcp_server_token_usage_total", "completion"),
        4.0
    );
    assert_eq!(
        tokens(&m, "mcp_server_token_usage_details_total", "cache_write"),
        248.0
    );
    let ttft = [("endpoint", "/v1/messages"), ("model", CLAUDE)];
    assert_eq!(
        m.get("mcp_server_time_to_first_token_seconds_count", &ttft),
        1.0
    );
}

#[tokio::test]
async fn a_cached_system_prompt_is_written_once_and_read_after() {
    let app = spawn(anthropic()).await;
    let system = "abcd".repeat(1200);
    let body = json!({
        "model": CLAUDE,
        "max_tokens": 8,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "abcdefgh"}]
    });
    let mut outputs = 0.0;
    for _ in 0..2 {
        let answer: Value = app
            .post_json("/v1/messages", &body)
            .await
            .json()
            .await
            .unwrap();
        outputs += answer["usage"]["output_tokens"].as_f64().unwrap();
    }
    let m = app.scrape().await;
    // 4808 characters: 1202 tokens, plus 3 for the message and 3; the system block is 1200.
    assert_eq!(
        tokens(&m, "mcp_server_token_usage_total", "prompt"),
        2.0 * 1208.0
    );
    let details = "mcp_server_token_usage_details_total";
    assert_eq!(tokens(&m, details, "cache_write"), 1200.0);
    assert_eq!(tokens(&m, details, "cache_read"), 1200.0);
    let cost = m.get("mcp_server_cost_usd_total", &[("model", CLAUDE)]);
    let expected = (2.0 * 8.0 * 3.0 + 1200.0 * 3.75 + 1200.0 * 0.3 + outputs * 15.0) / 1e6;
    assert!((cost - expected).abs() < 1e-12, "{cost} != {expected}");
}

#[tokio::test]
async fn count_tokens_is_relayed_and_counts_no_tokens() {
    let app = spawn(anthropic()).await;
    let response = app
        .post_json("/v1/messages/count_tokens", &message(false))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    // "Say something." is 14 characters: 4 tokens, plus 3 for the message and 3.
    assert_eq!(body["input_tokens"], 10);
    let m = app.scrape().await;
    assert_eq!(m.get("mcp_server_token_usage_total", &[]), 0.0);
    assert_eq!(m.get("mcp_server_usage_missing_total", &[]), 0.0);
    assert_eq!(
        m.get(
            "mcp_server_requests_total",
            &[("endpoint", "/v1/messages/count_tokens"), ("status", "200")]
        ),
        1.0
    );
}

/// The `data` of the last event of an SSE body, and its `event:` name.
fn last_event(body: &str) -> (String, Value) {
    let last = body.trim_end().rsplit("\n\n").next().unwrap();
    let name = last
        .lines()
        .find_map(|l| l.strip_prefix("event: "))
        .unwrap();
    let data = last.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    (name.to_owned(), serde_json::from_str(data).unwrap())
}

#[tokio::test]
async fn a_broken_message_stream_ends_with_an_anthropic_error_event() {
    let mut options = anthropic();
    options.mock.profile.stream_cut_rate = 1.0;
    let app = spawn(options).await;
    let body = app
        .post_json("/v1/messages", &message(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("event: message_start\n"));
    let (name, data) = last_event(&body);
    assert_eq!(name, "error");
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(!body.contains("message_stop"));
    let m = app.scrape().await;
    let labels = [
        ("endpoint", "/v1/messages"),
        ("error_type", "stream_interrupted"),
    ];
    assert_eq!(m.get("mcp_server_errors_total", &labels), 1.0);
    // The input side arrived in message_start; the output is one token per delta relayed.
    let deltas = body.matches("event: content_block_delta").count() as f64;
    assert_eq!(
        tokens(&m, "mcp_server_token_usage_total", "completion"),
        deltas
    );
    assert_eq!(tokens(&m, "mcp_server_token_usage_total", "prompt"), 10.0);
}

#[tokio::test]
async fn an_overloaded_error_mid_stream_is_relayed_and_counted_as_overloaded() {
    let stream = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":12,"cache_read_input_tokens":100,"output_tokens":1}}}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        "\n\n",
        "event: error\n",
        r#"data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        "\n\n"
    );
    let mut options = anthropic();
    options.upstreams = Vec::new();
    options.settings.upstream.kind = mcp_core::upstream::UpstreamKind::Anthropic;
    options.upstream =
        Some(raw_upstream("text/event-stream", vec![stream.as_bytes().to_vec()]).await);
    let app = spawn(options).await;
    let body = app
        .post_json("/v1/messages", &message(true))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(body, stream, "the upstream's own error event is the last");
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "overloaded")]
        ),
        1.0
    );
    assert_eq!(tokens(&m, "mcp_server_token_usage_total", "prompt"), 112.0);
    assert_eq!(
        tokens(&m, "mcp_server_token_usage_total", "completion"),
        1.0
    );
}

#[tokio::test]
async fn an_upstream_529_passes_through_with_its_body_and_trips_the_breaker() {
    let mut options = anthropic();
    options.mock.profile.error_rate = 1.0;
    options.mock.profile.error_status = 529;
    options.settings.routing.breaker.consecutive_failures = 2;
    let app = spawn(options).await;
    for _ in 0..2 {
        let response = app.post_json("/v1/messages", &message(false)).await;
        assert_eq!(response.status(), 529);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "overloaded_error");
    }
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "overloaded")]
        ),
        2.0
    );
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[
                ("endpoint", "/v1/messages"),
                ("error_type", "upstream_overloaded")
            ]
        ),
        2.0
    );
    assert_eq!(
        m.get(
            "mcp_server_circuit_breaker_transitions_total",
            &[("to", "open")]
        ),
        1.0
    );
    // The breaker is open: the gateway's own 503, in Anthropic's shape.
    let refused = app.post_json("/v1/messages", &message(false)).await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn the_gateways_own_errors_on_the_messages_endpoints_are_anthropic_shaped() {
    let app = spawn(anthropic()).await;
    let check = |status: u16, kind: &'static str| {
        move |response: reqwest::Response| async move {
            assert_eq!(response.status(), status);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["type"], "error", "{body}");
            assert_eq!(body["error"]["type"], kind, "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
            assert!(body.get("code").is_none());
        }
    };
    let unknown = json!({"model": "claude-nope", "max_tokens": 5, "messages": []});
    check(404, "not_found_error")(app.post_json("/v1/messages", &unknown).await).await;
    check(404, "not_found_error")(
        app.post_json(
            "/v1/messages",
            &json!({"model": "gpt-4o-mini", "max_tokens": 5}),
        )
        .await,
    )
    .await;
    check(400, "invalid_request_error")(
        app.post_raw("/v1/messages", "application/json", b"{\"model\": ")
            .await,
    )
    .await;
    check(415, "invalid_request_error")(
        app.post_raw("/v1/messages/count_tokens", "text/plain", b"{}")
            .await,
    )
    .await;
    check(405, "invalid_request_error")(app.get("/v1/messages").await).await;
    check(404, "not_found_error")(
        app.post_raw("/v1/messages/batches", "application/json", b"{}")
            .await,
    )
    .await;
    // An OpenAI client's path keeps OpenAI's shape.
    let chat = app.chat(&chat_body(CLAUDE)).await;
    assert_eq!(chat.status(), 404);
    let body: Value = chat.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
}
