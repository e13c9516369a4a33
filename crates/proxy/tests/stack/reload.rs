//! SIGHUP reloads the settings file of a running gateway process; a broken file changes
//! nothing, and `check-config` says what is wrong with it without starting anything.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const GOOD: &str = "models:\n  - id: a\n";
const MORE: &str = "models:\n  - id: a\n  - id: b\n    aliases: [bee]\n";
const BROKEN: &str = "models:\n  - id: a\n    fallbacks: [a]\n";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn model_ids(client: &reqwest::Client, root: &str) -> Option<Vec<String>> {
    let body: Value = client
        .get(format!("{root}/v1/models"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        body["data"]
            .as_array()?
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect(),
    )
}

async fn reloads(client: &reqwest::Client, root: &str, result: &str) -> f64 {
    let text = client
        .get(format!("{root}/metrics"))
        .send()
        .await
        .expect("the gateway answers")
        .text()
        .await
        .expect("a text scrape");
    let series = format!("mcp_server_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in the scrape"))
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not within 20 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hangup(pid: u32) {
    let sent = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

#[tokio::test]
async fn sighup_reloads_the_file_and_a_broken_file_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("mcp-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("settings.yaml");
    std::fs::write(&file, GOOD).unwrap();
    let port = free_port();
    let root = format!("http://127.0.0.1:{port}");
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_mcp-proxy"))
        .arg("--config")
        .arg(&file)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("MCP__UPSTREAM__HEALTH_CHECK_INTERVAL_SECS", "0")
        .env("MCP__LOG__LEVEL", "warn")
        .env_remove("OPENAI_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the gateway starts");
    let client = reqwest::Client::new();
    eventually("the gateway serves", async || {
        model_ids(&client, &root).await == Some(vec!["a".to_owned()])
    })
    .await;

    std::fs::write(&file, MORE).unwrap();
    hangup(proxy.id());
    eventually("the new models are served", async || {
        model_ids(&client, &root).await == Some(vec!["a".into(), "b".into(), "bee".into()])
    })
    .await;
    assert_eq!(reloads(&client, &root, "success").await, 1.0);

    std::fs::write(&file, BROKEN).unwrap();
    hangup(proxy.id());
    eventually("the failed reload is counted", async || {
        reloads(&client, &root, "failure").await == 1.0
    })
    .await;
    assert_eq!(
        model_ids(&client, &root).await,
        Some(vec!["a".into(), "b".into(), "bee".into()]),
        "the broken file changed nothing"
    );
    assert!(proxy.try_wait().unwrap().is_none(), "still running");
    let _ = proxy.kill();
    let _ = proxy.wait();

    let checked = Command::new(env!("CARGO_BIN_EXE_mcp-proxy"))
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!checked.status.success());
    let said = String::from_utf8_lossy(&checked.stderr);
    assert!(said.contains("models[0].fallbacks"), "{said}");
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
