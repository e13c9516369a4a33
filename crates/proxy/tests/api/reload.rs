//! Reloading the configuration while requests run: new routes, prices and models take effect
//! for the next request, a request that started before finishes on the rules it started
//! with, state that must outlive a reload (breakers) does, and settings that cannot work
//! change nothing.

use std::time::Duration;

use futures_util::StreamExt;
use mcp_core::{DeploymentSpec, ModelSpec, Pricing};
use mcp_proxy::configuration::{Secrets, Settings};
use serde_json::{Value, json};

use crate::helpers::*;

fn routed(models: Vec<ModelSpec>) -> Spawn {
    let mut options = Spawn::default();
    options.upstreams = vec!["primary", "secondary"];
    options.settings.models = models;
    options
}

fn on(upstream: &str) -> DeploymentSpec {
    DeploymentSpec {
        upstream: upstream.into(),
        model: None,
        weight: 1,
    }
}

fn model(id: &str, upstream: &str) -> ModelSpec {
    let mut spec = ModelSpec::new(id);
    spec.deployments = vec![on(upstream)];
    spec
}

/// The settings the app runs with: the spawn's, with the upstream list it filled in.
fn running_settings(app: &TestApp, models: Vec<ModelSpec>) -> Settings {
    let mut settings = Spawn::default().settings;
    settings.upstreams = ["primary", "secondary"]
        .iter()
        .zip(&app.mock_urls)
        .map(|(name, url)| serde_json::from_value(json!({"name": name, "base_url": url})).unwrap())
        .collect();
    settings.models = models;
    settings
}

#[tokio::test]
async fn a_reload_moves_a_model_and_reprices_it_while_a_running_stream_finishes() {
    let mut options = routed(vec![model("m", "primary")]);
    options.mock.profile.token_interval_ms = 100;
    let app = spawn(options).await;

    // A stream that runs through the reload.
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    let stream = app.chat(&body).await;
    assert_eq!(stream.headers()["x-mcp-upstream"], "primary");
    let mut chunks = stream.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    assert!(!first.is_empty());

    let price = Pricing {
        prompt_usd_per_million: 1_000_000.0,
        completion_usd_per_million: 0.0,
        cache_read_usd_per_million: None,
        cache_write_usd_per_million: None,
    };
    let mut moved = model("m", "secondary").with_pricing(price);
    moved.aliases = vec!["m-alias".into()];
    let settings = running_settings(&app, vec![moved, model("n", "primary")]);
    app.gateway
        .reload_with(settings, &Secrets::default())
        .expect("the new settings are good");

    let mut rest = Vec::new();
    while let Some(chunk) = chunks.next().await {
        rest.extend_from_slice(&chunk.expect("the stream is not cut by the reload"));
    }
    assert!(String::from_utf8_lossy(&rest).contains("[DONE]"));

    let response = app.chat(&chat_body("m-alias")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-mcp-upstream"], "secondary");
    let usage: Value = response.json().await.unwrap();
    let prompt = usage["usage"]["prompt_tokens"].as_f64().unwrap();
    assert_eq!(app.chat(&chat_body("n")).await.status(), 200);
    let models: Value = app.get("/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m", "m-alias", "n"]);

    let m = app.scrape().await;
    // The new price: a dollar per prompt token, on the new upstream only.
    let cost = m.get(
        "mcp_server_cost_usd_total",
        &[("model", "m"), ("upstream", "secondary")],
    );
    assert!(
        (cost - prompt).abs() < 1e-6,
        "{cost} for {prompt} prompt tokens"
    );
    assert_eq!(
        m.get("mcp_server_config_reloads_total", &[("result", "success")]),
        1.0
    );
    assert_eq!(
        m.get("mcp_server_active_connections", &[]),
        0.0,
        "the stream that ran through the reload was settled"
    );
}

#[tokio::test]
async fn settings_that_cannot_work_leave_the_old_ones_in_force() {
    let app = spawn(routed(vec![model("m", "primary")])).await;
    let before = app.scrape().await.get(
        "mcp_server_config_last_reload_success_timestamp_seconds",
        &[],
    );
    assert!(before > 1.7e9, "set at start-up: {before}");
    let mut cycle = vec![model("a", "primary"), model("b", "secondary")];
    cycle[0].fallbacks = vec!["b".into()];
    cycle[1].fallbacks = vec!["a".into()];
    let err = app
        .gateway
        .reload_with(running_settings(&app, cycle), &Secrets::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("a cycle of fallbacks"), "{err}");
    assert_eq!(app.chat(&chat_body("m")).await.status(), 200);
    assert_eq!(app.chat(&chat_body("a")).await.status(), 404);
    let m = app.scrape().await;
    assert_eq!(
        m.get("mcp_server_config_reloads_total", &[("result", "failure")]),
        1.0
    );
    assert_eq!(
        m.get("mcp_server_config_reloads_total", &[("result", "success")]),
        0.0
    );
    assert_eq!(
        m.get(
            "mcp_server_config_last_reload_success_timestamp_seconds",
            &[]
        ),
        before
    );
}

#[tokio::test]
async fn an_open_breaker_stays_open_across_a_reload() {
    let mut options = routed(vec![model("m", "primary")]);
    options.settings.routing.breaker.consecutive_failures = 1;
    options.settings.routing.breaker.cooldown_secs = 60;
    let app = spawn(options).await;
    app.set_faults_of(0, json!({"fail_next": 1, "error_status": 500}))
        .await;
    assert_eq!(app.chat(&chat_body("m")).await.status(), 502);
    assert_eq!(app.chat(&chat_body("m")).await.status(), 503, "open");

    let mut settings = running_settings(&app, vec![model("m", "primary"), model("x", "secondary")]);
    settings.routing.breaker.consecutive_failures = 1;
    settings.routing.breaker.cooldown_secs = 60;
    app.gateway
        .reload_with(settings, &Secrets::default())
        .unwrap();
    let response = app.chat(&chat_body("m")).await;
    assert_eq!(response.status(), 503, "still open after the reload");
    let m = app.scrape().await;
    assert_eq!(
        m.get(
            "mcp_server_circuit_breaker_state",
            &[("upstream", "primary"), ("model", "m"), ("state", "open")]
        ),
        1.0
    );
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(app.chat(&chat_body("m")).await.status(), 200);
}
