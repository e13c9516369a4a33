//! Every request gets an id: the client's when it sends a usable `x-request-id`, a new one
//! otherwise. It comes back in `x-mcp-request-id` (refusals included) and goes upstream as
//! `x-request-id`; the upstream's own id still reaches the client in `x-request-id`.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_minted_id_is_answered_and_forwarded_beside_the_upstreams_own() {
    let app = spawn_app().await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 200);
    let ours = response.headers()["x-mcp-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let theirs = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ours.starts_with("req_") && ours.len() == 36, "{ours}");
    assert_ne!(ours, theirs, "the provider's id is its own");
    assert_eq!(app.mock_stats().await["last_request_id"], ours.as_str());
    let again = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_ne!(again.headers()["x-mcp-request-id"].to_str().unwrap(), ours);
}

#[tokio::test]
async fn a_usable_client_id_is_kept_and_an_unusable_one_replaced() {
    let app = spawn_app().await;
    let send = |id: &'static str| {
        app.client
            .post(app.url("/v1/chat/completions"))
            .header("x-request-id", id)
            .json(&chat_body(CHAT_MODEL))
            .send()
    };
    let kept = send("trace-7f3a.b:c_d").await.unwrap();
    assert_eq!(kept.headers()["x-mcp-request-id"], "trace-7f3a.b:c_d");
    assert_eq!(
        app.mock_stats().await["last_request_id"],
        "trace-7f3a.b:c_d"
    );
    let replaced = send("not a usable id; it has spaces").await.unwrap();
    let id = replaced.headers()["x-mcp-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("req_"), "{id}");
    assert_eq!(app.mock_stats().await["last_request_id"], id.as_str());
}

#[tokio::test]
async fn requests_refused_before_the_upstream_get_an_id_too() {
    let app = spawn_app().await;
    for response in [
        app.chat(&chat_body("no-such-model")).await,
        app.post_raw("/v1/chat/completions", "application/json", b"{")
            .await,
        app.get("/no/such/path").await,
    ] {
        assert!(response.status().is_client_error());
        let id = response.headers()["x-mcp-request-id"].to_str().unwrap();
        assert!(id.starts_with("req_"), "{id}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    assert_eq!(app.mock_stats().await["requests_total"], 0);
}
