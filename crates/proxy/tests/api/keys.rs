//! Client keys, limits and budgets through the gateway: who may use it, for which models,
//! how fast and for how much, with OpenAI's status, body and headers for every refusal, and
//! the per-key series. The policy clock is the test's: a minute passes when it is advanced.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use mcp_core::limits::keys::digest;
use mcp_proxy::configuration::{KeyBudgetSettings, KeyEntry, LimitSettings, Secrets, Settings};
use serde_json::{Value, json};

use crate::helpers::*;

const TEAM_A: &str = "sk-team-a-7f3c9e21d4b8a6f0";
const TEAM_B: &str = "sk-team-b-0c1d2e3f4a5b6c7d";

fn key(name: &str, secret: &str) -> KeyEntry {
    KeyEntry {
        name: name.into(),
        sha256: Some(hex(digest(secret))),
        key_env: None,
        models: None,
        limits: LimitSettings::default(),
        budget: None,
    }
}

fn hex(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn with_keys(keys: Vec<KeyEntry>) -> Spawn {
    let mut options = Spawn::default();
    options.settings.keys = keys;
    options
}

async fn chat_as(app: &TestApp, secret: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = app.client.post(app.url("/v1/chat/completions")).json(body);
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    request.send().await.expect("the gateway answers")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn with_keys_configured_only_a_known_key_gets_through() {
    let app = spawn(with_keys(vec![key("team-a", TEAM_A)])).await;
    let body = chat_body(CHAT_MODEL);

    let missing = chat_as(&app, None, &body).await;
    assert_eq!(missing.status(), 401);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key", "{error}");
    assert_eq!(error["error"]["type"], "invalid_request_error");

    let wrong = chat_as(&app, Some("sk-team-a-7f3c9e21d4b8a6f1"), &body).await;
    assert_eq!(wrong.status(), 401);
    let text = wrong.text().await.unwrap();
    assert!(
        !text.contains("sk-team-a"),
        "the key is never echoed: {text}"
    );

    assert_eq!(chat_as(&app, Some(TEAM_A), &body).await.status(), 200);
    // Anthropic-style clients send x-api-key.
    let anthropic_style = app
        .client
        .post(app.url("/v1/chat/completions"))
        .header("x-api-key", TEAM_A)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anthropic_style.status(), 200);

    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[("error_type", "invalid_api_key")]
        ),
        2.0
    );
    assert_eq!(
        m.get("mcp_server_requests_total", &[("status", "401")]),
        2.0
    );
    assert_eq!(
        m.get(
            "mcp_server_key_requests_total",
            &[("key", "team-a"), ("class", "2xx")]
        ),
        2.0
    );
    assert!(m.get("mcp_server_key_tokens_total", &[("key", "team-a")]) > 0.0);
    assert!(!m.text.contains(TEAM_A) && !m.text.contains(&hex(digest(TEAM_A))));
    // The upstream never sees the client's key.
    assert_eq!(app.mock_stats().await["requests_total"], 2);
}

#[tokio::test]
async fn a_model_the_key_may_not_use_does_not_exist_for_it() {
    let mut limited = key("team-a", TEAM_A);
    limited.models = Some(vec!["gpt-4o".into()]);
    let app = spawn(with_keys(vec![limited, key("team-b", TEAM_B)])).await;
    let refused = chat_as(&app, Some(TEAM_A), &chat_body(CHAT_MODEL)).await;
    assert_eq!(refused.status(), 404);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "model_not_found", "{error}");
    assert_eq!(error["error"]["type"], "not_found_error");
    assert_eq!(
        chat_as(&app, Some(TEAM_A), &chat_body("gpt-4o"))
            .await
            .status(),
        200
    );
    assert_eq!(
        chat_as(&app, Some(TEAM_B), &chat_body(CHAT_MODEL))
            .await
            .status(),
        200
    );
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[("error_type", "model_not_allowed")]
        ),
        1.0
    );
}

#[tokio::test]
async fn exactly_the_requests_per_minute_pass_with_openais_headers() {
    let mut limited = key("team-a", TEAM_A);
    limited.limits.requests_per_minute = Some(5);
    let app = spawn(with_keys(vec![limited, key("team-b", TEAM_B)])).await;
    let body = chat_body(CHAT_MODEL);
    let mut statuses = Vec::new();
    let mut last_ok = None;
    for _ in 0..8 {
        let response = chat_as(&app, Some(TEAM_A), &body).await;
        statuses.push(response.status().as_u16());
        if response.status() == 200 {
            last_ok = Some(response);
        } else {
            assert_eq!(header(&response, "retry-after"), Some("12"));
            assert_eq!(header(&response, "x-ratelimit-limit-requests"), Some("5"));
            assert_eq!(
                header(&response, "x-ratelimit-remaining-requests"),
                Some("0")
            );
            assert_eq!(
                header(&response, "x-ratelimit-reset-requests"),
                Some("1m0s")
            );
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");
            assert_eq!(error["error"]["type"], "requests");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    // The answer describes the client's own limit, not the upstream's account.
    let ok = last_ok.unwrap();
    assert_eq!(header(&ok, "x-ratelimit-limit-requests"), Some("5"));
    assert_eq!(header(&ok, "x-ratelimit-remaining-requests"), Some("0"));
    // Another key is not held back, and a minute later this one passes again.
    assert_eq!(chat_as(&app, Some(TEAM_B), &body).await.status(), 200);
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(chat_as(&app, Some(TEAM_A), &body).await.status(), 200);
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_rate_limited_total",
            &[("limit", "requests"), ("key", "team-a")]
        ),
        3.0
    );
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[("error_type", "rate_limit_exceeded")]
        ),
        3.0
    );
    assert_eq!(
        m.get("mcp_server_requests_total", &[("status", "429")]),
        3.0,
        "refusals count as requests"
    );
    assert_eq!(app.mock_stats().await["requests_total"], 7);
}

#[tokio::test]
async fn a_large_reservation_is_freed_by_small_usage_and_by_a_disconnect() {
    let mut limited = key("team-a", TEAM_A);
    limited.limits.tokens_per_minute = Some(1_000);
    let mut options = with_keys(vec![limited]);
    // The fixtures' answers use 31 tokens whatever `max_tokens` says.
    options.mock.fixed = true;
    options.mock.profile.token_interval_ms = 50;
    let app = spawn(options).await;
    let mut body = chat_body(CHAT_MODEL);
    body["max_tokens"] = json!(900);

    // 900 reserved, a few dozen used: the rest comes back at once.
    for _ in 0..3 {
        let response = chat_as(&app, Some(TEAM_A), &body).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["usage"]["total_tokens"].as_u64().unwrap() < 100,
            "{answer}"
        );
    }

    // A stream that its client leaves: its reservation is settled too.
    body["stream"] = json!(true);
    let stream = chat_as(&app, Some(TEAM_A), &body).await;
    assert_eq!(stream.status(), 200);
    let mut chunks = stream.bytes_stream();
    chunks.next().await.unwrap().unwrap();
    drop(chunks);
    body["stream"] = json!(false);
    wait_until(
        Duration::from_secs(5),
        "the disconnect is settled",
        || async { app.scrape().await.get("mcp_server_active_connections", &[]) == 0.0 },
    )
    .await;
    assert_eq!(chat_as(&app, Some(TEAM_A), &body).await.status(), 200);

    // Nothing is given back while a reservation is held: two at once do not both fit.
    body["max_tokens"] = json!(600);
    let mut slow = body.clone();
    slow["stream"] = json!(true);
    let held = chat_as(&app, Some(TEAM_A), &slow).await;
    assert_eq!(held.status(), 200);
    let refused = chat_as(&app, Some(TEAM_A), &body).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-limit-tokens"), Some("1000"));
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["type"], "tokens", "{error}");
    drop(held);
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_rate_limited_total",
            &[("limit", "tokens"), ("key", "team-a")]
        ),
        1.0
    );
}

#[tokio::test]
async fn concurrent_requests_beyond_the_keys_limit_are_refused() {
    let mut limited = key("team-a", TEAM_A);
    limited.limits.concurrent_requests = Some(2);
    let mut options = with_keys(vec![limited]);
    options.mock.profile.latency_ms = 300;
    let app = spawn(options).await;
    let body = chat_body(CHAT_MODEL);
    let answers = join_all((0..5).map(|_| chat_as(&app, Some(TEAM_A), &body))).await;
    let ok = answers.iter().filter(|r| r.status() == 200).count();
    assert_eq!(
        ok,
        2,
        "{:?}",
        answers.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    assert_eq!(app.mock_stats().await["max_in_flight"], 2);
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_rate_limited_total",
            &[("limit", "concurrency"), ("key", "team-a")]
        ),
        3.0
    );
    // The slots came back.
    assert_eq!(chat_as(&app, Some(TEAM_A), &body).await.status(), 200);
}

#[tokio::test]
async fn spend_is_usage_times_price_and_a_spent_budget_stops_the_next_request_until_tomorrow() {
    let mut budgeted = key("team-a", TEAM_A);
    // CHAT_PRICING: $0.15 and $0.60 per million; a few requests spend a few ten-thousandths.
    budgeted.budget = Some(KeyBudgetSettings {
        usd: 0.0001,
        period: mcp_core::limits::BudgetPeriod::Day,
    });
    let app = spawn(with_keys(vec![budgeted])).await;
    let noon = httpdate::parse_http_date("Mon, 30 Nov 2026 12:00:00 GMT").unwrap();
    app.clock.set_wall(noon);
    let mut body = chat_body(CHAT_MODEL);
    body["max_tokens"] = json!(200);
    let mut spent = 0.0;
    let mut admitted = 0;
    loop {
        let response = chat_as(&app, Some(TEAM_A), &body).await;
        if response.status() == 429 {
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "insufficient_quota", "{error}");
            assert_eq!(error["error"]["type"], "insufficient_quota");
            break;
        }
        assert_eq!(response.status(), 200);
        let usage: Value = response.json().await.unwrap();
        let (p, c) = (
            usage["usage"]["prompt_tokens"].as_f64().unwrap(),
            usage["usage"]["completion_tokens"].as_f64().unwrap(),
        );
        spent += (p * 0.15 + c * 0.6) / 1e6;
        admitted += 1;
        assert!(admitted < 100, "the budget never stopped a request");
    }
    assert!(spent >= 0.0001, "stopped only once spent: {spent}");
    let m = app.scrape().await;
    let cost = m.get("mcp_server_key_cost_usd_total", &[("key", "team-a")]);
    assert!((cost - spent).abs() < 1e-12, "{cost} against {spent}");
    assert_eq!(
        m.get("mcp_server_key_budget_usd", &[("key", "team-a")]),
        0.0001
    );
    assert_eq!(
        m.get("mcp_server_key_budget_remaining_usd", &[("key", "team-a")]),
        0.0
    );
    assert_eq!(
        m.get(
            "mcp_server_rate_limited_total",
            &[("limit", "budget"), ("key", "team-a")]
        ),
        1.0
    );
    // Midnight UTC: a new day, a new budget.
    app.clock
        .set_wall(httpdate::parse_http_date("Tue, 01 Dec 2026 00:00:00 GMT").unwrap());
    assert_eq!(chat_as(&app, Some(TEAM_A), &body).await.status(), 200);
}

#[tokio::test]
async fn the_gateways_own_limit_holds_for_the_open_gateway() {
    let mut options = Spawn::default();
    options.settings.limits.global.requests_per_minute = Some(3);
    let app = spawn(options).await;
    let body = chat_body(CHAT_MODEL);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(chat_as(&app, None, &body).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_rate_limited_total",
            &[("limit", "requests"), ("key", "_global")]
        ),
        2.0
    );
}

#[tokio::test]
async fn without_the_key_label_every_key_counts_as_all() {
    let mut options = with_keys(vec![key("team-a", TEAM_A), key("team-b", TEAM_B)]);
    options.settings.metrics.key_label = false;
    let app = spawn(options).await;
    chat_as(&app, Some(TEAM_A), &chat_body(CHAT_MODEL)).await;
    chat_as(&app, Some(TEAM_B), &chat_body(CHAT_MODEL)).await;
    let m = app.scrape().await;
    assert_eq!(
        m.label_values("mcp_server_key_requests_total", "key"),
        ["_all"]
    );
    assert_eq!(
        m.label_values("mcp_server_rate_limited_total", "key"),
        ["_all", "_global"]
    );
    assert_eq!(
        m.get(
            "mcp_server_key_requests_total",
            &[("key", "_all"), ("class", "2xx")]
        ),
        2.0
    );
    assert!(!m.text.contains("team-a"));
}

#[tokio::test]
async fn a_reload_adds_and_removes_keys_without_a_restart() {
    let app = spawn(with_keys(vec![key("team-a", TEAM_A)])).await;
    let body = chat_body(CHAT_MODEL);
    assert_eq!(chat_as(&app, Some(TEAM_B), &body).await.status(), 401);
    let mut settings: Settings = Spawn::default().settings;
    settings.upstream.base_url = Some(app.mock_url.parse().unwrap());
    settings.keys = vec![KeyEntry {
        key_env: Some("MCP_TEST_TEAM_B_KEY".into()),
        sha256: None,
        ..key("team-b", TEAM_B)
    }];
    app.gateway
        .reload_with(
            settings,
            &Secrets::default().with_client_key("MCP_TEST_TEAM_B_KEY", TEAM_B),
        )
        .unwrap();
    assert_eq!(chat_as(&app, Some(TEAM_B), &body).await.status(), 200);
    assert_eq!(chat_as(&app, Some(TEAM_A), &body).await.status(), 401);
}
