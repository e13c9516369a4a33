//! The exposition as a whole: the in-flight gauge, label hygiene, and promtool's verdict.

use std::process::Stdio;
use std::time::Duration;

use mcp_core::ErrorType;
use mcp_core::upstream::Outcome;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::helpers::*;

#[tokio::test]
async fn active_connections_return_to_zero_after_success_and_error() {
    let app = spawn_app().await;
    assert_eq!(app.chat(&chat_body(CHAT_MODEL)).await.status(), 200);
    assert_eq!(app.chat(&chat_body("unknown")).await.status(), 404);
    let m = app.scrape().await;
    assert_eq!(m.get("mcp_server_active_connections", &[]), 0.0);
}

#[tokio::test]
async fn a_client_that_disconnects_is_counted_and_leaves_no_connection_behind() {
    let mut options = Spawn::default();
    options.mock.profile.latency_ms = 3_000;
    let app = spawn(options).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let sent = impatient
        .post(app.url("/v1/chat/completions"))
        .json(&chat_body(CHAT_MODEL))
        .send()
        .await;
    assert!(sent.is_err(), "the client gave up first");
    let m = app
        .eventually(
            Duration::from_secs(6),
            "the in-flight gauge returns to 0",
            |m| m.get("mcp_server_active_connections", &[]) == 0.0,
        )
        .await;
    assert_eq!(
        m.get(
            "mcp_server_client_disconnects_total",
            &[
                ("endpoint", "/v1/chat/completions"),
                ("phase", "before_first_token")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "cancelled")]
        ),
        1.0
    );
}

#[tokio::test]
async fn every_label_value_comes_from_a_closed_set() {
    let app = spawn_app().await;
    app.chat(&chat_body(CHAT_MODEL)).await;
    app.chat(&chat_body("not-configured")).await;
    app.get("/random/path/1").await;
    app.get("/random/path/2").await;
    let m = app.scrape().await;
    let configured = [
        CHAT_MODEL,
        "gpt-4o",
        COMPLETION_MODEL,
        EMBEDDING_MODEL,
        "other",
    ];
    let models = m.label_values("mcp_server_upstream_requests_total", "model");
    assert_eq!(
        models,
        [CHAT_MODEL],
        "the one model that reached the upstream"
    );
    for family in [
        "mcp_server_token_usage_total",
        "mcp_server_request_tokens_count",
    ] {
        for model in m.label_values(family, "model") {
            assert!(configured.contains(&model.as_str()), "{family}: {model}");
        }
    }
    let endpoints = m.label_values("mcp_server_requests_total", "endpoint");
    assert!(endpoints.contains(&"unmatched".to_owned()), "{endpoints:?}");
    for endpoint in endpoints {
        assert!(
            endpoint.starts_with("/v1/") || endpoint == "unmatched",
            "{endpoint}"
        );
    }
    let closed: Vec<&str> = ErrorType::ALL.iter().map(|e| e.as_str()).collect();
    let error_types = m.label_values("mcp_server_errors_total", "error_type");
    assert_eq!(error_types.len(), closed.len(), "{error_types:?}");
    for e in &error_types {
        assert!(closed.contains(&e.as_str()), "{e}");
    }
    let outcomes: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    for o in m.label_values("mcp_server_upstream_requests_total", "outcome") {
        assert!(outcomes.contains(&o.as_str()), "{o}");
    }
    for family in [
        "mcp_server_upstream_requests_total",
        "mcp_server_upstream_up",
    ] {
        assert_eq!(m.label_values(family, "upstream"), ["primary"], "{family}");
    }
    assert!(!m.text.contains("/random/path"));
    assert!(!m.text.contains("not-configured"));
}

#[tokio::test]
async fn promtool_accepts_the_exposition_after_mixed_traffic() {
    let app = spawn_app().await;
    app.chat(&chat_body(CHAT_MODEL)).await;
    app.post_json(
        "/v1/embeddings",
        &json!({"model": EMBEDDING_MODEL, "input": "hello"}),
    )
    .await;
    app.chat(&chat_body("unknown-model")).await;
    app.post_raw("/v1/chat/completions", "application/json", b"{")
        .await;
    app.set_faults(json!({"error_rate": 1.0, "error_status": 500}))
        .await;
    app.chat(&chat_body(CHAT_MODEL)).await;
    let scrape = app.scrape().await;
    for family in [
        "mcp_server_requests_total",
        "mcp_server_request_duration_seconds_bucket",
        "mcp_server_errors_total",
        "mcp_server_token_usage_total",
        "mcp_server_upstream_requests_total",
        "mcp_server_build_info",
        "process_resident_memory_bytes",
    ] {
        assert!(scrape.names().contains(&family), "{family} missing");
    }

    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (`make deps` installs the prometheus package)");
    let mut stdin = promtool.stdin.take().unwrap();
    stdin.write_all(scrape.text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = promtool.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docs_metrics_md_lists_every_family_with_its_labels_and_nothing_else() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md");
    let docs = std::fs::read_to_string(path).unwrap();
    let mut documented = std::collections::BTreeMap::new();
    for row in docs.lines().filter(|l| l.starts_with("| `mcp_server_")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_owned();
        let labels: Vec<String> = cells[3]
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        documented.insert(name, labels);
    }
    let registered = crate::scrape::family_labels();
    for (name, labels) in &registered {
        assert_eq!(
            documented.get(name),
            Some(labels),
            "docs/metrics.md must list `{name}` with labels {labels:?}"
        );
    }
    for name in documented.keys() {
        assert!(
            registered.contains_key(name),
            "docs/metrics.md lists `{name}`, which the gateway does not export"
        );
    }
}
