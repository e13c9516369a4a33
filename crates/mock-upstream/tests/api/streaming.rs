//! Generated streams: framing, one chunk per completion token, usage only when asked, and
//! the cadence knobs.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mcp_mock_upstream::{FaultProfile, MockOptions};
use serde_json::Value;

use crate::helpers::{
    chat_request, completion_request, spawn_mock, spawn_with_faults, sse_chunks, streaming,
};

fn content_of(chunk: &Value) -> Option<&str> {
    chunk["choices"][0]["delta"]["content"].as_str()
}

#[tokio::test]
async fn a_chat_stream_with_include_usage_has_one_chunk_per_completion_token() {
    let mock = spawn_mock(MockOptions::default()).await;
    let request = streaming(chat_request("abcdefgh"), true);
    let response = mock.post_api("/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let chunks = sse_chunks(&response.text().await.unwrap());

    let (first, rest) = chunks.split_first().unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(content_of(first), Some(""));
    let (usage_chunk, rest) = rest.split_last().unwrap();
    let (finish, words) = rest.split_last().unwrap();
    assert_eq!(finish["choices"][0]["delta"], serde_json::json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(words.iter().all(|chunk| {
        let piece = content_of(chunk).unwrap();
        piece.ends_with(' ') && piece.split_whitespace().count() == 1
    }));

    assert_eq!(usage_chunk["choices"], serde_json::json!([]));
    let usage = &usage_chunk["usage"];
    assert_eq!(usage["completion_tokens"], words.len());
    assert_eq!(usage["prompt_tokens"], 2 + 3 + 3);
    assert_eq!(usage["total_tokens"], 8 + words.len());
    for chunk in &chunks[..chunks.len() - 1] {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-4o-mini");
        assert_eq!(chunk["id"], first["id"]);
        assert!(chunk.get("usage").unwrap().is_null());
    }
}

#[tokio::test]
async fn a_chat_stream_without_include_usage_carries_no_usage_at_all() {
    let mock = spawn_mock(MockOptions::default()).await;
    let mut request = streaming(chat_request("hi"), false);
    request["max_tokens"] = 6.into();
    let body = mock
        .post_api("/chat/completions", &request)
        .await
        .text()
        .await
        .unwrap();
    let chunks = sse_chunks(&body);
    assert!(chunks.iter().all(|chunk| chunk.get("usage").is_none()));
    let words = chunks
        .iter()
        .filter_map(content_of)
        .filter(|c| !c.is_empty())
        .count();
    // role + words + finish.
    assert_eq!(chunks.len(), words + 2);
    assert!((3..=6).contains(&words), "{words}");
}

#[tokio::test]
async fn a_completions_stream_uses_text_and_reports_usage_last() {
    let mock = spawn_mock(MockOptions::default()).await;
    let request = streaming(completion_request("Say this is a test"), true);
    let body = mock
        .post_api("/completions", &request)
        .await
        .text()
        .await
        .unwrap();
    let chunks = sse_chunks(&body);
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    let (finish, words) = rest.split_last().unwrap();
    assert_eq!(finish["choices"][0]["text"], "");
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(words.iter().all(|chunk| {
        chunk["object"] == "text_completion"
            && chunk["choices"][0]["text"]
                .as_str()
                .unwrap()
                .trim()
                .split(' ')
                .count()
                == 1
    }));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], words.len());
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 5);
}

#[tokio::test]
async fn each_event_arrives_on_its_own_with_the_configured_cadence() {
    let mock = spawn_with_faults(FaultProfile {
        ttft_ms: 300,
        token_interval_ms: 40,
        ..FaultProfile::default()
    })
    .await;
    let mut request = streaming(chat_request("hi"), false);
    request["max_tokens"] = 2.into();
    let response = mock.post_api("/chat/completions", &request).await;
    let headers_at = Instant::now();
    let mut stream = response.bytes_stream();
    let mut arrivals = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        arrivals.push((
            headers_at.elapsed(),
            String::from_utf8(chunk.to_vec()).unwrap(),
        ));
    }
    // The role chunk is immediate; the first word waits for the time to first token.
    let first_word = arrivals
        .iter()
        .find(|(_, text)| text.contains("\"content\":\"") && !text.contains("\"role\""))
        .unwrap();
    assert!(
        first_word.0 >= Duration::from_millis(290),
        "{:?}",
        first_word.0
    );
    let total = arrivals.last().unwrap().0;
    // ttft, then the finish chunk 40 ms after the last word.
    assert!(total >= Duration::from_millis(330), "{total:?}");
    assert!(total < Duration::from_secs(3), "{total:?}");
    assert!(arrivals.last().unwrap().1.ends_with("data: [DONE]\n\n"));
}
