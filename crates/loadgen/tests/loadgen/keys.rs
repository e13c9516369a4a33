//! Client keys: each configured key is presented in turn and the gateway counts each; the
//! wrong-key requests are refused with 401 and a key's spent limit with 429, both counted by
//! status and neither as an error; no key ever appears in the loadgen's output.

use std::sync::Arc;
use std::time::Duration;

use mcp_loadgen::keys::{ApiKey, WRONG_KEY};
use mcp_loadgen::mix::{RequestKind, Weights};
use mcp_loadgen::phases::PhaseTally;
use mcp_loadgen::shutdown::stop_pair;
use mcp_loadgen::tally::StatusClass;
use mcp_loadgen::traffic::{self, TrafficConfig};
use mcp_proxy::configuration::Secrets;
use serde_json::{Value, json};

use crate::cli::{loadgen, text};
use crate::helpers::{Gateway, closed_port, traffic};
use crate::recorder::Recorder;

/// The secrets, with a common tail that no output of the loadgen may contain.
const TEAM: &str = "sk-test-team-5c7e21";
const BATCH: &str = "sk-test-batch-5c7e21";
const SECRET_TAIL: &str = "5c7e21";
/// Requests `batch` may make per minute: a run of a second or two spends it at once.
const BATCH_PER_MINUTE: u64 = 3;

/// A gateway with the keys `team` (no limits) and `batch` (a few requests a minute).
fn keyed_gateway() -> Gateway {
    let keys = json!([
        {"name": "team", "key_env": "LOADGEN_TEST_TEAM_KEY"},
        {"name": "batch", "key_env": "LOADGEN_TEST_BATCH_KEY",
         "limits": {"requests_per_minute": BATCH_PER_MINUTE}}
    ]);
    let secrets = Secrets::default()
        .with_client_key("LOADGEN_TEST_TEAM_KEY", TEAM)
        .with_client_key("LOADGEN_TEST_BATCH_KEY", BATCH);
    Gateway::spawn_with_keys(keys, secrets)
}

fn both_keys() -> Vec<ApiKey> {
    vec![ApiKey::new(TEAM), ApiKey::new(BATCH)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_are_presented_in_turn_and_without_keys_no_header_is_sent() {
    let recorder = Recorder::spawn().await;
    let (_switch, stop) = stop_pair();
    let config = TrafficConfig {
        api_keys: both_keys(),
        ..traffic(&recorder.root, 40.0, Duration::from_secs(1))
    };
    let summary = traffic::run(&config, stop).await.unwrap();

    let seen = recorder.authorizations();
    assert_eq!(seen.len() as u64, summary.started);
    let presented = |key: &str| {
        let header = format!("Bearer {key}");
        seen.iter()
            .filter(|value| value.as_deref() == Some(header.as_str()))
            .count()
    };
    let wrong = presented(WRONG_KEY);
    let (team, batch) = (presented(TEAM), presented(BATCH));
    // Every request presented one of the keys or the wrong one, and the keys alternate.
    assert_eq!(team + batch + wrong, seen.len(), "{seen:?}");
    assert!(team > 10 && team.abs_diff(batch) <= 1, "{team} {batch}");

    let quiet = Recorder::spawn().await;
    let (_switch, stop) = stop_pair();
    let config = TrafficConfig {
        // Every request would otherwise present the wrong key: without keys, none does.
        weights: Weights::only(RequestKind::WrongKey),
        ..traffic(&quiet.root, 40.0, Duration::from_millis(500))
    };
    traffic::run(&config, stop).await.unwrap();
    let seen = quiet.authorizations();
    assert!(seen.len() > 5, "{seen:?}");
    assert!(seen.iter().all(Option::is_none), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_gets_its_share_and_a_spent_limit_is_a_4xx_not_an_error() {
    let gateway = keyed_gateway();
    let phases = Arc::new(PhaseTally::new("baseline"));
    let (_switch, stop) = stop_pair();
    let config = TrafficConfig {
        weights: Weights::only(RequestKind::ChatSmall),
        api_keys: both_keys(),
        ..traffic(&gateway.root, 40.0, Duration::from_millis(1500))
    };

    let summary = traffic::run_in_phases(&config, stop, Arc::clone(&phases))
        .await
        .unwrap();

    let scrape = gateway.scrape().await;
    let team = scrape.sum("mcp_server_key_requests_total", &[("key", "team")]);
    let batch = scrape.sum("mcp_server_key_requests_total", &[("key", "batch")]);
    assert_eq!(team + batch, summary.started as f64);
    assert!((team - batch).abs() <= 1.0, "team {team}, batch {batch}");
    // Past its few requests, `batch` is refused: 429s, counted by status like any answer.
    let limited = summary.status(429);
    assert!(limited > 0, "{summary:?}");
    assert_eq!(summary.status(200), summary.started - limited);
    let refused = scrape.sum("mcp_server_rate_limited_total", &[("key", "batch")]);
    assert_eq!(refused, limited as f64);
    let phase = &phases.summaries()[0];
    assert_eq!(phase.classes.get(StatusClass::ClientError), limited);
    assert_eq!(
        phase.errors(),
        0,
        "a key's spent limit is not a gateway error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_requests_are_refused_with_401_and_counted_as_deliberate_client_errors() {
    let gateway = keyed_gateway();
    let phases = Arc::new(PhaseTally::new("baseline"));
    let (_switch, stop) = stop_pair();
    let config = TrafficConfig {
        weights: Weights::only(RequestKind::WrongKey),
        api_keys: both_keys(),
        ..traffic(&gateway.root, 20.0, Duration::from_millis(500))
    };

    let summary = traffic::run_in_phases(&config, stop, Arc::clone(&phases))
        .await
        .unwrap();

    assert!(summary.started > 5, "{summary:?}");
    assert_eq!(summary.status(401), summary.started);
    let scrape = gateway.scrape().await;
    let counted = scrape.sum(
        "mcp_server_errors_total",
        &[("error_type", "invalid_api_key")],
    );
    assert_eq!(counted, summary.started as f64);
    // Refused before any key was known: no key's count moved.
    assert_eq!(scrape.sum("mcp_server_key_requests_total", &[]), 0.0);
    let phase = &phases.summaries()[0];
    assert_eq!(phase.classes.get(StatusClass::ClientError), summary.started);
    assert_eq!(phase.errors(), 0);
}

/// Whether `output` holds any part of the secrets worth hiding.
fn shows_a_key(output: &str) -> bool {
    output.contains(SECRET_TAIL)
}

/// The requests the gateway counted for `team` and `batch`, whatever their answer.
async fn requests_per_key(gateway: &Gateway) -> [f64; 2] {
    let scrape = gateway.scrape().await;
    ["team", "batch"].map(|key| scrape.sum("mcp_server_key_requests_total", &[("key", key)]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_appears_in_the_output_even_at_trace_level() {
    let gateway = keyed_gateway();
    let root = gateway.root.as_str();
    let from_flags = loadgen(
        &[
            "--log-format",
            "json",
            "run",
            "--rate",
            "20",
            "--duration",
            "1",
            "--api-key",
            TEAM,
            "--api-key",
            BATCH,
        ],
        &[("LOADGEN_TARGET", root), ("RUST_LOG", "trace")],
    )
    .await;
    let after_flags = requests_per_key(&gateway).await;
    let keys = format!("{TEAM},{BATCH}");
    let from_env = loadgen(
        &["run", "--rate", "20", "--duration", "1"],
        &[
            ("LOADGEN_TARGET", root),
            ("LOADGEN_API_KEYS", &keys),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    let after_env = requests_per_key(&gateway).await;

    // Both ways, the gateway saw each key (refused or not: `batch` soon spends its limit).
    for (key, (flags, env)) in ["team", "batch"]
        .iter()
        .zip(after_flags.into_iter().zip(after_env))
    {
        assert!(flags > 0.0 && env > flags, "{key}: {flags} then {env}");
    }
    for (how, output) in [("flags", &from_flags), ("env", &from_env)] {
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{how}: {stderr}");
        assert!(!shows_a_key(&stderr), "{how}: a key in\n{stderr}");
        assert!(!shows_a_key(&text(&output.stdout)), "{how}");
    }
    // The start line says how many keys are presented, never which.
    assert!(text(&from_env.stderr).contains("api_keys=2"));
    let json: Vec<Value> = text(&from_flags.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let start = json
        .iter()
        .find(|line| line["message"] == "sending traffic");
    assert_eq!(start.unwrap()["api_keys"], 2);

    // Nor in the help (which shows other variables' values), nor in a refusal of a bad key.
    let help = loadgen(&["run", "--help"], &[("LOADGEN_API_KEYS", &keys)]).await;
    let help = text(&help.stdout);
    assert!(help.contains("LOADGEN_API_KEYS"), "{help}");
    assert!(!shows_a_key(&help), "{help}");
    let target = format!("http://127.0.0.1:{}", closed_port());
    let bad = format!("sk-bad\u{1}{SECRET_TAIL}");
    let refused = loadgen(&["run", "--target", &target, "--api-key", &bad], &[]).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("client key #1"), "{stderr}");
    assert!(!shows_a_key(&stderr), "{stderr}");
}
