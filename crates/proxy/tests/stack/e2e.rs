//! The whole stack, natively: the mock upstream, the gateway and the load generator as
//! processes of the built binaries, real Prometheus and Alertmanager (the distribution's
//! packages) with the repository's configuration and rule files. The only differences from
//! the compose stack are host names mapped to local ports and the global scrape and
//! evaluation intervals shortened; the rule files are used as they are.
//!
//! It proves the promise of the stack: quiet under normal traffic, the error-rate alerts fire
//! on a 30% incident and reach Alertmanager (and its webhook), the plain alert resolves once
//! the incident is over, and every dashboard panel has data; and, with retries on as shipped,
//! that a primary upstream failing hard costs clients nothing: traffic moves to the secondary,
//! the primary's breakers open, and traffic comes back when it heals.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::dashboards::panel_queries;

/// The scrape and evaluation interval the test runs Prometheus with.
const INTERVAL: &str = "1s";
/// The client keys of the shipped settings (deploy/mcp-server.yaml), as compose passes them.
const DEMO_KEYS: &str = "sk-mcp-demo-team,sk-mcp-demo-batch";
/// Demo traffic, requests per second.
const RATE: &str = "20";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A workspace binary, built next to this crate's own.
fn workspace_binary(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_mcp-proxy"))
        .parent()
        .expect("binaries live in a directory")
        .to_path_buf();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (`make test` does)",
        path.display()
    );
    path
}

/// A program from the system, installed by `scripts/install-deps.sh`.
fn system_binary(candidates: &[&str]) -> PathBuf {
    for name in candidates {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        if let Some(path) = found {
            return path;
        }
    }
    panic!("none of {candidates:?} is installed: run scripts/install-deps.sh (`make test` does)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process that is killed when the test ends, however it ends. Its output goes to a
/// log file, shown when the test fails.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn start(name: &'static str, dir: &Path, command: &mut Command) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = fs::File::create(&log).expect("a log file");
        let err = out.try_clone().expect("a second handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name}: {e}"));
        Self { name, child, log }
    }

    fn tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- last lines of {} ---\n{}", self.name, self.tail());
        }
    }
}

/// A temporary directory removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("mcp-e2e-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("a temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// `text` with each `(from, to)` replaced; every `from` must occur, so that a change to the
/// configuration files that this mapping no longer covers fails loudly.
fn substitute(text: &str, replacements: &[(&str, String)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in replacements {
        assert!(
            out.contains(from),
            "`{from}` no longer occurs in the configuration"
        );
        out = out.replace(from, to);
    }
    out
}

struct Stack {
    dir: TempDir,
    http: reqwest::Client,
    /// The two mocks' roots, primary first (the primary also takes Alertmanager's webhook).
    mocks: [String; 2],
    proxy: String,
    prometheus: String,
    alertmanager: String,
    // Declared last: dropped (killed) after the fields above are no longer needed.
    processes: Vec<Process>,
}

impl Stack {
    /// The stack with the shipped settings; `max_attempts` overrides the routing's attempt
    /// limit when given.
    async fn start(name: &str, max_attempts: Option<u32>) -> Self {
        let root = repo_root();
        let dir = TempDir::new(name);
        let (mock_port, secondary_port, proxy_port, prom_port, am_port) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let mut processes = Vec::new();

        for (process, instance, port) in [
            ("mock-upstream", "primary", mock_port),
            ("mock-secondary", "secondary", secondary_port),
        ] {
            processes.push(Process::start(
                process,
                &dir.0,
                Command::new(workspace_binary("mcp-mock-upstream"))
                    .args(["--listen", &format!("127.0.0.1:{port}")])
                    .args(["--instance", instance]),
            ));
        }
        let mut proxy = Command::new(env!("CARGO_BIN_EXE_mcp-proxy"));
        proxy
            .arg("--config")
            .arg(root.join("deploy/mcp-server.yaml"))
            .args(["--listen", &format!("127.0.0.1:{proxy_port}")]);
        if let Some(attempts) = max_attempts {
            proxy.env("MCP__ROUTING__MAX_ATTEMPTS", attempts.to_string());
        }
        processes.push(Process::start(
            "proxy",
            &dir.0,
            proxy
                .env(
                    "MCP__UPSTREAMS__PRIMARY__BASE_URL",
                    format!("http://127.0.0.1:{mock_port}/v1"),
                )
                .env(
                    "MCP__UPSTREAMS__SECONDARY__BASE_URL",
                    format!("http://127.0.0.1:{secondary_port}/v1"),
                )
                .env(
                    "MCP__UPSTREAMS__ANTHROPIC__BASE_URL",
                    format!("http://127.0.0.1:{secondary_port}/v1"),
                )
                .env("MCP__UPSTREAM__HEALTH_CHECK_INTERVAL_SECS", "2")
                .env("MCP__LOG__FORMAT", "json")
                .env("MCP__LOG__LEVEL", "warn")
                .env_remove("OPENAI_API_KEY")
                .env_remove("RUST_LOG"),
        ));
        processes.push(Process::start(
            "loadgen",
            &dir.0,
            Command::new(workspace_binary("mcp-loadgen"))
                .args(["run", "--target", &format!("http://127.0.0.1:{proxy_port}")])
                .env("LOADGEN_API_KEYS", DEMO_KEYS)
                .args(["--rate", RATE]),
        ));

        let am_config = substitute(
            &fs::read_to_string(root.join("deploy/alertmanager/alertmanager.yml"))
                .expect("deploy/alertmanager/alertmanager.yml"),
            &[(
                "http://mock-upstream:8081",
                format!("http://127.0.0.1:{mock_port}"),
            )],
        );
        fs::write(dir.0.join("alertmanager.yml"), am_config).expect("written");
        processes.push(Process::start(
            "alertmanager",
            &dir.0,
            Command::new(system_binary(&["alertmanager", "prometheus-alertmanager"]))
                .arg(format!(
                    "--config.file={}",
                    dir.0.join("alertmanager.yml").display()
                ))
                .arg(format!(
                    "--storage.path={}",
                    dir.0.join("am-data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
                // No cluster: it would listen on a fixed port.
                .arg("--cluster.listen-address="),
        ));

        let rules = root.join("prometheus/rules").canonicalize().expect("rules");
        let prom_config = substitute(
            &fs::read_to_string(root.join("prometheus/prometheus.yml"))
                .expect("prometheus/prometheus.yml"),
            &[
                (
                    "scrape_interval: 15s",
                    format!("scrape_interval: {INTERVAL}"),
                ),
                (
                    "evaluation_interval: 15s",
                    format!("evaluation_interval: {INTERVAL}"),
                ),
                ("rules/*.yml", format!("{}/*.yml", rules.display())),
                ("proxy:8080", format!("127.0.0.1:{proxy_port}")),
                ("alertmanager:9093", format!("127.0.0.1:{am_port}")),
                ("localhost:9090", format!("127.0.0.1:{prom_port}")),
            ],
        );
        fs::write(dir.0.join("prometheus.yml"), prom_config).expect("written");
        processes.push(Process::start(
            "prometheus",
            &dir.0,
            Command::new(system_binary(&["prometheus"]))
                .arg(format!(
                    "--config.file={}",
                    dir.0.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.0.join("prom-data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
        ));

        let stack = Self {
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client"),
            mocks: [
                format!("http://127.0.0.1:{mock_port}"),
                format!("http://127.0.0.1:{secondary_port}"),
            ],
            proxy: format!("http://127.0.0.1:{proxy_port}"),
            prometheus: format!("http://127.0.0.1:{prom_port}"),
            alertmanager: format!("http://127.0.0.1:{am_port}"),
            processes,
        };
        stack.wait_until_up().await;
        stack
    }

    async fn get_json(&self, url: &str) -> Option<Value> {
        let response = self.http.get(url).send().await.ok()?;
        response.json().await.ok()
    }

    async fn wait_until_up(&self) {
        within(Duration::from_secs(60), "every target is up", || async {
            let targets = self
                .get_json(&format!("{}/api/v1/targets", self.prometheus))
                .await;
            let active = targets
                .as_ref()
                .and_then(|t| t["data"]["activeTargets"].as_array().cloned())
                .unwrap_or_default();
            active.len() == 3 && active.iter().all(|t| t["health"] == "up")
        })
        .await;
        within(
            Duration::from_secs(30),
            "the load generator's traffic is scraped",
            || async { self.query_value("sum(mcp_server_requests_total)").await > 20.0 },
        )
        .await;
    }

    async fn query(&self, expr: &str) -> Vec<Value> {
        let url = url::Url::parse_with_params(
            &format!("{}/api/v1/query", self.prometheus),
            [("query", expr)],
        )
        .expect("a valid URL");
        let response = self.http.get(url).send().await.expect("Prometheus answers");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["status"], "success", "query `{expr}` failed: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn query_value(&self, expr: &str) -> f64 {
        self.query(expr)
            .await
            .first()
            .and_then(|s| s["value"][1].as_str().map(str::to_owned))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Alerts Prometheus holds in `state` (`pending` or `firing`), by name.
    async fn alerts(&self, state: &str) -> Vec<String> {
        let body = self
            .get_json(&format!("{}/api/v1/alerts", self.prometheus))
            .await
            .expect("Prometheus answers");
        body["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == state)
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
            .collect()
    }

    /// Alerts Alertmanager holds, as (alertname, state); an inhibited alert is held too, as
    /// `suppressed`.
    async fn alertmanager_alerts(&self) -> Vec<(String, String)> {
        let alerts = self
            .get_json(&format!("{}/api/v2/alerts", self.alertmanager))
            .await
            .unwrap_or(Value::Null);
        alerts
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let field = |v: &Value| v.as_str().unwrap_or("").to_owned();
                (
                    field(&a["labels"]["alertname"]),
                    field(&a["status"]["state"]),
                )
            })
            .collect()
    }

    /// Alerts the mock upstream received on its webhook sink, as (alertname, status).
    async fn notifications(&self) -> Vec<(String, String)> {
        let body = self
            .get_json(&format!("{}/admin/alerts", self.mocks[0]))
            .await
            .unwrap_or(Value::Null);
        body.as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let field = |v: &Value| v.as_str().unwrap_or("").to_owned();
                (field(&a["labels"]["alertname"]), field(&a["status"]))
            })
            .collect()
    }

    /// Patches (or, with `None`, resets) both mocks' fault profiles.
    async fn set_faults(&self, patch: Option<Value>) {
        for mock in &self.mocks {
            let url = format!("{mock}/admin/faults");
            let request = match &patch {
                Some(patch) => self.http.put(url).json(patch),
                None => self.http.delete(url),
            };
            let response = request.send().await.expect("the mock answers");
            assert!(response.status().is_success(), "{}", response.status());
        }
    }
}

/// Polls `check` every second until it holds; fails after `limit`.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

const HIGH_ERROR_RATE: &str = "McpServerHighErrorRate";
const FAST_BURN: &str = "McpServerErrorBudgetBurnFast";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_rate_alerts_fire_on_an_incident_and_resolve_after_it() {
    // One attempt per request: the incident's errors reach the clients, which is what the
    // error-rate alerts are about. (With retries, see the failover test below.)
    let stack = Stack::start("alerts", Some(1)).await;

    // 1. Normal traffic: nothing fires for a minute.
    let quiet_until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < quiet_until {
        let firing = stack.alerts("firing").await;
        assert!(
            firing.is_empty(),
            "alerts fired under normal traffic: {firing:?}"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    // 2. A 30% error rate on both upstreams: the error-rate alerts fire and reach
    // Alertmanager.
    stack
        .set_faults(Some(json!({"error_rate": 0.3, "error_status": 500})))
        .await;
    let fired = within(
        Duration::from_secs(300),
        "the error-rate alerts fire",
        || async {
            let firing = stack.alerts("firing").await;
            firing.iter().any(|a| a == HIGH_ERROR_RATE) && firing.iter().any(|a| a == FAST_BURN)
        },
    )
    .await;
    eprintln!("error-rate alerts firing {fired:?} after the incident started");
    let held = |alerts: &[(String, String)], name: &str| {
        alerts
            .iter()
            .any(|(n, state)| n == name && matches!(state.as_str(), "active" | "suppressed"))
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let alerts = stack.alertmanager_alerts().await;
        if held(&alerts, HIGH_ERROR_RATE) && held(&alerts, FAST_BURN) {
            break;
        }
        let firing = stack.alerts("firing").await;
        assert!(
            Instant::now() < deadline,
            "Alertmanager does not hold both alerts: it holds {alerts:?}; Prometheus fires {firing:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    within(
        Duration::from_secs(90),
        "Alertmanager's webhook delivers the page",
        || async {
            stack
                .notifications()
                .await
                .iter()
                .any(|(name, status)| name == FAST_BURN && status == "firing")
        },
    )
    .await;

    // 3. The incident ends: the plain alert resolves.
    stack.set_faults(None).await;
    let resolved = within(
        Duration::from_secs(300),
        "the high-error-rate alert resolves",
        || async {
            let active: Vec<String> =
                [stack.alerts("firing").await, stack.alerts("pending").await].concat();
            !active.iter().any(|a| a == HIGH_ERROR_RATE)
        },
    )
    .await;
    eprintln!("{HIGH_ERROR_RATE} resolved {resolved:?} after the incident ended");

    // 4. Every dashboard panel has data under the demo traffic.
    let mut empty = Vec::new();
    for query in panel_queries() {
        if stack.query(&query.expr).await.is_empty() {
            empty.push(format!("{query}: {}", query.expr));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );
    assert_eq!(stack.processes.len(), 6);
}

/// A `phase summary` line of the load generator's JSON log.
fn phase_summary(log: &str, phase: &str) -> Value {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "phase summary" && line["phase"] == phase)
        .unwrap_or_else(|| panic!("no summary of phase {phase} in:\n{log}"))
}

/// How many answers of a phase `upstream` served (`upstreams="primary=3 secondary=9"`).
fn served_by(summary: &Value, upstream: &str) -> u64 {
    summary["upstreams"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == upstream)
        .map_or(0, |(_, n)| n.parse().expect("a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_costs_clients_nothing_and_gets_its_traffic_back_when_it_heals() {
    let stack = Stack::start("failover", None).await;
    let log = stack.dir.0.join("failover.log");
    let out = fs::File::create(&log).expect("a log file");
    let status = Command::new(workspace_binary("mcp-loadgen"))
        .args(["--log-format", "json", "scenario", "failover"])
        .env("LOADGEN_API_KEYS", DEMO_KEYS)
        .args(["--target", &stack.proxy, "--mock-admin", &stack.mocks[0]])
        .args([
            "--rate",
            RATE,
            "--baseline",
            "10",
            "--incident",
            "25",
            "--recovery",
            "40",
        ])
        .stdout(out.try_clone().expect("a second handle"))
        .stderr(out)
        .status()
        .expect("the load generator runs");
    let log = fs::read_to_string(&log).expect("its log");
    assert!(status.success(), "the scenario failed:\n{log}");

    let outage = phase_summary(&log, "outage");
    assert_eq!(outage["errors"], 0, "clients saw the outage: {outage}");
    assert!(served_by(&outage, "secondary") > 100, "{outage}");
    // Only requests that straddle the start of the outage may have reached the primary.
    assert!(served_by(&outage, "primary") <= 3, "{outage}");
    let recovery = phase_summary(&log, "recovery");
    assert_eq!(recovery["errors"], 0, "{recovery}");
    assert!(
        served_by(&recovery, "primary") > 50,
        "traffic came back: {recovery}"
    );

    // What the metrics tell an operator: the breakers opened, gpt-4o fell back to
    // gpt-4o-mini, and every breaker of the primary is closed again.
    let opened = stack
        .query_value(
            r#"sum(mcp_server_circuit_breaker_transitions_total{upstream="primary",to="open"})"#,
        )
        .await;
    assert!(
        opened >= 2.0,
        "breakers of the primary that opened: {opened}"
    );
    let fell_back = stack
        .query_value(r#"sum(mcp_server_fallbacks_total{from="gpt-4o",to="gpt-4o-mini"})"#)
        .await;
    assert!(fell_back >= 1.0, "fallbacks: {fell_back}");
    within(
        Duration::from_secs(60),
        "the primary's breakers close",
        || async {
            stack
                .query_value(
                    r#"min(mcp_server_circuit_breaker_state{upstream="primary",state="closed"})"#,
                )
                .await
                == 1.0
        },
    )
    .await;
}
