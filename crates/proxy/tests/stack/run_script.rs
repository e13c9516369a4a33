//! `make run` (scripts/run.sh): the two mocks and the gateway serve together, and a signal
//! to the process group, Ctrl-C's SIGINT or a supervisor's SIGTERM, stops all three.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Polls `check` until it holds; fails after `limit`.
async fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The script in a process group of its own (as a terminal or a supervisor would start it).
fn start(ports: [u16; 3]) -> Child {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_mcp-proxy"))
        .parent()
        .expect("a directory")
        .to_path_buf();
    Command::new("setsid")
        .arg(repo_root().join("scripts/run.sh"))
        .env("BIN_DIR", bin_dir)
        .env("PROXY_LISTEN", format!("127.0.0.1:{}", ports[0]))
        .env("MOCK_LISTEN", format!("127.0.0.1:{}", ports[1]))
        .env("SECONDARY_LISTEN", format!("127.0.0.1:{}", ports[2]))
        .env("MCP__LOG__LEVEL", "warn")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("scripts/run.sh starts")
}

async fn stops_on(signal: &str) {
    let ports = [free_port(), free_port(), free_port()];
    let mut script = start(ports);
    wait_for(Duration::from_secs(30), "all three listen", || {
        ports.iter().all(|p| listening(*p))
    })
    .await;
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", ports[0]);
    let client = reqwest::Client::new();
    let unkeyed = client
        .post(&url)
        .json(&serde_json::json!({"model": "gpt-4o", "messages": []}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(
        unkeyed.status(),
        401,
        "the shipped settings have client keys"
    );
    let answer = client
        .post(&url)
        // The shipped settings' demo key (deploy/mcp-server.yaml).
        .bearer_auth("sk-mcp-demo-team")
        .json(&serde_json::json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-mcp-upstream"], "primary");
    // A Claude model is served out of the box, on Anthropic's Messages API, from a mock.
    let models: serde_json::Value = client
        .get(format!("http://127.0.0.1:{}/v1/models", ports[0]))
        .bearer_auth("sk-mcp-demo-team")
        .send()
        .await
        .expect("the gateway answers")
        .json()
        .await
        .expect("a model list");
    let claude = models["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
        .find(|id| id.starts_with("claude-"))
        .expect("a claude- model in /v1/models")
        .to_owned();
    let message = client
        .post(format!("http://127.0.0.1:{}/v1/messages", ports[0]))
        // Anthropic's SDKs send the key as x-api-key.
        .header("x-api-key", "sk-mcp-demo-team")
        .json(&serde_json::json!({
            "model": claude,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(message.status(), 200);
    assert_eq!(message.headers()["x-mcp-upstream"], "anthropic");

    // To the whole group, as the terminal's Ctrl-C or a supervisor does.
    let group = format!("-{}", script.id());
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), "--", &group])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = script.try_wait().expect("the script can be waited for") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = script.kill();
            panic!("scripts/run.sh did not stop on SIG{signal}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        !status.success(),
        "the script reports the signal: {status:?}"
    );
    for port in ports {
        assert!(
            !listening(port),
            "port {port} still listens after SIG{signal}"
        );
    }
}

#[tokio::test]
async fn make_run_stops_all_three_on_sigterm_to_its_group() {
    stops_on("TERM").await;
}

#[tokio::test]
async fn make_run_stops_all_three_on_ctrl_c() {
    stops_on("INT").await;
}
