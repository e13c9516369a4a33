//! What slow, oversized and curious clients get: headers past the configured limit, a body
//! that does not arrive, and `/metrics` on an admin listener behind a token.

use std::time::{Duration, Instant};

use mcp_proxy::configuration::Secrets;
use secrecy::SecretString;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

#[tokio::test]
async fn headers_past_the_limit_get_a_431_in_the_apis_shape() {
    let app = spawn_app().await;
    let big = "a".repeat(40 * 1024);
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .header("x-padding", &big)
        .json(&chat_body(CHAT_MODEL))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    assert!(response.headers().contains_key("x-mcp-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large", "{body}");
    let anthropic = app
        .client
        .post(app.url("/v1/messages"))
        .header("x-padding", &big)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(anthropic.status(), 431);
    let body: Value = anthropic.json().await.unwrap();
    assert_eq!(body["type"], "error", "Anthropic's shape: {body}");
    assert_eq!(app.mock_stats().await["requests_total"], 0);
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[("error_type", "headers_too_large")]
        ),
        2.0
    );
    assert_eq!(
        m.get("mcp_server_requests_total", &[("status", "431")]),
        2.0
    );
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_a_408() {
    let mut options = Spawn::default();
    options.settings.server.body_timeout_secs = 1;
    let app = spawn(options).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    socket
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 200\r\n\r\n{\"model\":",
        )
        .await
        .unwrap();
    let sent = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(sent.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn metrics_move_to_the_admin_listener_behind_a_token() {
    const TOKEN: &str = "scrape-token-3b9f1c";
    let mut options = Spawn::default();
    options.settings.server.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    options.settings.server.metrics_token_env = Some("MCP_TEST_METRICS_TOKEN".into());
    let mut secrets = Secrets::default();
    secrets.metrics_token = Some(SecretString::from(TOKEN));
    options.secrets = secrets;
    let app = spawn(options).await;
    let admin = app.admin.clone().expect("an admin listener");
    assert_eq!(app.chat(&chat_body(CHAT_MODEL)).await.status(), 200);

    assert_eq!(
        app.get("/metrics").await.status(),
        404,
        "not on the main listener"
    );
    let scrape = |token: Option<&'static str>| {
        let mut request = app.client.get(format!("{admin}/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(scrape(None).await.unwrap().status(), 401);
    assert_eq!(scrape(Some("wrong")).await.unwrap().status(), 401);
    let ok = scrape(Some(TOKEN)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let text = ok.text().await.unwrap();
    assert!(
        text.contains("mcp_server_requests_total{endpoint=\"/v1/chat/completions\""),
        "{text}"
    );
    assert!(!text.contains(TOKEN));
    for probe in ["/health", "/ready"] {
        let response = app
            .client
            .get(format!("{admin}{probe}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{probe}");
        // Probes stay open on the main listener too.
        assert_eq!(app.get(probe).await.status(), 200, "{probe}");
    }
}
