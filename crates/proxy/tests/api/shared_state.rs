//! Limits and spend in Redis, shared by two gateways: a key's limit holds across both, a
//! budget spent through one stops the other, spend survives a restart, and when Redis goes
//! away the gateways keep serving on their own share of each limit (fail-open), or refuse
//! (fail-closed), and share again once it is back. Real `redis-server` processes, started by
//! the test on free ports.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_core::limits::BudgetPeriod;
use mcp_core::limits::keys::digest;
use mcp_proxy::configuration::{
    KeyBudgetSettings, KeyEntry, LimitSettings, OnErrorSetting, Secrets, StateBackend,
};
use serde_json::Value;

use crate::helpers::*;

const KEY: &str = "sk-shared-3f9c1e7a5b2d4c6e";

/// A Redis server for one test, stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        Self::start_on(port).await
    }

    async fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/install-deps.sh installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "Redis did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn key(limits: LimitSettings, budget: Option<KeyBudgetSettings>) -> KeyEntry {
    KeyEntry {
        name: "team".into(),
        sha256: Some(digest(KEY).iter().map(|b| format!("{b:02x}")).collect()),
        key_env: None,
        models: None,
        limits,
        budget,
    }
}

/// A gateway keeping its limits in `redis`, under `prefix`, waiting 200 ms for it.
async fn gateway(
    redis: &Redis,
    prefix: &str,
    entry: KeyEntry,
    on_error: OnErrorSetting,
) -> TestApp {
    gateway_waiting(redis, prefix, entry, on_error, 200).await
}

async fn gateway_waiting(
    redis: &Redis,
    prefix: &str,
    entry: KeyEntry,
    on_error: OnErrorSetting,
    timeout_ms: u64,
) -> TestApp {
    let mut options = Spawn::default();
    options.settings.keys = vec![entry];
    options.settings.state.backend = StateBackend::Redis;
    options.settings.state.redis.key_prefix = prefix.into();
    options.settings.state.redis.on_error = on_error;
    options.settings.state.redis.timeout_ms = timeout_ms;
    let mut secrets = Secrets::default();
    secrets.redis_url = Some(redis.url().into());
    options.secrets = secrets;
    let app = spawn(options).await;
    // The connection is made in the background: wait until the store answers.
    wait_until(
        Duration::from_secs(10),
        "the gateway reaches Redis",
        || async { app.scrape().await.get("mcp_server_state_backend_up", &[]) == 1.0 },
    )
    .await;
    app
}

async fn chat(app: &TestApp) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body(CHAT_MODEL))
        .send()
        .await
        .expect("the gateway answers")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", fastrand::u64(..))
}

#[tokio::test]
async fn a_keys_limit_holds_across_two_gateways() {
    let redis = Redis::start().await;
    let prefix = unique("rpm");
    let limits = LimitSettings {
        requests_per_minute: Some(10),
        ..LimitSettings::default()
    };
    let a = gateway(&redis, &prefix, key(limits, None), OnErrorSetting::FailOpen).await;
    let b = gateway(&redis, &prefix, key(limits, None), OnErrorSetting::FailOpen).await;
    let mut passed = 0;
    for i in 0..30 {
        let app = if i % 2 == 0 { &a } else { &b };
        if chat(app).await.status() == 200 {
            passed += 1;
        }
    }
    // Ten in the minute, not ten per gateway (the bucket refills at 10 a minute: the test's
    // few hundred milliseconds can let one more through).
    assert!((10..=11).contains(&passed), "{passed} passed");
    for app in [&a, &b] {
        let refused = app.scrape().await.get(
            "mcp_server_rate_limited_total",
            &[("limit", "requests"), ("key", "team")],
        );
        assert!(refused > 0.0, "each gateway refused some");
    }
    let m = a.scrape().await;
    assert_eq!(m.get("mcp_server_state_backend_errors_total", &[]), 0.0);
    assert!(
        m.get(
            "mcp_server_state_backend_duration_seconds_count",
            &[("op", "admit")]
        ) >= 15.0
    );
}

#[tokio::test]
async fn a_budget_spent_through_one_gateway_stops_the_other_and_survives_a_restart() {
    let redis = Redis::start().await;
    let prefix = unique("budget");
    let budget = Some(KeyBudgetSettings {
        usd: 0.00005,
        period: BudgetPeriod::Day,
    });
    let a = gateway(
        &redis,
        &prefix,
        key(LimitSettings::default(), budget),
        OnErrorSetting::FailOpen,
    )
    .await;
    let mut spent = 0.0;
    while chat(&a).await.status() == 200 {
        spent += 1.0;
        assert!(spent < 100.0, "the budget never ran out");
    }
    let b = gateway(
        &redis,
        &prefix,
        key(LimitSettings::default(), budget),
        OnErrorSetting::FailOpen,
    )
    .await;
    let refused = chat(&b).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    // A gateway started afresh finds the spend where the others left it.
    let c = gateway(
        &redis,
        &prefix,
        key(LimitSettings::default(), budget),
        OnErrorSetting::FailOpen,
    )
    .await;
    assert_eq!(chat(&c).await.status(), 429);
    wait_until(
        Duration::from_secs(40),
        "the budget gauge shows it spent",
        || async {
            c.scrape()
                .await
                .get("mcp_server_key_budget_remaining_usd", &[("key", "team")])
                == 0.0
        },
    )
    .await;
}

#[tokio::test]
async fn without_redis_the_gateways_serve_on_their_share_and_share_again_once_it_is_back() {
    let redis = Redis::start().await;
    let port = redis.port;
    let prefix = unique("outage");
    let limits = LimitSettings {
        requests_per_minute: Some(8),
        ..LimitSettings::default()
    };
    let open = gateway(&redis, &prefix, key(limits, None), OnErrorSetting::FailOpen).await;
    let closed = gateway(
        &redis,
        &prefix,
        key(limits, None),
        OnErrorSetting::FailClosed,
    )
    .await;
    drop(redis);

    // Fail-open: half of the limit (fail_open_share 0.5), decided in this process.
    let mut passed = 0;
    for _ in 0..10 {
        if chat(&open).await.status() == 200 {
            passed += 1;
        }
    }
    assert_eq!(passed, 4, "half of 8 while Redis is away");
    let m = open.scrape().await;
    assert!(m.get("mcp_server_state_backend_errors_total", &[("op", "admit")]) >= 10.0);
    assert_eq!(m.get("mcp_server_state_backend_up", &[]), 0.0);
    // Fail-closed: refused, and said why.
    let refused = chat(&closed).await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "limits_unavailable", "{body}");

    // Redis comes back (empty: a restart): the limit is shared again, without a restart.
    let _redis = Redis::start_on(port).await;
    wait_until(
        Duration::from_secs(20),
        "the gateway reaches Redis again",
        || async { chat(&closed).await.status() == 200 },
    )
    .await;
    let mut passed = 1;
    for i in 0..20 {
        let app = if i % 2 == 0 { &open } else { &closed };
        if chat(app).await.status() == 200 {
            passed += 1;
        }
    }
    assert!(
        (8..=9).contains(&passed),
        "{passed} passed once shared again"
    );
}

/// Sends one command to the Redis on `port` and returns its reply's first line; waits as
/// long as Redis does (a `CLIENT PAUSE` holds it).
fn redis_command(port: u16, args: &[&str]) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("Redis listens");
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(command.as_bytes()).expect("sent");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("a reply");
    line.trim_end().to_owned()
}

/// Answers every gateway's requests through `app` until one is refused; returns how many
/// passed.
async fn until_refused(app: &TestApp) -> u32 {
    let mut passed = 0;
    loop {
        let response = chat(app).await;
        if response.status() != 200 {
            assert_eq!(response.status(), 429);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
            return passed;
        }
        passed += 1;
        assert!(passed < 100, "the budget never ran out");
    }
}

#[tokio::test]
async fn while_redis_cannot_answer_budgets_start_from_the_shared_spend_and_what_is_spent_reaches_it_later()
 {
    let redis = Redis::start().await;
    // What one request costs, from a gateway of its own.
    let probe = gateway(
        &redis,
        &unique("probe"),
        key(LimitSettings::default(), None),
        OnErrorSetting::FailOpen,
    )
    .await;
    assert_eq!(chat(&probe).await.status(), 200);
    let cost = probe.scrape().await.get("mcp_server_cost_usd_total", &[]);
    assert!(cost > 0.0, "the fixture's usage is priced");
    let budget = Some(KeyBudgetSettings {
        usd: 4.5 * cost,
        period: BudgetPeriod::Day,
    });
    let prefix = unique("owed");
    let a = gateway(
        &redis,
        &prefix,
        key(LimitSettings::default(), budget),
        OnErrorSetting::FailOpen,
    )
    .await;

    // Redis holds every command for 1.5 s: two requests are decided and settled in the
    // process (each admission times out after 200 ms).
    assert_eq!(
        redis_command(redis.port, &["CLIENT", "PAUSE", "1500", "ALL"]),
        "+OK"
    );
    for _ in 0..2 {
        assert_eq!(chat(&a).await.status(), 200);
    }
    let m = a.scrape().await;
    assert!(m.get("mcp_server_state_backend_errors_total", &[("op", "admit")]) >= 2.0);
    // Once Redis answers again, the next settlement carries the two with it: three spent.
    let port = redis.port;
    assert_eq!(
        tokio::task::spawn_blocking(move || redis_command(port, &["PING"]))
            .await
            .unwrap(),
        "+PONG"
    );
    wait_until(
        Duration::from_secs(10),
        "a request is settled in Redis",
        || async {
            chat(&a).await.status() == 200
                && a.scrape().await.get(
                    "mcp_server_state_backend_duration_seconds_count",
                    &[("op", "settle")],
                ) >= 1.0
        },
    )
    .await;
    // A gateway started now finds 3 (or 4, had the wait needed two) of 4.5 spent.
    let b = gateway(
        &redis,
        &prefix,
        key(LimitSettings::default(), budget),
        OnErrorSetting::FailOpen,
    )
    .await;
    let passed = until_refused(&b).await;
    assert!(
        passed <= 2,
        "{passed} passed: the spend settled without Redis was not written to it"
    );

    // The budget is spent, and `a` hears it from Redis. Redis pauses again: `a` decides
    // alone, from the spend it last read from Redis, and still refuses.
    assert_eq!(chat(&a).await.status(), 429);
    assert_eq!(
        redis_command(redis.port, &["CLIENT", "PAUSE", "1000", "ALL"]),
        "+OK"
    );
    let refused = chat(&a).await;
    assert_eq!(
        refused.status(),
        429,
        "a spent key is served while Redis is away"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    let errors = a
        .scrape()
        .await
        .get("mcp_server_state_backend_errors_total", &[("op", "admit")]);
    assert!(
        errors >= 3.0,
        "decided without Redis: {errors} admission errors"
    );
}

// A Redis that holds its connections but answers nothing (here `CLIENT PAUSE`; a stopped or
// swapping server alike) is down once three calls in a row timed out, and up again with the
// first answer.
#[tokio::test]
async fn a_redis_that_stops_answering_is_down_after_three_timeouts_and_up_with_an_answer() {
    let redis = Redis::start().await;
    let limits = LimitSettings {
        requests_per_minute: Some(1000),
        ..LimitSettings::default()
    };
    let app = gateway_waiting(
        &redis,
        &unique("paused"),
        key(limits, None),
        OnErrorSetting::FailOpen,
        100,
    )
    .await;
    assert_eq!(chat(&app).await.status(), 200);
    assert_eq!(
        redis_command(redis.port, &["CLIENT", "PAUSE", "3000", "ALL"]),
        "+OK"
    );
    // Each request's admission times out (fail-open serves it, and settles it in process):
    // one call without an answer per request.
    for (request, up) in [(1, 1.0), (2, 1.0), (3, 0.0)] {
        assert_eq!(chat(&app).await.status(), 200);
        let m = app.scrape().await;
        let admit = [("op", "admit")];
        assert_eq!(
            m.get("mcp_server_state_backend_errors_total", &admit),
            f64::from(request)
        );
        assert_eq!(
            m.get("mcp_server_state_backend_up", &[]),
            up,
            "after {request}"
        );
    }
    let port = redis.port;
    assert_eq!(
        tokio::task::spawn_blocking(move || redis_command(port, &["PING"]))
            .await
            .unwrap(),
        "+PONG"
    );
    assert_eq!(chat(&app).await.status(), 200);
    let m = app.scrape().await;
    assert_eq!(m.get("mcp_server_state_backend_up", &[]), 1.0);
}

#[tokio::test]
async fn the_store_gauge_exists_only_where_a_store_is_used() {
    let memory = spawn(Spawn::default()).await;
    let m = memory.scrape().await;
    assert_eq!(
        m.sum("mcp_server_state_backend_up", &[]),
        None,
        "{}",
        m.text
    );
    let redis = Redis::start().await;
    let budget = Some(KeyBudgetSettings {
        usd: 1.0,
        period: BudgetPeriod::Day,
    });
    let shared = gateway(
        &redis,
        &unique("gauge"),
        key(LimitSettings::default(), budget),
        OnErrorSetting::FailOpen,
    )
    .await;
    // The first budget refresh, a second after the start, asks Redis once it is reached:
    // starting up counts no error.
    wait_until(
        Duration::from_secs(10),
        "the first budget refresh",
        || async {
            shared.scrape().await.get(
                "mcp_server_state_backend_duration_seconds_count",
                &[("op", "budget")],
            ) >= 1.0
        },
    )
    .await;
    let m = shared.scrape().await;
    assert_eq!(m.sum("mcp_server_state_backend_up", &[]), Some(1.0));
    assert_eq!(m.get("mcp_server_state_backend_errors_total", &[]), 0.0);
}

#[tokio::test]
async fn a_client_leaving_while_its_decision_is_in_redis_leaves_no_reservation_behind() {
    let redis = Redis::start().await;
    let limits = LimitSettings {
        tokens_per_minute: Some(60_000),
        ..LimitSettings::default()
    };
    // Redis is given long enough that the decision below never times out.
    let app = gateway_waiting(
        &redis,
        &unique("orphan"),
        key(limits, None),
        OnErrorSetting::FailOpen,
        5_000,
    )
    .await;
    let remaining = || async {
        let mut body = chat_body(CHAT_MODEL);
        body["max_tokens"] = 1.into();
        let response = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(response.status(), 200);
        response.headers()["x-ratelimit-remaining-tokens"]
            .to_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    let before = remaining().await;
    // Redis holds commands for 500 ms; the client reserving 30,000 tokens leaves after
    // 50 ms, while its decision waits in Redis.
    assert_eq!(
        redis_command(redis.port, &["CLIENT", "PAUSE", "500", "ALL"]),
        "+OK"
    );
    let mut body = chat_body(CHAT_MODEL);
    body["max_tokens"] = 30_000.into();
    let left = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .timeout(Duration::from_millis(50))
        .json(&body)
        .send()
        .await;
    assert!(left.is_err(), "the client left before the answer");
    let port = redis.port;
    tokio::task::spawn_blocking(move || redis_command(port, &["PING"]))
        .await
        .unwrap();
    // The script ran once Redis resumed and reserved 30,000; the reservation comes back at
    // once (the bucket itself refills only 1,000 a second).
    wait_until(
        Duration::from_secs(2),
        "the reservation is given back",
        || async { remaining().await > before - 5_000 },
    )
    .await;
}
