//! Fixed mode: the fixtures, byte for byte.

use mcp_mock_upstream::fixtures;
use mcp_mock_upstream::{FaultProfile, MockOptions};
use serde_json::{Value, json};

use crate::helpers::{chat_request, completion_request, spawn_fixed, spawn_mock, streaming};

#[tokio::test]
async fn fixed_mode_serves_every_fixture_verbatim() {
    let mock = spawn_fixed(FaultProfile::default()).await;
    let cases = [
        (
            "/chat/completions",
            chat_request("hi"),
            fixtures::CHAT_COMPLETION,
        ),
        (
            "/completions",
            completion_request("hi"),
            fixtures::COMPLETION,
        ),
        (
            "/embeddings",
            json!({"model": "e", "input": "x"}),
            fixtures::EMBEDDING,
        ),
        (
            "/chat/completions",
            streaming(chat_request("hi"), false),
            fixtures::CHAT_COMPLETION_STREAM,
        ),
        (
            "/completions",
            streaming(completion_request("hi"), true),
            fixtures::COMPLETION_STREAM,
        ),
    ];
    for (path, request, fixture) in cases {
        let response = mock.post_api(path, &request).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response
                .headers()
                .contains_key("x-ratelimit-remaining-tokens")
        );
        assert_eq!(response.text().await.unwrap(), fixture, "{path} {request}");
    }
    let models = mock
        .client
        .get(format!("{}/models", mock.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(models.text().await.unwrap(), fixtures::MODELS);
}

#[tokio::test]
async fn fixed_mode_still_validates_like_openai() {
    let mock = spawn_fixed(FaultProfile::default()).await;
    let response = mock.post_raw("/chat/completions", "[1, 2]").await;
    assert_eq!(response.status(), 400);
    let response = mock
        .post_raw("/chat/completions", "{\"stream\": true}")
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "model");
}

#[tokio::test]
async fn fixed_mode_streams_keep_the_configured_cadence() {
    let mock = spawn_mock(MockOptions {
        fixed: true,
        profile: FaultProfile {
            ttft_ms: 120,
            token_interval_ms: 10,
            ..FaultProfile::default()
        },
        ..MockOptions::default()
    })
    .await;
    let started = std::time::Instant::now();
    let body = mock
        .post_api("/chat/completions", &streaming(chat_request("hi"), true))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(body, fixtures::CHAT_COMPLETION_STREAM);
    // ttft, then 5 more words, the finish chunk and the usage chunk at 10 ms each.
    assert!(started.elapsed() >= std::time::Duration::from_millis(120 + 70));
}

#[test]
fn the_fixtures_usage_matches_their_content() {
    let words = |text: &str| text.split_whitespace().count() as u64;
    let chat: Value = serde_json::from_str(fixtures::CHAT_COMPLETION).unwrap();
    let content = chat["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(chat["usage"]["completion_tokens"], words(content));
    // One message of 38 characters: 10 + 3 + 3.
    assert_eq!(fixtures::CHAT_PROMPT.chars().count(), 38);
    assert_eq!(chat["usage"]["prompt_tokens"], 16);

    let completion: Value = serde_json::from_str(fixtures::COMPLETION).unwrap();
    let text = completion["choices"][0]["text"].as_str().unwrap();
    assert_eq!(completion["usage"]["completion_tokens"], words(text));
    assert_eq!(
        completion["usage"]["prompt_tokens"],
        (fixtures::COMPLETION_PROMPT.chars().count() as u64).div_ceil(4)
    );

    let embedding: Value = serde_json::from_str(fixtures::EMBEDDING).unwrap();
    assert_eq!(
        embedding["usage"]["prompt_tokens"],
        (fixtures::EMBEDDING_INPUT.chars().count() as u64).div_ceil(4)
    );
    assert_eq!(
        embedding["data"][0]["embedding"].as_array().unwrap().len(),
        8
    );

    for (stream, prompt_tokens) in [
        (fixtures::CHAT_COMPLETION_STREAM, 16),
        (fixtures::COMPLETION_STREAM, 5),
    ] {
        let chunks: Vec<Value> = stream
            .split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .filter(|data| *data != "[DONE]")
            .map(|data| serde_json::from_str(data).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|chunk| {
                let choice = &chunk["choices"][0];
                choice["delta"]["content"]
                    .as_str()
                    .or(choice["text"].as_str())
            })
            .collect();
        let content_chunks = chunks
            .iter()
            .filter(|chunk| {
                let choice = &chunk["choices"][0];
                let piece = choice["delta"]["content"]
                    .as_str()
                    .or(choice["text"].as_str());
                piece.is_some_and(|piece| !piece.is_empty())
            })
            .count() as u64;
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(usage["completion_tokens"], words(&text));
        assert_eq!(usage["completion_tokens"], content_chunks);
        assert_eq!(usage["prompt_tokens"], prompt_tokens);
        assert_eq!(
            usage["total_tokens"],
            prompt_tokens + usage["completion_tokens"].as_u64().unwrap()
        );
        assert!(stream.ends_with("data: [DONE]\n\n"));
    }
}
