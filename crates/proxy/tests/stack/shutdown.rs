//! Stopping the gateway process: on SIGTERM `/ready` turns 503 at once, new connections are
//! accepted for the drain delay and refused after it, a stream that finishes within the grace
//! period finishes, one that outlives it ends with the error event, and the process exits 0.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn workspace_binary(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_BIN_EXE_mcp-proxy"))
        .parent()
        .expect("a directory")
        .join(name)
}

/// Reads a streamed answer to its end; what it said.
async fn read_all(response: reqwest::Response) -> String {
    let mut text = String::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Err(e) => {
                text.push_str(&format!("\n<read error: {e}>"));
                break;
            }
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_finishes_short_streams_and_ends_long_ones_with_the_error_event() {
    let (mock_port, port) = (free_port(), free_port());
    let mut mock = Command::new(workspace_binary("mcp-mock-upstream"))
        .args(["--listen", &format!("127.0.0.1:{mock_port}")])
        .args(["--token-interval-ms", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the mock starts");
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_mcp-proxy"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &format!("http://127.0.0.1:{mock_port}/v1")])
        .env("MCP__SERVER__DRAIN_DELAY_SECS", "1")
        .env("MCP__SERVER__SHUTDOWN_TIMEOUT_SECS", "3")
        .env("MCP__UPSTREAM__HEALTH_CHECK_INTERVAL_SECS", "0")
        .env("MCP__LOG__LEVEL", "warn")
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the gateway starts");
    let root = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{root}/ready")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the gateway never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let stream = |max_tokens: u32| {
        client
            .post(format!("{root}/v1/chat/completions"))
            .json(&json!({
                "model": "gpt-4o-mini",
                "stream": true,
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": "hi"}]
            }))
            .send()
    };
    // Ten to twenty chunks at 100 ms: done within the 3 s grace. Three hundred: not.
    let short = stream(20).await.expect("a stream");
    let long = stream(300).await.expect("a stream");
    let short = tokio::spawn(read_all(short));
    let long = tokio::spawn(read_all(long));

    let sent = Command::new("kill")
        .args(["-TERM", &proxy.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let signalled = Instant::now();
    // Draining: not ready, but a new connection is still served during the delay.
    let mut ready = client.get(format!("{root}/ready")).send().await.unwrap();
    while ready.status() == 200 {
        assert!(
            signalled.elapsed() < Duration::from_millis(500),
            "still ready"
        );
        ready = client.get(format!("{root}/ready")).send().await.unwrap();
    }
    assert_eq!(ready.status(), 503);
    assert!(signalled.elapsed() < Duration::from_secs(1));
    // After the delay, new connections are refused.
    let refused = loop {
        if TcpStream::connect(("127.0.0.1", port)).is_err() {
            break signalled.elapsed();
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(4),
            "still accepting connections"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        refused >= Duration::from_millis(900),
        "refused after {refused:?}, before the delay"
    );

    let short = short.await.unwrap();
    assert!(short.trim_end().ends_with("data: [DONE]"), "{short}");
    let long = long.await.unwrap();
    assert!(long.contains("shutting down"), "{long}");
    assert!(long.contains("stream_interrupted"), "{long}");
    assert!(!long.contains("[DONE]"), "{long}");

    let exit = loop {
        if let Some(status) = proxy.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "the gateway did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit}");
    let _ = mock.kill();
    let _ = mock.wait();
}
