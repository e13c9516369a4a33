//! The `mcp-proxy` binary's log on stdout, as an operator's log collector receives it: one
//! plain-text access line per request, written out before the process exits, with neither the
//! upstream key nor the prompt, and no way for a client to forge a line.

use std::process::Stdio;
use std::time::Duration;

use mcp_mock_upstream::{MockOptions, MockUpstream};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::helpers::CHAT_MODEL;

const KEY: &str = "sk-log-test-9f3a1c0d77";
const PROMPT: &str = "PROMPT-CANARY-d41d8cd98f00";
/// What a client puts in `model` to try to start a forged line in the log.
const FORGED_MODEL: &str = "gpt-4o-mini\nFORGED mcp_proxy::access: request status=200";

/// Starts the binary against `upstream` and returns it with the address it listens on, read
/// from its "mcp-server ready" line, and the lines it wrote up to that one.
async fn start_binary(upstream: &str) -> (Child, BufReader<ChildStdout>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-proxy"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MCP") || name == "RUST_LOG" || name == "NO_COLOR" {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["--listen", "127.0.0.1:0", "--upstream", upstream])
        .env("OPENAI_API_KEY", KEY)
        .env("MCP__UPSTREAM__HEALTH_CHECK_INTERVAL_SECS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the gateway binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let address = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).await.unwrap();
            assert!(n > 0, "stdout ended before the ready line:\n{seen}");
            seen.push_str(&line);
            if line.contains("mcp-server ready") {
                let listen = line
                    .split_whitespace()
                    .find_map(|field| field.strip_prefix("listen="))
                    .unwrap_or_else(|| panic!("no listen= field in {line:?}"));
                return listen.to_owned();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no ready line within 20 s:\n{seen}"));
    (child, stdout, address, seen)
}

#[tokio::test]
async fn the_access_log_is_plain_complete_and_keeps_keys_prompts_and_forged_lines_out() {
    let mock = MockUpstream::bind(
        "127.0.0.1:0".parse().unwrap(),
        MockOptions {
            api_key: Some(KEY.into()),
            ..MockOptions::default()
        },
    )
    .unwrap();
    let upstream = mock.base_url();
    tokio::spawn(mock.run());
    let (mut child, mut stdout, address, mut log) = start_binary(&upstream).await;

    let client = reqwest::Client::new();
    let url = format!("http://{address}/v1/chat/completions");
    let body = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8});
    let ok = client
        .post(&url)
        .json(&body(CHAT_MODEL))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the key reaches the upstream");
    // With no model list any name is forwarded (and the mock answers any).
    let forged = client
        .post(&url)
        .json(&body(FORGED_MODEL))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 200);

    // A graceful stop writes out the lines still queued for the log writer.
    let pid = child.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the gateway stops within 20 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    stdout.read_to_string(&mut log).await.unwrap();

    let access: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("mcp_proxy::access"))
        .collect();
    assert_eq!(access.len(), 2, "one access line per request:\n{log}");
    for field in [
        "status=200",
        r#"model="gpt-4o-mini""#,
        r#"upstream_request_id="req_"#,
        r#" request_id="req_"#,
        "attempts=",
    ] {
        assert!(access[0].contains(field), "no {field} in {}", access[0]);
    }
    assert!(
        access[1].contains(r#"model="gpt-4o-mini\nFORGED"#),
        "the client's model is quoted and its newline escaped: {}",
        access[1]
    );
    assert!(
        !log.lines().any(|line| line.starts_with("FORGED")),
        "a client started a line of its own:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "colour codes in a pipe:\n{log}");
    assert!(!log.contains(KEY), "the upstream key was logged:\n{log}");
    assert!(!log.contains(PROMPT), "the prompt was logged:\n{log}");
}
