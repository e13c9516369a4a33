//! Starting a mock and speaking to it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mcp_mock_upstream::{FaultProfile, MockOptions, MockUpstream};
use serde_json::{Value, json};

pub(crate) struct TestMock {
    pub(crate) address: SocketAddr,
    pub(crate) base_url: String,
    pub(crate) client: reqwest::Client,
}

pub(crate) async fn spawn_mock(options: MockOptions) -> TestMock {
    let mock = MockUpstream::bind("127.0.0.1:0".parse().unwrap(), options).unwrap();
    let address = mock.local_addr();
    let base_url = mock.base_url();
    tokio::spawn(mock.run());
    TestMock {
        address,
        base_url,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
    }
}

pub(crate) async fn spawn_with_faults(profile: FaultProfile) -> TestMock {
    spawn_mock(MockOptions {
        profile,
        ..MockOptions::default()
    })
    .await
}

pub(crate) async fn spawn_fixed(profile: FaultProfile) -> TestMock {
    spawn_mock(MockOptions {
        profile,
        fixed: true,
        ..MockOptions::default()
    })
    .await
}

impl TestMock {
    /// `path` relative to the server root, e.g. `/admin/stats`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// `path` relative to the API base, e.g. `/chat/completions`.
    pub(crate) async fn post_api(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base_url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn post_raw(&self, path: &str, body: &'static str) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base_url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub(crate) async fn stats(&self) -> Value {
        self.get_json("/admin/stats").await
    }

    pub(crate) async fn put_faults(&self, patch: &Value) -> reqwest::Response {
        self.client
            .put(self.url("/admin/faults"))
            .json(patch)
            .send()
            .await
            .unwrap()
    }

    /// Polls the stats until `field` reaches `expected`, failing after a few seconds.
    pub(crate) async fn wait_for_stat(&self, field: &str, expected: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stats = self.stats().await;
            if stats[field] == expected {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "{field} never reached {expected}: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub(crate) fn chat_request(content: &str) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": content}],
    })
}

pub(crate) fn completion_request(prompt: &str) -> Value {
    json!({"model": "gpt-3.5-turbo-instruct", "prompt": prompt})
}

/// Adds `"stream": true` and, if asked, `stream_options.include_usage`.
pub(crate) fn streaming(mut request: Value, include_usage: bool) -> Value {
    request["stream"] = json!(true);
    if include_usage {
        request["stream_options"] = json!({"include_usage": true});
    }
    request
}

pub(crate) fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The `data:` payloads of a complete SSE body, checking the framing on the way.
pub(crate) fn sse_data(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "unterminated SSE body: {body:?}");
    body.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// Parses every payload but `[DONE]`, which must come last.
pub(crate) fn sse_chunks(body: &str) -> Vec<Value> {
    let mut data = sse_data(body);
    assert_eq!(data.pop().as_deref(), Some("[DONE]"));
    data.iter()
        .map(|payload| serde_json::from_str(payload).unwrap())
        .collect()
}

/// The stream's body as far as it goes: the text received and whether it ended in an error.
pub(crate) async fn read_stream(response: reqwest::Response) -> (String, bool) {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(_) => return (String::from_utf8(body).unwrap(), true),
        }
    }
    (String::from_utf8(body).unwrap(), false)
}
