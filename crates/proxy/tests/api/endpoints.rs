//! Every endpoint answers like the upstream and is accounted for.

use mcp_mock_upstream::fixtures;
use mcp_proxy::configuration::Secrets;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_chat_completion_is_relayed_and_its_usage_counted() {
    let app = spawn_app().await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    // The upstream's request id reaches the client, for support requests to the provider.
    let request_id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(request_id.starts_with("req_"), "{request_id}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let prompt = body["usage"]["prompt_tokens"].as_u64().unwrap();
    let completion = body["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(prompt > 0 && completion > 0);

    let m = app.scrape().await;
    let tokens = |kind: &str| {
        m.get(
            "mcp_server_token_usage_total",
            &[
                ("model", CHAT_MODEL),
                ("type", kind),
                ("upstream", "primary"),
            ],
        )
    };
    assert_eq!(tokens("prompt"), prompt as f64);
    assert_eq!(tokens("completion"), completion as f64);
    let expected_cost = (prompt as f64 * 0.15 + completion as f64 * 0.6) / 1e6;
    let cost = m.get("mcp_server_cost_usd_total", &[("model", CHAT_MODEL)]);
    assert!(
        (cost - expected_cost).abs() < 1e-12,
        "{cost} vs {expected_cost}"
    );
    assert_eq!(
        m.get(
            "mcp_server_request_tokens_count",
            &[("model", CHAT_MODEL), ("type", "completion")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_requests_total",
            &[
                ("endpoint", "/v1/chat/completions"),
                ("method", "POST"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[
                ("upstream", "primary"),
                ("model", CHAT_MODEL),
                ("outcome", "success")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_overhead_seconds_count",
            &[("endpoint", "/v1/chat/completions"), ("stream", "false")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_time_to_first_byte_seconds_count",
            &[("model", CHAT_MODEL)]
        ),
        1.0
    );
}

#[tokio::test]
async fn completions_and_embeddings_are_relayed_and_counted() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/v1/completions",
            &json!({"model": COMPLETION_MODEL, "prompt": "Say this is a test", "max_tokens": 8}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["object"], "text_completion");

    let response = app
        .post_json(
            "/v1/embeddings",
            &json!({"model": EMBEDDING_MODEL, "input": ["one", "two words"], "dimensions": 4}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let embedding: Value = response.json().await.unwrap();
    assert_eq!(embedding["data"].as_array().unwrap().len(), 2);

    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_token_usage_total",
            &[("model", COMPLETION_MODEL), ("type", "completion")]
        ),
        completion["usage"]["completion_tokens"].as_f64().unwrap()
    );
    assert_eq!(
        m.get(
            "mcp_server_token_usage_total",
            &[("model", EMBEDDING_MODEL), ("type", "prompt")]
        ),
        embedding["usage"]["prompt_tokens"].as_f64().unwrap()
    );
    // Embeddings report no completion tokens, so none are observed.
    assert_eq!(
        m.sum(
            "mcp_server_request_tokens_count",
            &[("model", EMBEDDING_MODEL), ("type", "completion")]
        ),
        None
    );
    for endpoint in ["/v1/completions", "/v1/embeddings"] {
        assert_eq!(
            m.get(
                "mcp_server_requests_total",
                &[("endpoint", endpoint), ("status", "200")]
            ),
            1.0,
            "{endpoint}"
        );
    }
}

#[tokio::test]
async fn upstream_bodies_are_relayed_byte_for_byte() {
    let mut options = Spawn::default();
    options.mock.fixed = true;
    let app = spawn(options).await;
    for (path, fixture) in [
        ("/v1/chat/completions", fixtures::CHAT_COMPLETION),
        ("/v1/completions", fixtures::COMPLETION),
        ("/v1/embeddings", fixtures::EMBEDDING),
    ] {
        let model = match path {
            "/v1/completions" => COMPLETION_MODEL,
            "/v1/embeddings" => EMBEDDING_MODEL,
            _ => CHAT_MODEL,
        };
        let body = json!({"model": model, "messages": [], "prompt": "x", "input": "x"});
        let response = app.post_json(path, &body).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.text().await.unwrap(), fixture, "{path}");
    }
}

#[tokio::test]
async fn the_model_list_is_the_configured_one_in_openai_shape() {
    let app = spawn_app().await;
    let response = app.get("/v1/models").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            m["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        ids,
        [CHAT_MODEL, "gpt-4o", COMPLETION_MODEL, EMBEDDING_MODEL]
    );
}

#[tokio::test]
async fn health_and_readiness_answer_and_probes_are_not_counted() {
    let app = spawn_app().await;
    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "healthy", "service": "mcp-server"})
    );
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 200);
    app.get("/metrics").await;
    app.get("/v1/models").await;
    let m = app.scrape().await;
    let endpoints = m.label_values("mcp_server_requests_total", "endpoint");
    assert_eq!(endpoints, ["/v1/models"], "only /v1/models is counted");
    assert_eq!(m.get("mcp_server_errors_total", &[]), 0.0);
}

#[tokio::test]
async fn the_upstream_gets_the_configured_key_and_it_never_leaks() {
    const KEY: &str = "sk-test-0123456789abcdef";
    let mut options = Spawn::default();
    options.mock.api_key = Some(KEY.into());
    options.secrets = Secrets::default().with_key("MCP_TEST_UNSET_KEY", KEY);
    let app = spawn(options).await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 200, "the mock accepted the key");
    let headers = format!("{:?}", response.headers());
    let text = response.text().await.unwrap();
    let scrape = app.scrape().await.text;
    for place in [&headers, &text, &scrape] {
        assert!(!place.contains(KEY) && !place.contains("sk-test"));
    }
}

#[tokio::test]
async fn without_a_key_the_upstreams_401_is_passed_through() {
    let mut options = Spawn::default();
    options.mock.api_key = Some("sk-required".into());
    let app = spawn(options).await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[("error_type", "upstream_client_error")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "client_error")]
        ),
        1.0
    );
}

#[tokio::test]
async fn without_a_model_list_any_model_is_forwarded_and_counted_as_other() {
    let mut options = Spawn::default();
    options.settings.models.clear();
    let app = spawn(options).await;
    for model in ["my-fine-tune-1", "my-fine-tune-2"] {
        let response = app.chat(&chat_body(model)).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["model"], model, "the upstream saw the requested model");
    }
    let m = app.scrape().await;
    assert_eq!(
        m.label_values("mcp_server_token_usage_total", "model"),
        ["other"]
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("model", "other"), ("outcome", "success")]
        ),
        2.0
    );
}
