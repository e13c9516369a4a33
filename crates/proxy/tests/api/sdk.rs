//! The official Python SDKs (`openai`, `anthropic`) against the gateway, with only their base
//! URL changed: `tests/sdk/clients.py`, run with the virtual environment that
//! `scripts/install-sdks.sh` (called by `scripts/install-deps.sh`, so by `make test`) sets up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_core::ModelSpec;
use tokio::process::Command;

use crate::helpers::*;

const OPENAI_MODEL: &str = "gpt-4o-mini";
const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";

/// The virtual environment's interpreter: `MCP_SDK_PYTHON`, or the repository's `.venv`.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("MCP_SDK_PYTHON") {
        return python.into();
    }
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh (`make test` does)",
        python.display()
    );
    python
}

/// A gateway with an OpenAI-kind and an Anthropic-kind upstream, each serving its model.
fn both_apis() -> Spawn {
    let mut options = Spawn::default();
    options.upstreams = vec!["openai", "anthropic"];
    options.anthropic = vec!["anthropic"];
    options.settings.models = vec![
        model(OPENAI_MODEL, vec![deployment("openai", 1)], &[]),
        ModelSpec {
            deployments: vec![deployment("anthropic", 1)],
            ..ModelSpec::new(ANTHROPIC_MODEL)
        },
    ];
    options
}

/// Runs `tests/sdk/<script>` against `app` with the SDKs' base URLs and models set (and
/// `env` besides, their own keys removed); returns its stdout once it has passed.
async fn run_script(app: &TestApp, script: &str, env: &[(&str, &str)]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(script);
    let run = Command::new(python())
        .arg(&script)
        .env("OPENAI_BASE_URL", app.url("/v1"))
        .env("ANTHROPIC_BASE_URL", &app.address)
        .env("OPENAI_MODEL", OPENAI_MODEL)
        .env("ANTHROPIC_MODEL", ANTHROPIC_MODEL)
        .envs(env.iter().copied())
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the SDK checks finish within two minutes")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK checks failed:\n{stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test]
async fn the_official_openai_and_anthropic_sdks_work_with_only_their_base_url_changed() {
    let app = spawn(both_apis()).await;
    let stdout = run_script(&app, "clients.py", &[]).await;
    assert!(stdout.contains("7 passed, 0 failed"), "{stdout}");
    // What the SDKs did is on the gateway's books, per endpoint and model.
    let m = app.scrape().await;
    for (endpoint, status) in [
        ("/v1/responses", "200"),
        ("/v1/responses/{id}", "200"),
        ("/v1/responses/{id}/input_items", "200"),
        ("/v1/messages", "200"),
        ("/v1/messages", "404"),
        ("/v1/messages/count_tokens", "200"),
    ] {
        let labels = [("endpoint", endpoint), ("status", status)];
        assert!(
            m.get("mcp_server_requests_total", &labels) >= 1.0,
            "{endpoint} {status}"
        );
    }
    for model in [OPENAI_MODEL, ANTHROPIC_MODEL] {
        let labels = [("model", model), ("type", "cache_read")];
        assert!(
            m.get("mcp_server_token_usage_details_total", &labels) > 0.0,
            "{model}"
        );
    }
    assert!(
        m.get(
            "mcp_server_token_usage_details_total",
            &[("model", OPENAI_MODEL), ("type", "reasoning")]
        ) > 0.0
    );
}

#[tokio::test]
async fn with_keys_configured_the_sdks_are_refused_without_one_and_served_with_one() {
    const KEY: &str = "sk-sdk-test-0f1e2d3c4b5a6978";
    const LIMITED: &str = "sk-sdk-test-limited-7a6b5c4d";
    let mut options = both_apis();
    let mut limited = client_key("limited", LIMITED);
    limited.limits.requests_per_minute = Some(2);
    options.settings.keys = vec![client_key("sdk", KEY), limited];
    let app = spawn(options).await;
    let stdout = run_script(
        &app,
        "keys.py",
        &[("CLIENT_KEY", KEY), ("LIMITED_KEY", LIMITED)],
    )
    .await;
    assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[("error_type", "invalid_api_key")]
        ),
        2.0
    );
    assert_eq!(
        m.get(
            "mcp_server_rate_limited_total",
            &[("limit", "requests"), ("key", "limited")]
        ),
        1.0
    );
}

/// A client key with no limits, stored as its SHA-256 digest.
fn client_key(name: &str, secret: &str) -> mcp_proxy::configuration::KeyEntry {
    let digest = mcp_core::limits::keys::digest(secret);
    mcp_proxy::configuration::KeyEntry {
        name: name.into(),
        sha256: Some(digest.iter().map(|b| format!("{b:02x}")).collect()),
        key_env: None,
        models: None,
        limits: Default::default(),
        budget: None,
    }
}
