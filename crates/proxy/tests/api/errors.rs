//! Every error class: the client gets OpenAI's error shape with the right status, and the
//! error is counted under its classification.

use std::time::Duration;

use mcp_mock_upstream::FaultProfile;
use serde_json::{Value, json};

use crate::helpers::*;

/// Asserts OpenAI's error envelope and returns the error object.
async fn openai_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    let error = body["error"].clone();
    for field in ["message", "type", "param", "code"] {
        assert!(error.get(field).is_some(), "missing {field} in {body}");
    }
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    error
}

async fn errors_counted(app: &TestApp, error_type: &str, endpoint: &str) -> f64 {
    app.scrape().await.get(
        "mcp_server_errors_total",
        &[("error_type", error_type), ("endpoint", endpoint)],
    )
}

#[tokio::test]
async fn malformed_json_gets_a_400_in_openai_shape() {
    let app = spawn_app().await;
    let response = app
        .post_raw(
            "/v1/chat/completions",
            "application/json",
            b"{\"model\": \"gpt-4o-mini\",",
        )
        .await;
    let error = openai_error(response, 400).await;
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "invalid_request");
    assert!(error["message"].as_str().unwrap().contains("parse"));
    assert_eq!(
        errors_counted(&app, "invalid_request", "/v1/chat/completions").await,
        1.0
    );
}

#[tokio::test]
async fn a_wrongly_typed_field_is_named_in_the_error() {
    let app = spawn_app().await;
    let response = app
        .chat(&json!({"model": CHAT_MODEL, "messages": [], "stream": "yes"}))
        .await;
    let error = openai_error(response, 400).await;
    assert!(
        error["message"].as_str().unwrap().contains("`stream`"),
        "{error}"
    );
}

#[tokio::test]
async fn a_wrong_content_type_gets_a_415() {
    let app = spawn_app().await;
    let response = app
        .post_raw(
            "/v1/chat/completions",
            "text/plain",
            b"{\"model\":\"gpt-4o-mini\"}",
        )
        .await;
    openai_error(response, 415).await;
    assert_eq!(
        errors_counted(&app, "unsupported_media_type", "/v1/chat/completions").await,
        1.0
    );
}

#[tokio::test]
async fn a_missing_model_gets_a_400_naming_the_parameter() {
    let app = spawn_app().await;
    let response = app.chat(&json!({"messages": []})).await;
    let error = openai_error(response, 400).await;
    assert_eq!(error["param"], "model");
}

#[tokio::test]
async fn an_unknown_model_gets_a_404_model_not_found() {
    let app = spawn_app().await;
    let response = app.chat(&chat_body("gpt-9-ultra")).await;
    let error = openai_error(response, 404).await;
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["param"], "model");
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[("error_type", "model_not_found")]
        ),
        1.0
    );
    // Refused before any upstream attempt, and no series for the unknown name.
    assert_eq!(m.get("mcp_server_upstream_requests_total", &[]), 0.0);
    assert!(!m.text.contains("gpt-9-ultra"));
}

#[tokio::test]
async fn a_body_over_the_limit_gets_a_413() {
    let mut options = Spawn::default();
    options.settings.server.max_body_bytes = 1024;
    let app = spawn(options).await;
    let big = "x".repeat(4096);
    let response = app
        .chat(&json!({"model": CHAT_MODEL, "messages": [{"role": "user", "content": big}]}))
        .await;
    openai_error(response, 413).await;
    assert_eq!(
        errors_counted(&app, "payload_too_large", "/v1/chat/completions").await,
        1.0
    );
    // A body without Content-Length (chunked) is cut off at the limit as well.
    let chunks = futures_util::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 512]))),
    );
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    openai_error(response, 413).await;
}

#[tokio::test]
async fn unknown_paths_and_methods_get_openai_shaped_404_and_405() {
    let app = spawn_app().await;
    let response = app.get("/v1/does/not/exist").await;
    let error = openai_error(response, 404).await;
    assert_eq!(error["code"], "not_found");
    let response = app.get("/v1/chat/completions").await;
    let error = openai_error(response, 405).await;
    assert_eq!(error["code"], "method_not_allowed");
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_requests_total",
            &[("endpoint", "unmatched"), ("status", "404")]
        ),
        1.0,
        "unknown paths share one masked label value"
    );
    assert!(!m.text.contains("/v1/does/not/exist"));
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[
                ("error_type", "method_not_allowed"),
                ("endpoint", "/v1/chat/completions")
            ]
        ),
        1.0
    );
}

#[tokio::test]
async fn an_upstream_4xx_is_passed_through_unchanged() {
    let app = spawn_with_faults(FaultProfile {
        error_rate: 1.0,
        error_status: 400,
        ..FaultProfile::default()
    })
    .await;
    let direct = app
        .direct("/chat/completions", &chat_body(CHAT_MODEL))
        .await;
    assert_eq!(direct.status(), 400);
    let direct: Value = direct.json().await.unwrap();
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 400);
    let proxied: Value = response.json().await.unwrap();
    assert_eq!(proxied, direct);
    assert_eq!(
        errors_counted(&app, "upstream_client_error", "/v1/chat/completions").await,
        1.0
    );
}

#[tokio::test]
async fn an_upstream_429_is_passed_through_with_retry_after() {
    let app = spawn_with_faults(FaultProfile {
        error_rate: 1.0,
        error_status: 429,
        ..FaultProfile::default()
    })
    .await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[("error_type", "upstream_rate_limited")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "rate_limited")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_ratelimit_remaining",
            &[("kind", "requests")]
        ),
        0.0
    );
}

#[tokio::test]
async fn an_upstream_5xx_becomes_a_502() {
    let app = spawn_with_faults(FaultProfile {
        error_rate: 1.0,
        error_status: 503,
        ..FaultProfile::default()
    })
    .await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    let error = openai_error(response, 502).await;
    assert_eq!(error["code"], "upstream_server_error");
    assert_eq!(error["type"], "upstream_error");
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "server_error")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_requests_total",
            &[("endpoint", "/v1/chat/completions"), ("status", "502")]
        ),
        1.0
    );
}

#[tokio::test]
async fn an_unreachable_upstream_gives_502_and_is_marked_down() {
    let mut options = Spawn::default();
    options.unreachable_upstream = true;
    let app = spawn(options).await;
    for _ in 0..3 {
        let response = app.chat(&chat_body(CHAT_MODEL)).await;
        let error = openai_error(response, 502).await;
        assert_eq!(error["code"], "upstream_unavailable");
        let message = error["message"].as_str().unwrap();
        assert!(
            !message.contains("127.0.0.1"),
            "no upstream address in: {message}"
        );
    }
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "connect_error")]
        ),
        3.0
    );
    assert_eq!(
        m.get("mcp_server_upstream_up", &[("upstream", "primary")]),
        0.0
    );
    assert_eq!(app.get("/ready").await.status(), 503);
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test]
async fn with_ready_requires_upstream_off_an_upstream_outage_keeps_the_replica_ready() {
    let mut options = Spawn::default();
    options.unreachable_upstream = true;
    options.settings.server.ready_requires_upstream = false;
    let app = spawn(options).await;
    for _ in 0..3 {
        openai_error(app.chat(&chat_body(CHAT_MODEL)).await, 502).await;
    }
    let m = app.scrape().await;
    assert_eq!(
        m.get("mcp_server_upstream_up", &[("upstream", "primary")]),
        0.0
    );
    assert_eq!(app.get("/ready").await.status(), 200);
}

#[tokio::test]
async fn an_upstream_that_never_answers_gives_504_at_the_deadline() {
    let mut options = Spawn::default();
    options.mock.profile.hang_rate = 1.0;
    options.settings.upstream.request_timeout_secs = 1;
    let app = spawn(options).await;
    let started = std::time::Instant::now();
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    let elapsed = started.elapsed();
    let error = openai_error(response, 504).await;
    assert_eq!(error["code"], "upstream_timeout");
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "timeout")]
        ),
        1.0
    );
}

#[tokio::test]
async fn an_unparseable_upstream_body_gives_502() {
    let app = spawn_with_faults(FaultProfile {
        malformed_rate: 1.0,
        ..FaultProfile::default()
    })
    .await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    let error = openai_error(response, 502).await;
    assert_eq!(error["code"], "upstream_malformed");
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "malformed")]
        ),
        1.0
    );
    assert_eq!(m.get("mcp_server_token_usage_total", &[]), 0.0);
}

/// A gateway behind `raw_upstream` answering `body` to every request.
async fn spawn_answering(content_type: &'static str, body: &[u8]) -> TestApp {
    let mut options = Spawn::default();
    options.upstream = Some(raw_upstream(content_type, vec![body.to_vec()]).await);
    spawn(options).await
}

// An answer is the client's even when its usage is not what the gateway can count: it is
// relayed as it came, what can be read is counted, and nothing readable is missing usage.
#[tokio::test]
async fn an_answer_whose_usage_cannot_be_read_still_reaches_the_client_unchanged() {
    let answer = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":"12","completion_tokens":2.5,"prompt_tokens_details":7}}"#;
    let app = spawn_answering("application/json", answer).await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), &answer[..]);
    let m = app.scrape().await;
    let success = [("outcome", "success")];
    assert_eq!(m.get("mcp_server_upstream_requests_total", &success), 1.0);
    assert_eq!(m.get("mcp_server_token_usage_total", &[]), 0.0);
    let chat = [("endpoint", "/v1/chat/completions")];
    assert_eq!(m.get("mcp_server_usage_missing_total", &chat), 1.0);

    // A count that can be read is counted beside one that cannot, and nothing is missing.
    let answer = br#"{"id":"chatcmpl-2","object":"chat.completion","model":"m","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":-1,"completion_tokens_details":[]}}"#;
    let app = spawn_answering("application/json", answer).await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), &answer[..]);
    let m = app.scrape().await;
    let prompt = [("type", "prompt")];
    assert_eq!(m.get("mcp_server_token_usage_total", &prompt), 12.0);
    let completion = [("type", "completion")];
    assert_eq!(m.get("mcp_server_token_usage_total", &completion), 0.0);
    assert_eq!(m.get("mcp_server_usage_missing_total", &chat), 0.0);
}

#[tokio::test]
async fn a_stream_whose_usage_cannot_be_read_is_relayed_whole_and_its_output_estimated() {
    let stream = concat!(
        r#"data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
        "\n\n",
        r#"data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" there"}}]}"#,
        "\n\n",
        r#"data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":"2 tokens"}}"#,
        "\n\n",
        "data: [DONE]\n\n"
    );
    let app = spawn_answering("text/event-stream", stream.as_bytes()).await;
    let mut body = chat_body(CHAT_MODEL);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = app.chat(&body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), stream);
    let m = app.scrape().await;
    let success = [("outcome", "success")];
    assert_eq!(m.get("mcp_server_upstream_requests_total", &success), 1.0);
    let prompt = [("type", "prompt")];
    assert_eq!(m.get("mcp_server_token_usage_total", &prompt), 9.0);
    // One token per content chunk relayed, as for a stream without its output count.
    let completion = [("type", "completion")];
    assert_eq!(m.get("mcp_server_token_usage_total", &completion), 2.0);
    assert_eq!(m.get("mcp_server_usage_missing_total", &[]), 0.0);
}

/// What `mcp_server_upstream_requests_total{outcome="malformed"}` and the client see when an
/// answer is over `upstream.max_response_bytes`.
async fn assert_refused_as_too_large(app: &TestApp, limit: usize) {
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    let error = openai_error(response, 502).await;
    assert_eq!(error["code"], "upstream_malformed");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(&format!("{limit} bytes")), "{message}");
    assert_eq!(
        errors_counted(app, "upstream_malformed", "/v1/chat/completions").await,
        1.0
    );
    let attempts = app.scrape().await;
    let malformed = [("outcome", "malformed")];
    assert_eq!(
        attempts.get("mcp_server_upstream_requests_total", &malformed),
        1.0
    );
}

#[tokio::test]
async fn an_answer_announced_larger_than_the_limit_gives_502() {
    // The mock's answers carry a content-length of several hundred bytes.
    let mut options = Spawn::default();
    options.settings.upstream.max_response_bytes = 100;
    let app = spawn(options).await;
    assert_refused_as_too_large(&app, 100).await;
}

#[tokio::test]
async fn an_unannounced_answer_is_cut_off_at_the_limit_with_a_502() {
    // Chunked, no length: four chunks of 100 bytes against a limit of 250.
    let chunk = vec![b' '; 100];
    let upstream = raw_upstream("application/json", vec![chunk; 4]).await;
    let mut options = Spawn::default();
    options.upstream = Some(upstream);
    options.settings.upstream.max_response_bytes = 250;
    let app = spawn(options).await;
    assert_refused_as_too_large(&app, 250).await;

    // The same answer within the limit is read whole (and, being blank, refused as not JSON).
    let mut options = Spawn::default();
    options.upstream = Some(raw_upstream("application/json", vec![vec![b' '; 100]; 4]).await);
    options.settings.upstream.max_response_bytes = 400;
    let app = spawn(options).await;
    let error = openai_error(app.chat(&chat_body(CHAT_MODEL)).await, 502).await;
    assert_eq!(
        error["message"],
        "The upstream's answer was not valid JSON."
    );
}
