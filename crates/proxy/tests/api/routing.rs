//! Several upstreams: the weighted split, retries, `Retry-After`, fallbacks, circuit breakers,
//! the retry budget, the concurrency limit, and what each decision leaves in the metrics.
//! Mocks fail on command (`fail_next`, rates), and policy time is the test's manual clock:
//! cool-downs pass when it is advanced and waits between attempts advance it, so nothing here
//! sleeps.

use std::time::Duration;

use futures_util::future::join_all;
use mcp_core::ModelSpec;
use serde_json::{Value, json};

use crate::helpers::*;

const SECS: Duration = Duration::from_secs(1);

/// `primary` and `secondary`, with `models`, retries on (3 attempts, 2 per model) and the
/// breaker off unless a test turns it on. (The single upstream of the quick-start form is
/// `primary` too, since its base URL is set.)
fn two_upstreams(models: Vec<ModelSpec>) -> Spawn {
    let mut options = Spawn::default();
    options.upstreams = vec!["primary", "secondary"];
    options.settings.models = models;
    options.settings.routing.max_attempts = 3;
    options.settings.routing.max_attempts_per_model = 2;
    // Retries are not rationed unless a test is about the budget.
    options.settings.routing.retry_budget.ratio = 10.0;
    options
}

fn one_upstream_with_retries() -> Spawn {
    let mut options = Spawn::default();
    options.settings.routing.max_attempts = 3;
    options.settings.routing.retry_budget.ratio = 10.0;
    options
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn requests_seen(app: &TestApp, mock: usize) -> u64 {
    app.mock_stats_of(mock).await["requests_total"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_model_is_split_over_its_deployments_by_weight() {
    let app = spawn(two_upstreams(vec![model(
        "m",
        vec![deployment("primary", 3), deployment("secondary", 1)],
        &[],
    )]))
    .await;
    let mut served = [0u32; 2];
    for _ in 0..400 {
        let response = app.chat(&chat_body("m")).await;
        assert_eq!(response.status(), 200);
        match header(&response, "x-mcp-upstream") {
            Some("primary") => served[0] += 1,
            Some("secondary") => served[1] += 1,
            other => panic!("served by {other:?}"),
        }
    }
    // 300 expected; the binomial's standard deviation is under 9, so ±40 is over 4.5 of them.
    assert!((260..=340).contains(&served[0]), "{served:?}");
    assert_eq!(
        requests_seen(&app, 0).await,
        u64::from(served[0]),
        "the header names the upstream that answered"
    );
    assert_eq!(requests_seen(&app, 1).await, u64::from(served[1]));
    let m = app.scrape().await;
    assert_eq!(
        m.get("mcp_server_token_usage_total", &[("upstream", "secondary")]) > 0.0,
        served[1] > 0
    );
}

#[tokio::test]
async fn a_failed_attempt_is_retried_and_the_client_sees_only_the_success() {
    let app = spawn(one_upstream_with_retries()).await;
    app.set_faults(json!({"fail_next": 1, "error_status": 503}))
        .await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-mcp-attempts"), Some("2"));
    assert_eq!(header(&response, "x-mcp-upstream"), Some("primary"));
    assert_eq!(header(&response, "x-mcp-model"), Some(CHAT_MODEL));
    assert_eq!(requests_seen(&app, 0).await, 2);
    // One upstream and nothing else to try: the retry waited its backoff on the clock.
    assert!(app.clock.slept() <= Duration::from_secs(2));
    let m = app.scrape().await;
    let attempts = |outcome| {
        m.get(
            "mcp_server_upstream_requests_total",
            &[("upstream", "primary"), ("outcome", outcome)],
        )
    };
    assert_eq!((attempts("server_error"), attempts("success")), (1.0, 1.0));
    assert_eq!(
        m.get(
            "mcp_server_upstream_retries_total",
            &[("upstream", "primary"), ("reason", "server_error")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_request_attempts_sum",
            &[("endpoint", "/v1/chat/completions")]
        ),
        2.0
    );
    assert_eq!(
        m.get(
            "mcp_server_request_attempts_bucket",
            &[("endpoint", "/v1/chat/completions"), ("le", "1")]
        ),
        0.0
    );
    assert_eq!(
        m.get("mcp_server_errors_total", &[]),
        0.0,
        "a retried failure is not the client's error"
    );
    assert_eq!(
        m.get("mcp_server_requests_total", &[("status", "200")]),
        1.0
    );
}

#[tokio::test]
async fn retry_after_is_waited_for_up_to_the_cap() {
    let app = spawn(one_upstream_with_retries()).await;
    app.set_faults(json!({"fail_next": 1, "error_status": 429, "retry_after_secs": 3}))
        .await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.clock.slept(),
        3 * SECS,
        "the wait was the upstream's Retry-After"
    );
    assert_eq!(requests_seen(&app, 0).await, 2);

    // As an HTTP date the advice is rounded to whole seconds: between 2 and 3 seconds.
    app.set_faults(json!({"fail_next": 1, "retry_after_http_date": true}))
        .await;
    let before = app.clock.slept();
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 200);
    let waited = app.clock.slept() - before;
    assert!((2 * SECS..=3 * SECS).contains(&waited), "{waited:?}");

    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_upstream_retries_total",
            &[("upstream", "primary"), ("reason", "rate_limited")]
        ),
        2.0
    );
}

#[tokio::test]
async fn a_retry_after_past_the_cap_is_not_waited_for_and_a_429_stays_a_429() {
    let app = spawn(one_upstream_with_retries()).await;
    app.set_faults(json!({"fail_next": 1, "error_status": 429, "retry_after_secs": 30}))
        .await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    // Nothing else serves the model: the client gets the upstream's own 429, unchanged.
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), Some("30"));
    assert_eq!(header(&response, "x-mcp-attempts"), Some("1"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "rate_limit_exceeded",
        "the mock's own body: {body}"
    );
    assert_eq!(app.clock.slept(), Duration::ZERO);
    assert_eq!(requests_seen(&app, 0).await, 1);
    // The deployment sits out the 30 seconds: the next request is not sent at all...
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 503);
    let retry_after: u64 = header(&response, "retry-after").unwrap().parse().unwrap();
    assert!((29..=31).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "circuit_open", "{body}");
    assert_eq!(requests_seen(&app, 0).await, 1);
    // ...until they have passed. A 429 never opens the breaker.
    app.clock.advance(30 * SECS);
    assert_eq!(app.chat(&chat_body(CHAT_MODEL)).await.status(), 200);
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_circuit_breaker_transitions_total",
            &[("upstream", "primary")]
        ),
        0.0
    );
    assert_eq!(
        m.get("mcp_server_errors_total", &[("error_type", "circuit_open")]),
        1.0
    );
}

#[tokio::test]
async fn a_429_moves_the_request_to_another_deployment_at_once() {
    let app = spawn(two_upstreams(vec![model(
        "m",
        vec![deployment("primary", 1), deployment("secondary", 1)],
        &[],
    )]))
    .await;
    for mock in 0..2 {
        app.set_faults_of(
            mock,
            json!({"fail_next": 1, "error_status": 429, "retry_after_secs": 5}),
        )
        .await;
    }
    // Whichever deployment is picked first answers 429; the other one is tried without
    // waiting and answers 429 too, so the client gets the last 429.
    let response = app.chat(&chat_body("m")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "x-mcp-attempts"), Some("2"));
    assert_eq!(app.clock.slept(), Duration::ZERO);
    // Both deployments sit out their Retry-After; after it, both serve.
    app.clock.advance(5 * SECS);
    let response = app.chat(&chat_body("m")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-mcp-attempts"), Some("1"));
}

#[tokio::test]
async fn when_a_models_attempts_run_out_its_fallback_serves() {
    let app = spawn(two_upstreams(vec![
        model("a", vec![deployment("primary", 1)], &["b"]),
        model("b", vec![deployment("secondary", 1)], &[]),
    ]))
    .await;
    app.set_faults_of(0, json!({"error_rate": 1.0, "error_status": 502}))
        .await;
    let response = app.chat(&chat_body("a")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-mcp-model"), Some("b"));
    assert_eq!(header(&response, "x-mcp-upstream"), Some("secondary"));
    assert_eq!(header(&response, "x-mcp-attempts"), Some("3"));
    assert_eq!(requests_seen(&app, 0).await, 2, "two attempts on the model");
    let m = app.scrape().await;
    assert_eq!(
        m.get("mcp_server_fallbacks_total", &[("from", "a"), ("to", "b")]),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_retries_total",
            &[("upstream", "primary"), ("reason", "server_error")]
        ),
        2.0
    );
    // The tokens and their cost are the fallback's, on the upstream that served them.
    assert!(
        m.get(
            "mcp_server_token_usage_total",
            &[("model", "b"), ("upstream", "secondary")]
        ) > 0.0
    );
    assert_eq!(
        m.get("mcp_server_token_usage_total", &[("model", "a")]),
        0.0
    );
    assert!(
        m.get(
            "mcp_server_cost_usd_total",
            &[("model", "b"), ("upstream", "secondary")]
        ) > 0.0
    );
}

#[tokio::test]
async fn an_upstream_that_failed_one_model_is_the_last_choice_for_its_fallback() {
    let app = spawn(two_upstreams(vec![
        model("a", vec![deployment("primary", 1)], &["b"]),
        model(
            "b",
            vec![deployment("primary", 100), deployment("secondary", 1)],
            &[],
        ),
    ]))
    .await;
    app.set_faults_of(0, json!({"error_rate": 1.0, "error_status": 503}))
        .await;
    for _ in 0..20 {
        let response = app.chat(&chat_body("a")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-mcp-upstream"), Some("secondary"));
        assert_eq!(header(&response, "x-mcp-attempts"), Some("3"));
    }
}

#[tokio::test]
async fn when_everything_fails_the_client_gets_the_last_upstream_error() {
    let app = spawn(two_upstreams(vec![
        model("a", vec![deployment("primary", 1)], &["b"]),
        model("b", vec![deployment("secondary", 1)], &[]),
    ]))
    .await;
    app.set_faults_of(0, json!({"error_rate": 1.0, "error_status": 503}))
        .await;
    app.set_faults_of(1, json!({"error_rate": 1.0, "error_status": 500}))
        .await;
    let response = app.chat(&chat_body("a")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(header(&response, "x-mcp-attempts"), Some("3"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_server_error", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("500"),
        "the last attempt's status: {body}"
    );
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[("error_type", "upstream_server_error")]
        ),
        1.0
    );
    assert_eq!(
        m.get("mcp_server_request_attempts_count", &[]),
        1.0,
        "one request, however many attempts"
    );
}

#[tokio::test]
async fn the_clients_own_error_is_not_retried() {
    let app = spawn(one_upstream_with_retries()).await;
    app.set_faults(json!({"fail_next": 1, "error_status": 400}))
        .await;
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 400);
    assert_eq!(requests_seen(&app, 0).await, 1);
}

#[tokio::test]
async fn the_breaker_opens_half_opens_after_the_cool_down_and_closes() {
    let mut options = two_upstreams(vec![
        model("a", vec![deployment("primary", 1)], &["b"]),
        model("b", vec![deployment("secondary", 1)], &[]),
    ]);
    options.settings.routing.max_attempts_per_model = 1;
    options.settings.routing.breaker.consecutive_failures = 2;
    options.settings.routing.breaker.cooldown_secs = 10;
    let app = spawn(options).await;
    let state = |m: &crate::scrape::Scrape, state| {
        m.get(
            "mcp_server_circuit_breaker_state",
            &[("upstream", "primary"), ("model", "a"), ("state", state)],
        )
    };
    let transitions = |m: &crate::scrape::Scrape, to| {
        m.get(
            "mcp_server_circuit_breaker_transitions_total",
            &[("upstream", "primary"), ("model", "a"), ("to", to)],
        )
    };
    let m = app.scrape().await;
    assert_eq!((state(&m, "closed"), state(&m, "open")), (1.0, 0.0));

    app.set_faults_of(0, json!({"error_rate": 1.0, "error_status": 500}))
        .await;
    for _ in 0..2 {
        let response = app.chat(&chat_body("a")).await;
        assert_eq!(header(&response, "x-mcp-model"), Some("b"));
    }
    let m = app.scrape().await;
    assert_eq!(
        (
            state(&m, "closed"),
            state(&m, "open"),
            state(&m, "half_open")
        ),
        (0.0, 1.0, 0.0)
    );
    assert_eq!(transitions(&m, "open"), 1.0);
    // Open: requests for `a` go straight to the fallback; the primary sees none of them.
    for _ in 0..3 {
        let response = app.chat(&chat_body("a")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-mcp-attempts"), Some("1"));
    }
    assert_eq!(requests_seen(&app, 0).await, 2);
    let m = app.scrape().await;
    assert_eq!(
        m.get("mcp_server_fallbacks_total", &[("from", "a"), ("to", "b")]),
        5.0,
        "every request moved to the fallback, tried on `a` or not"
    );
    assert_eq!(
        m.get("mcp_server_upstream_retries_total", &[]),
        2.0,
        "only the two that failed on `a` were retries"
    );

    // The primary heals; after the cool-down one probe goes to it, succeeds, and closes it.
    app.set_faults_of(0, json!({"error_rate": 0.0})).await;
    app.clock.advance(9 * SECS);
    app.chat(&chat_body("a")).await;
    assert_eq!(requests_seen(&app, 0).await, 2, "still cooling down");
    app.clock.advance(SECS);
    let response = app.chat(&chat_body("a")).await;
    assert_eq!(header(&response, "x-mcp-upstream"), Some("primary"));
    let m = app.scrape().await;
    assert_eq!(transitions(&m, "half_open"), 1.0);
    assert_eq!(transitions(&m, "closed"), 1.0);
    assert_eq!((state(&m, "closed"), state(&m, "open")), (1.0, 0.0));
}

#[tokio::test]
async fn a_failed_probe_reopens_the_breaker_for_twice_as_long() {
    let mut options = one_upstream_with_retries();
    options.settings.routing.max_attempts = 1;
    options.settings.routing.breaker.consecutive_failures = 1;
    options.settings.routing.breaker.cooldown_secs = 10;
    let app = spawn(options).await;
    app.set_faults(json!({"error_rate": 1.0, "error_status": 500}))
        .await;
    assert_eq!(app.chat(&chat_body(CHAT_MODEL)).await.status(), 502);
    app.clock.advance(10 * SECS);
    assert_eq!(
        app.chat(&chat_body(CHAT_MODEL)).await.status(),
        502,
        "the probe"
    );
    app.clock.advance(19 * SECS);
    let response = app.chat(&chat_body(CHAT_MODEL)).await;
    assert_eq!(response.status(), 503, "20 s after the failed probe");
    assert_eq!(header(&response, "retry-after"), Some("2"));
    assert_eq!(requests_seen(&app, 0).await, 2);
}

#[tokio::test]
async fn a_stream_is_never_retried_once_its_first_byte_went_out_but_is_before() {
    let app = spawn(one_upstream_with_retries()).await;
    let mut body = chat_body(CHAT_MODEL);
    body["stream"] = json!(true);
    // A 503 before the stream's head: retried.
    app.set_faults(json!({"fail_next": 1, "error_status": 503}))
        .await;
    let response = app.chat(&body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-mcp-attempts"), Some("2"));
    assert!(response.text().await.unwrap().contains("[DONE]"));
    // A stream cut after its head: the client's stream ends with the error event, and no
    // other attempt is made.
    app.set_faults(json!({"stream_cut_rate": 1.0})).await;
    let response = app.chat(&body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("stream_interrupted"), "{text}");
    assert_eq!(requests_seen(&app, 0).await, 3);
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_upstream_retries_total",
            &[("reason", "stream_interrupted")]
        ),
        0.0
    );
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "stream_interrupted")]
        ),
        1.0
    );
}

#[tokio::test]
async fn the_retry_budget_stops_a_retry_storm() {
    let mut options = one_upstream_with_retries();
    options.settings.routing.retry_budget.ratio = 0.0;
    // One retry per ten seconds, whatever the traffic.
    options.settings.routing.retry_budget.min_retries_per_sec = 0.1;
    options.settings.routing.retry_budget.window_secs = 10;
    let app = spawn(options).await;
    app.set_faults(json!({"error_rate": 1.0, "error_status": 503}))
        .await;
    for _ in 0..5 {
        assert_eq!(app.chat(&chat_body(CHAT_MODEL)).await.status(), 502);
    }
    // Without the budget: 5 x 3 attempts. With it: 5 first attempts and one retry.
    assert_eq!(requests_seen(&app, 0).await, 6);
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_retry_budget_exhausted_total",
            &[("upstream", "primary")]
        ),
        4.0
    );
    assert_eq!(m.get("mcp_server_upstream_retries_total", &[]), 1.0);
}

#[tokio::test]
async fn a_full_upstream_refuses_with_a_503_and_retry_after() {
    let mut options = Spawn::default();
    options.settings.upstream.max_in_flight = 1;
    options.settings.upstream.queue.size = 0;
    options.mock.profile.latency_ms = 300;
    let app = spawn(options).await;
    let body = chat_body(CHAT_MODEL);
    let answers = join_all((0..2).map(|_| app.chat(&body))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 503]);
    let refused = answers.into_iter().find(|r| r.status() == 503).unwrap();
    assert_eq!(header(&refused, "retry-after"), Some("1"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_saturated", "{body}");
    assert_eq!(app.mock_stats().await["max_in_flight"], 1);
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_upstream_queue_rejections_total",
            &[("upstream", "primary"), ("reason", "full")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_errors_total",
            &[("error_type", "upstream_saturated")]
        ),
        1.0
    );
    assert_eq!(
        m.get("mcp_server_upstream_in_flight", &[("upstream", "primary")]),
        0.0
    );
}

#[tokio::test]
async fn a_queued_request_waits_for_a_slot_and_one_that_waits_too_long_is_refused() {
    let mut options = Spawn::default();
    options.settings.upstream.max_in_flight = 1;
    options.settings.upstream.queue.size = 2;
    options.settings.upstream.queue.timeout_ms = 2_000;
    options.mock.profile.latency_ms = 200;
    let app = spawn(options).await;
    let body = chat_body(CHAT_MODEL);
    // Three at once: one runs, two wait their turn, all three are served one at a time.
    let answers = join_all((0..3).map(|_| app.chat(&body))).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    assert_eq!(app.mock_stats().await["max_in_flight"], 1);
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_upstream_queue_wait_seconds_count",
            &[("upstream", "primary")]
        ),
        3.0
    );
    assert!(
        m.get(
            "mcp_server_upstream_queue_wait_seconds_sum",
            &[("upstream", "primary")]
        ) >= 0.5
    );

    // A wait longer than the queue's timeout is refused.
    app.set_faults(json!({"latency_ms": 3_000})).await;
    let answers = join_all((0..2).map(|_| app.chat(&body))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 503]);
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_upstream_queue_rejections_total",
            &[("upstream", "primary"), ("reason", "timeout")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_deployment_gets_the_model_under_its_upstreams_name() {
    let mut renamed = deployment("secondary", 1);
    renamed.model = Some("mini-2024-07-18".into());
    let mut spec = model("mini", vec![renamed], &[]);
    spec.aliases = vec!["small".into()];
    let app = spawn(two_upstreams(vec![spec])).await;
    let response = app.chat(&chat_body("small")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-mcp-model"), Some("mini"));
    let body: Value = response.json().await.unwrap();
    // The mock answers with the model it was asked for.
    assert_eq!(body["model"], "mini-2024-07-18", "{body}");
    let m = app.scrape().await;
    assert!(m.get("mcp_server_token_usage_total", &[("model", "mini")]) > 0.0);
    let models: Value = app.get("/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mini", "small"]);
}

#[tokio::test]
async fn every_new_family_is_exported_with_its_configured_series() {
    let app = spawn(two_upstreams(vec![
        model("a", vec![deployment("primary", 1)], &["b"]),
        model("b", vec![deployment("secondary", 1)], &[]),
    ]))
    .await;
    let m = app.scrape().await;
    for upstream in ["primary", "secondary"] {
        assert_eq!(
            m.sum("mcp_server_upstream_in_flight", &[("upstream", upstream)]),
            Some(0.0)
        );
        assert_eq!(
            m.sum(
                "mcp_server_retry_budget_exhausted_total",
                &[("upstream", upstream)]
            ),
            Some(0.0)
        );
        let reasons = m.label_values("mcp_server_upstream_retries_total", "reason");
        assert_eq!(
            reasons,
            [
                "connect_error",
                "malformed",
                "overloaded",
                "rate_limited",
                "server_error",
                "stream_interrupted",
                "timeout"
            ]
        );
        assert_eq!(
            m.label_values("mcp_server_upstream_queue_rejections_total", "reason"),
            ["full", "timeout"]
        );
    }
    assert_eq!(
        m.label_values("mcp_server_circuit_breaker_state", "state"),
        ["closed", "half_open", "open"]
    );
    // Deployments and fallbacks come from the configuration, and only from it.
    assert_eq!(
        m.label_values("mcp_server_circuit_breaker_state", "model"),
        ["a", "b"]
    );
    assert_eq!(
        m.sum("mcp_server_fallbacks_total", &[("from", "a"), ("to", "b")]),
        Some(0.0)
    );
    assert_eq!(m.label_values("mcp_server_fallbacks_total", "from"), ["a"]);
    // The token details of each deployment exist at zero from the start, so that the
    // cache-hit and reasoning ratios have data before the first cached token.
    for (model, upstream) in [("a", "primary"), ("b", "secondary")] {
        assert_eq!(
            m.label_values("mcp_server_token_usage_details_total", "type"),
            ["cache_read", "cache_write", "reasoning"]
        );
        assert_eq!(
            m.sum(
                "mcp_server_token_usage_details_total",
                &[("model", model), ("upstream", upstream)]
            ),
            Some(0.0)
        );
    }
}
