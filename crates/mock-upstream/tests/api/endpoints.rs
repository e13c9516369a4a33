//! Generated mode: each endpoint's shape, and usage that matches what was sent and received.

use mcp_mock_upstream::MockOptions;
use serde_json::{Value, json};

use crate::helpers::{chat_request, spawn_mock, word_count};

#[tokio::test]
async fn a_chat_completion_echoes_the_model_and_counts_its_words_as_completion_tokens() {
    let mock = spawn_mock(MockOptions::default()).await;
    let request = json!({
        "model": "my-model",
        "messages": [
            {"role": "system", "content": "abcd"},
            {"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]},
        ],
    });
    let response = mock.post_api("/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "my-model");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
    let words = word_count(choice["message"]["content"].as_str().unwrap());
    assert!((16..=128).contains(&words), "{words}");
    let usage = &body["usage"];
    // 12 characters -> 3 tokens, two messages -> 6, priming -> 3.
    assert_eq!(usage["prompt_tokens"], 12);
    assert_eq!(usage["completion_tokens"], words);
    assert_eq!(usage["total_tokens"], 12 + words);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn every_answer_has_its_own_id() {
    let mock = spawn_mock(MockOptions::default()).await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..5 {
        let body: Value = mock
            .post_api("/chat/completions", &chat_request("hi"))
            .await
            .json()
            .await
            .unwrap();
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 5);
}

#[tokio::test]
async fn max_tokens_bounds_the_answer_and_length_is_reported_at_the_cap() {
    let mock = spawn_mock(MockOptions::default()).await;
    let mut reached_cap = false;
    for _ in 0..30 {
        let mut request = chat_request("hi");
        request["max_completion_tokens"] = json!(4);
        let body: Value = mock
            .post_api("/chat/completions", &request)
            .await
            .json()
            .await
            .unwrap();
        let tokens = body["usage"]["completion_tokens"].as_u64().unwrap();
        assert!((2..=4).contains(&tokens), "{tokens}");
        let content = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(word_count(content), tokens);
        let finish = body["choices"][0]["finish_reason"].as_str().unwrap();
        assert_eq!(finish == "length", tokens == 4, "{finish} at {tokens}");
        reached_cap |= tokens == 4;
    }
    assert!(reached_cap, "30 draws from 2..=4 never hit 4");
}

#[tokio::test]
async fn a_completion_uses_text_and_counts_prompt_arrays() {
    let mock = spawn_mock(MockOptions::default()).await;
    let request = json!({"model": "instruct", "prompt": ["Say this is a test", [1, 2, 3]]});
    let body: Value = mock
        .post_api("/completions", &request)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["model"], "instruct");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    let words = word_count(body["choices"][0]["text"].as_str().unwrap());
    assert_eq!(body["usage"]["prompt_tokens"], 5 + 3);
    assert_eq!(body["usage"]["completion_tokens"], words);
    assert_eq!(body["usage"]["total_tokens"], 8 + words);
}

#[tokio::test]
async fn embeddings_default_to_1536_dimensions_and_follow_dimensions() {
    let mock = spawn_mock(MockOptions::default()).await;
    let body: Value = mock
        .post_api("/embeddings", &json!({"model": "emb", "input": "abcdefgh"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "emb");
    assert_eq!(body["data"][0]["object"], "embedding");
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 1536);
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 2, "total_tokens": 2})
    );

    let request = json!({"model": "emb", "input": ["a", "bb", "ccccc"], "dimensions": 8});
    let body: Value = mock
        .post_api("/embeddings", &request)
        .await
        .json()
        .await
        .unwrap();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (index, item) in data.iter().enumerate() {
        assert_eq!(item["index"], index);
        assert_eq!(item["embedding"].as_array().unwrap().len(), 8);
    }
    assert_eq!(body["usage"]["prompt_tokens"], 1 + 1 + 2);
}

#[tokio::test]
async fn embeddings_count_token_array_inputs_and_can_answer_in_base64() {
    let mock = spawn_mock(MockOptions::default()).await;
    let request = json!({
        "model": "emb", "input": [[1, 2, 3], [4, 5]], "dimensions": 6,
        "encoding_format": "base64",
    });
    let body: Value = mock
        .post_api("/embeddings", &request)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    // 6 f32s are 24 bytes, 32 base64 characters.
    let encoded = body["data"][1]["embedding"].as_str().unwrap();
    assert_eq!(encoded.len(), 32);
}

#[tokio::test]
async fn models_lists_the_fixture_models() {
    let mock = spawn_mock(MockOptions::default()).await;
    let body = mock.get_json("/v1/models").await;
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"gpt-4o-mini"), "{ids:?}");
}

#[tokio::test]
async fn health_answers_healthy() {
    let mock = spawn_mock(MockOptions::default()).await;
    assert_eq!(
        mock.get_json("/health").await,
        json!({"status": "healthy", "service": "mcp-mock-upstream"})
    );
}

#[tokio::test]
async fn successful_answers_carry_rate_limit_headers() {
    let mock = spawn_mock(MockOptions::default()).await;
    let first = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    let second = mock
        .post_api("/chat/completions", &chat_request("hi"))
        .await;
    let remaining = |response: &reqwest::Response, name: &str| -> u64 {
        response.headers()[name].to_str().unwrap().parse().unwrap()
    };
    let first_left = remaining(&first, "x-ratelimit-remaining-requests");
    assert_eq!(
        remaining(&second, "x-ratelimit-remaining-requests"),
        first_left - 1
    );
    let tokens_left = remaining(&first, "x-ratelimit-remaining-tokens");
    assert!(tokens_left > 0 && tokens_left < remaining(&first, "x-ratelimit-limit-tokens"));
}

#[tokio::test]
async fn malformed_json_and_a_missing_model_are_openai_shaped_400s() {
    let mock = spawn_mock(MockOptions::default()).await;
    let response = mock.post_raw("/chat/completions", "{\"model\": ").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("JSON"));
    assert!(body["error"].get("param").is_some() && body["error"].get("code").is_some());

    let response = mock
        .post_api("/completions", &json!({"prompt": "no model"}))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "model");
}

#[tokio::test]
async fn an_unknown_path_is_an_openai_shaped_404() {
    let mock = spawn_mock(MockOptions::default()).await;
    let response = mock.post_api("/nowhere", &json!({})).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Invalid URL (POST /v1/nowhere)");
}

#[tokio::test]
async fn a_seed_makes_answers_reproducible() {
    let answer = |seed| async move {
        let mock = spawn_mock(MockOptions {
            seed: Some(seed),
            ..MockOptions::default()
        })
        .await;
        let body: Value = mock
            .post_api("/chat/completions", &chat_request("hi"))
            .await
            .json()
            .await
            .unwrap();
        (
            body["id"].clone(),
            body["choices"][0]["message"]["content"].clone(),
        )
    };
    assert_eq!(answer(42).await, answer(42).await);
    assert_ne!(answer(42).await, answer(43).await);
}

#[tokio::test]
async fn the_healthcheck_probe_accepts_200_and_refuses_anything_else() {
    use mcp_mock_upstream::healthcheck::{TIMEOUT, probe};
    let mock = spawn_mock(MockOptions::default()).await;
    let healthy = format!("http://{}/health", mock.address);
    let missing = format!("http://{}/missing", mock.address);
    let (healthy, missing) =
        tokio::task::spawn_blocking(move || (probe(&healthy, TIMEOUT), probe(&missing, TIMEOUT)))
            .await
            .unwrap();
    assert!(healthy.is_ok(), "{healthy:?}");
    assert!(missing.unwrap_err().to_string().contains("404"));
}
