//! Two replicas of the gateway, natively, as `docker-compose.replicas.yml` runs them: two
//! gateway processes with the shipped settings and `state.backend: redis` against one real
//! `redis-server`, the load generator sending each request to the next replica, and one
//! Prometheus scraping both through the repository's list of both replicas
//! (`prometheus/targets/replicas.yml`) with the repository's rules, and Alertmanager: the
//! [`Stack`] of `e2e.rs`.
//!
//! It proves what running several replicas promises: a client key's limit holds across them
//! (60 a minute is 60, not 120), a budget spent through one stops the other, an incident whose
//! errors are split between the replicas pages as one, the recorded series are the sums over
//! both, and when Redis dies the replicas keep serving, say so (`McpServerStateBackendDown`),
//! and share their limits again once Redis is back on the same port.

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use mcp_core::limits::keys::digest;
use serde_json::{Value, json};

use crate::e2e::{
    DEMO_KEYS, FAST_BURN, HIGH_ERROR_RATE, Options, Stack, repo_root, substitute, within,
};

/// A key limited to [`RPM`] requests a minute, added to the shipped settings.
const RPM_KEY: &str = "sk-mcp-replicas-rpm-4b7e90";
const RPM: usize = 60;
/// A key with a budget of a few requests.
const BUDGET_KEY: &str = "sk-mcp-replicas-budget-4b7e90";
const STATE_BACKEND_DOWN: &str = "McpServerStateBackendDown";

/// deploy/mcp-server.yaml with the test's two keys before the demo keys.
fn settings() -> String {
    let sha256 =
        |secret: &str| -> String { digest(secret).iter().map(|b| format!("{b:02x}")).collect() };
    let shipped = fs::read_to_string(repo_root().join("deploy/mcp-server.yaml"))
        .expect("deploy/mcp-server.yaml");
    let keys = format!(
        "\nkeys:\n\
         \x20 - name: replicas-rpm\n\
         \x20   sha256: {}\n\
         \x20   limits: {{ requests_per_minute: {RPM} }}\n\
         \x20 - name: replicas-budget\n\
         \x20   sha256: {}\n\
         \x20   budget: {{ usd: 0.0001, period: day }}\n",
        sha256(RPM_KEY),
        sha256(BUDGET_KEY),
    );
    substitute(&shipped, &[("\nkeys:\n", keys)])
}

/// One chat completion through `gateway` with `key`: the status and the body.
async fn chat(stack: &Stack, gateway: &str, key: &str) -> (u16, Value) {
    let response = stack
        .http
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Say something about replicas."}],
            "max_tokens": 20
        }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{gateway} does not answer: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Sends, all at once, `n` requests with `key` to each `(gateway, n)` of `plan`, interleaved
/// so that neither replica's go first; how many each gateway admitted and refused for a rate
/// limit.
async fn burst(stack: &Stack, plan: &[(&str, usize)], key: &str) -> Vec<(usize, usize)> {
    let most = plan.iter().map(|&(_, n)| n).max().unwrap_or(0);
    let requests = (0..most).flat_map(|i| {
        plan.iter()
            .enumerate()
            .filter(move |&(_, &(_, n))| i < n)
            .map(|(which, &(gateway, _))| (which, gateway))
    });
    let answers = join_all(
        requests.map(|(which, gateway)| async move { (which, chat(stack, gateway, key).await) }),
    )
    .await;
    let mut counts = vec![(0, 0); plan.len()];
    for (which, (status, body)) in answers {
        match status {
            200 => counts[which].0 += 1,
            429 => {
                assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
                counts[which].1 += 1;
            }
            other => panic!("{}: {other} {body}", plan[which].0),
        }
    }
    counts
}

/// The sum of `gateway`'s own samples of `name` whose labels include every pair of `labels`.
async fn scraped(stack: &Stack, gateway: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = stack
        .http
        .get(format!("{gateway}/metrics"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("the gateway serves /metrics")
        .text()
        .await
        .expect("a scrape");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = series
                .split_once('{')
                .map_or((series, ""), |(n, rest)| (n, rest.trim_end_matches('}')));
            let matches = series_name == name
                && labels.iter().all(|(k, v)| {
                    series_labels
                        .split(',')
                        .any(|pair| pair == format!("{k}=\"{v}\""))
                });
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Calls to Redis that failed or timed out while admitting requests, on every replica.
async fn admit_errors(stack: &Stack) -> f64 {
    let mut sum = 0.0;
    for gateway in &stack.proxies {
        sum += scraped(
            stack,
            gateway,
            "mcp_server_state_backend_errors_total",
            &[("op", "admit")],
        )
        .await;
    }
    sum
}

/// The value of one series of a query result.
fn value(series: &Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `instance` of the replica at `gateway` (`http://127.0.0.1:PORT`), as Prometheus labels it.
fn instance(gateway: &str) -> &str {
    gateway.trim_start_matches("http://")
}

/// The latest sample of the recorded job-level series `record` is the sum over both replicas
/// of `raw`, evaluated at that sample's time, and each replica's part is a fair share of it:
/// the rules aggregate over the replicas rather than keep one of them. Polled for a while: a
/// replica's series counts in a rate from its second sample on.
async fn assert_recorded_sum(stack: &Stack, record: &str, raw: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let problem = match recorded_sum(stack, record, raw).await {
            Ok(()) => return,
            Err(problem) => problem,
        };
        assert!(Instant::now() < deadline, "{problem}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One try of [`assert_recorded_sum`]: what does not hold, if anything.
async fn recorded_sum(stack: &Stack, record: &str, raw: &str) -> Result<(), String> {
    let recorded = stack
        .query(&format!(r#"{record}{{job="mcp-server"}}[10s]"#))
        .await;
    let [series] = recorded.as_slice() else {
        return Err(format!("not one {record} for the job: {recorded:?}"));
    };
    let last = series["values"]
        .as_array()
        .and_then(|samples| samples.last())
        .ok_or_else(|| format!("no recent sample of {record}: {series}"))?;
    let at = last[0].as_f64().expect("a timestamp");
    let total: f64 = last[1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a value");
    let parts = stack
        .query_at(&format!("sum by (instance) ({raw})"), at)
        .await;
    let instances: BTreeSet<&str> = parts
        .iter()
        .filter_map(|s| s["metric"]["instance"].as_str())
        .collect();
    let expected: BTreeSet<&str> = stack.proxies.iter().map(|g| instance(g)).collect();
    if instances != expected {
        return Err(format!(
            "{raw} at {at} is not one series per replica: {parts:?}"
        ));
    }
    let sum: f64 = parts.iter().map(value).sum();
    // Within 5%: a scrape stored just after the rule's evaluation, with a timestamp just
    // before it, is seen by the query and was not by the rule. Either replica left out
    // would be about half of it.
    if !(total > 0.0 && (sum - total).abs() <= 0.05 * total) {
        return Err(format!(
            "{record} = {total} at {at}, the replicas' {raw} sum to {sum}: {parts:?}"
        ));
    }
    if parts.iter().any(|part| value(part) < 0.25 * total) {
        return Err(format!(
            "a replica has less than its share of {record} = {total}: {parts:?}"
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_limits_budgets_and_alerts_and_ride_out_a_redis_outage() {
    let started = Instant::now();
    let mut stack = Stack::start(
        "replicas",
        Options::new()
            .replicas(2)
            .redis()
            .settings(settings())
            // One attempt per request: the incident's errors reach the clients (as in e2e.rs).
            .env("MCP__ROUTING__MAX_ATTEMPTS", 1)
            // Debug builds on a busy machine: a round trip to Redis may take longer than the
            // default 50ms, and a decision that timed out is made in the process, which the
            // counts below are not about (they check that none was).
            .env("MCP__STATE__REDIS__TIMEOUT_MS", 250),
    )
    .await;
    let (a, b) = (stack.proxies[0].clone(), stack.proxies[1].clone());
    let demo_key = DEMO_KEYS.split(',').next().expect("a demo key");
    let mut timings = vec![("stack up", started.elapsed())];

    // Both replicas reach Redis, and the demo traffic reaches both.
    both_reach_redis(&stack, [&a, &b], "both replicas reach Redis").await;
    within(
        Duration::from_secs(30),
        "Prometheus sees the demo traffic on both replicas",
        || async {
            let per_instance = stack
                .query(r#"sum by (instance) (mcp_server_requests_total{job="mcp-server"})"#)
                .await;
            per_instance.len() == 2 && per_instance.iter().all(|s| value(s) >= 5.0)
        },
    )
    .await;

    // 1. A key limited to 60 requests a minute gets 60 through the two replicas, not 60 from
    // each: 120 requests at once, half to each.
    let errors_before = admit_errors(&stack).await;
    let burst_started = Instant::now();
    let counts = burst(&stack, &[(&a, RPM), (&b, RPM)], RPM_KEY).await;
    let took = burst_started.elapsed();
    assert_eq!(
        admit_errors(&stack).await,
        errors_before,
        "a decision was made without Redis"
    );
    let passed: usize = counts.iter().map(|&(ok, _)| ok).sum();
    // The bucket refills at one request a second: a burst that took longer may let one more
    // through for each second it took.
    let refill = took.as_secs() as usize;
    eprintln!("{passed} of {} passed ({counts:?}) in {took:?}", 2 * RPM);
    assert!(
        (RPM..=RPM + refill).contains(&passed),
        "{passed} requests passed through two replicas sharing a limit of {RPM} a minute \
         (admitted, refused per replica: {counts:?}, in {took:?})"
    );
    assert!(
        counts.iter().all(|&(_, refused)| refused > 0),
        "each replica refused once the shared limit was reached: {counts:?}"
    );

    // 2. A budget spent through one replica stops the other.
    let (status, body) = chat(&stack, &b, BUDGET_KEY).await;
    assert_eq!(
        status, 200,
        "{b} serves the key while its budget lasts: {body}"
    );
    let mut spent_through_a = 0;
    let refusal = loop {
        let (status, body) = chat(&stack, &a, BUDGET_KEY).await;
        match status {
            200 => spent_through_a += 1,
            429 => break body,
            other => panic!("{a}: {other} {body}"),
        }
        assert!(spent_through_a < 200, "the budget never ran out");
    };
    assert_eq!(refusal["error"]["code"], "insufficient_quota", "{refusal}");
    // Requests cost about the same: two served after the one through b mean that b's own
    // spend was well inside the budget.
    assert!(spent_through_a >= 2, "{spent_through_a} served through {a}");
    let (status, body) = chat(&stack, &b, BUDGET_KEY).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("insufficient_quota")),
        "the budget spent through {a} stops {b}: {body}"
    );
    timings.push(("limit and budget", started.elapsed()));

    // 3. Prometheus has each replica's own count, which the replica itself reports, and the
    // job's sum is every refusal of the burst.
    for (gateway, &(_, refused)) in [&a, &b].into_iter().zip(&counts) {
        assert_eq!(
            scraped(
                &stack,
                gateway,
                "mcp_server_rate_limited_total",
                &[("key", "replicas-rpm"), ("limit", "requests")]
            )
            .await,
            refused as f64,
            "{gateway} counted its refusals"
        );
    }
    let refused_total: usize = counts.iter().map(|&(_, refused)| refused).sum();
    within(
        Duration::from_secs(20),
        "Prometheus holds each replica's refusals and sums them by job",
        || async {
            let per_instance = stack
                .query(r#"mcp_server_rate_limited_total{job="mcp-server",key="replicas-rpm",limit="requests"}"#)
                .await;
            let by_job = stack
                .query(
                    r#"sum by (job) (mcp_server_rate_limited_total{job="mcp-server",key="replicas-rpm",limit="requests"})"#,
                )
                .await;
            let each_matches = [&a, &b].into_iter().zip(&counts).all(|(g, &(_, refused))| {
                per_instance
                    .iter()
                    .any(|s| s["metric"]["instance"] == instance(g) && value(s) == refused as f64)
            });
            per_instance.len() == 2
                && each_matches
                && by_job.len() == 1
                && value(&by_job[0]) == refused_total as f64
        },
    )
    .await;
    // The recorded request rate, which the dashboards plot, is the sum of both replicas'.
    assert_recorded_sum(
        &stack,
        "job:mcp_server_requests:rate5m",
        r#"rate(mcp_server_requests_total{job="mcp-server"}[5m])"#,
    )
    .await;

    // 4. An incident whose errors are split between the replicas pages once, for the job.
    let active = [stack.alerts("firing").await, stack.alerts("pending").await].concat();
    assert!(
        !active
            .iter()
            .any(|a| a == FAST_BURN || a == HIGH_ERROR_RATE),
        "error-rate alerts before the incident: {active:?}"
    );
    stack
        .set_faults(Some(json!({"error_rate": 0.3, "error_status": 500})))
        .await;
    let fired = within(
        Duration::from_secs(120),
        "the fast-burn page fires",
        || async { stack.alerts("firing").await.iter().any(|a| a == FAST_BURN) },
    )
    .await;
    timings.push(("fast burn fired", started.elapsed()));
    eprintln!("{FAST_BURN} fired {fired:?} after the incident started");
    let pages: Vec<Value> = stack
        .alert_labels("firing")
        .await
        .into_iter()
        .filter(|labels| labels["alertname"] == FAST_BURN)
        .collect();
    assert_eq!(pages.len(), 1, "one page for the job: {pages:?}");
    assert_eq!(pages[0]["job"], "mcp-server", "{pages:?}");
    assert!(pages[0].get("instance").is_none(), "{pages:?}");
    // The errors behind it came from both replicas, and the recorded error rate is their sum.
    assert_recorded_sum(
        &stack,
        "job:mcp_server_request_errors:rate5m",
        r#"rate(mcp_server_requests_total{job="mcp-server",status=~"5.."}[5m])"#,
    )
    .await;
    // The plain threshold holds on the job's sum too (it fires after its `for: 2m`, which
    // e2e.rs waits out).
    within(
        Duration::from_secs(60),
        "McpServerHighErrorRate is pending or firing",
        || async {
            let active = [stack.alerts("firing").await, stack.alerts("pending").await].concat();
            active.iter().any(|a| a == HIGH_ERROR_RATE)
        },
    )
    .await;
    within(
        Duration::from_secs(60),
        "Alertmanager holds the page",
        || async {
            stack
                .alertmanager_alerts()
                .await
                .iter()
                .any(|(name, state)| {
                    name == FAST_BURN && matches!(state.as_str(), "active" | "suppressed")
                })
        },
    )
    .await;
    stack.set_faults(None).await;

    // The budget spent through a shows as spent on both replicas (b learns it from Redis on
    // its next refresh of the gauge), and the recorded remainder over both is 0.
    within(
        Duration::from_secs(60),
        "both replicas report the budget spent",
        || async {
            let gauges = stack
                .query(r#"mcp_server_key_budget_remaining_usd{job="mcp-server",key="replicas-budget"}"#)
                .await;
            let ratio = stack
                .query(r#"job_key:mcp_server_key_budget_remaining:ratio{job="mcp-server",key="replicas-budget"}"#)
                .await;
            gauges.len() == 2
                && gauges.iter().all(|s| value(s) == 0.0)
                && ratio.len() == 1
                && value(&ratio[0]) == 0.0
        },
    )
    .await;
    timings.push(("incident and budget", started.elapsed()));

    // 5. Redis dies: the replicas keep serving, each deciding on its own share of each limit.
    let rules = stack
        .get_json(&format!("{}/api/v1/rules", stack.prometheus))
        .await
        .expect("Prometheus answers");
    assert!(
        rules.to_string().contains(STATE_BACKEND_DOWN),
        "{STATE_BACKEND_DOWN} is not among the rules of prometheus/rules"
    );
    let errors_before = [
        scraped(&stack, &a, "mcp_server_state_backend_errors_total", &[]).await,
        scraped(&stack, &b, "mcp_server_state_backend_errors_total", &[]).await,
    ];
    stack.kill_redis();
    let killed = Instant::now();
    for gateway in [&a, &b] {
        for _ in 0..10 {
            let (status, body) = chat(&stack, gateway, demo_key).await;
            assert_eq!(status, 200, "{gateway} without Redis: {body}");
        }
    }
    within(
        Duration::from_secs(20),
        "both replicas see that Redis is gone",
        || async {
            for (gateway, before) in [&a, &b].into_iter().zip(errors_before) {
                let up = scraped(&stack, gateway, "mcp_server_state_backend_up", &[]).await;
                let errors = scraped(
                    &stack,
                    gateway,
                    "mcp_server_state_backend_errors_total",
                    &[],
                )
                .await;
                if up != 0.0 || errors <= before {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let down = within(
        Duration::from_secs(100),
        "McpServerStateBackendDown fires for both replicas",
        || async {
            let instances: BTreeSet<String> = stack
                .alert_labels("firing")
                .await
                .iter()
                .filter(|labels| labels["alertname"] == STATE_BACKEND_DOWN)
                .filter_map(|labels| labels["instance"].as_str().map(str::to_owned))
                .collect();
            instances.len() == 2
        },
    )
    .await;
    eprintln!(
        "{STATE_BACKEND_DOWN} fired {:?} after Redis was killed",
        killed.elapsed()
    );
    timings.push(("redis down alert", started.elapsed()));
    // All that while, the demo traffic was answered by both replicas.
    let served = stack
        .query(
            r#"sum by (instance) (increase(mcp_server_requests_total{job="mcp-server",status="200"}[30s]))"#,
        )
        .await;
    assert!(
        served.len() == 2 && served.iter().all(|s| value(s) >= 10.0),
        "answers served over the last 30 s of the outage ({down:?} into it): {served:?}"
    );

    // 6. Redis starts again on the same port, with its append-only file: the replicas
    // reconnect by themselves and share again.
    stack.restart_redis().await;
    let back = Instant::now();
    both_reach_redis(&stack, [&a, &b], "both replicas reach Redis again").await;
    eprintln!(
        "both replicas reached Redis {:?} after it restarted",
        back.elapsed()
    );
    within(
        Duration::from_secs(30),
        "McpServerStateBackendDown resolves",
        || async {
            let active = [stack.alerts("firing").await, stack.alerts("pending").await].concat();
            !active.iter().any(|a| a == STATE_BACKEND_DOWN)
        },
    )
    .await;
    // The spend survived the restart: refused by both, which on their own would have served it.
    for gateway in [&a, &b] {
        let (status, body) = chat(&stack, gateway, BUDGET_KEY).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (429, Some("insufficient_quota")),
            "{gateway} after Redis restarted: {body}"
        );
    }
    // The limit holds across the replicas again: a takes the whole minute's 60 and b gets
    // none. (Each deciding alone on its half would admit 30 and 30.)
    let errors_before = admit_errors(&stack).await;
    let burst_started = Instant::now();
    let first = burst(&stack, &[(&a, RPM)], RPM_KEY).await[0];
    let second = burst(&stack, &[(&b, RPM)], RPM_KEY).await[0];
    let took = burst_started.elapsed();
    assert_eq!(
        admit_errors(&stack).await,
        errors_before,
        "a decision was made without Redis"
    );
    let refill = took.as_secs() as usize;
    eprintln!("after the restart: {first:?} through {a}, then {second:?} through {b} in {took:?}");
    assert!(
        (RPM..=RPM + refill).contains(&(first.0 + second.0)) && second.0 <= refill,
        "{RPM} a minute shared again: {} of {RPM} through {a}, then {} of {RPM} through {b} \
         (in {took:?})",
        first.0,
        second.0
    );
    timings.push(("shared again", started.elapsed()));
    eprintln!("timings: {timings:?}");
}

/// Waits until every one of `gateways` reports its store reachable.
async fn both_reach_redis(stack: &Stack, gateways: [&String; 2], what: &str) {
    within(Duration::from_secs(30), what, || async {
        for gateway in gateways {
            if scraped(stack, gateway, "mcp_server_state_backend_up", &[]).await != 1.0 {
                return false;
            }
        }
        true
    })
    .await;
}
