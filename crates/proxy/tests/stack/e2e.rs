//! The whole stack, natively: the mock upstream, the gateway and the load generator as
//! processes of the built binaries, real Prometheus and Alertmanager (the distribution's
//! packages) with the repository's configuration and rule files. The only differences from
//! the compose stack are host names mapped to local ports and the global scrape and
//! evaluation intervals shortened; the rule files are used as they are. [`Stack`] also runs
//! what `docker-compose.replicas.yml` adds (a second gateway replica, and the scrape list of
//! both) and a `redis-server` for the gateways' shared limits, as `replicas.rs` does; the
//! tests here run the single gateway with its limits in memory.
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
pub(crate) const DEMO_KEYS: &str = "sk-mcp-demo-team,sk-mcp-demo-batch";
/// Demo traffic, requests per second (spread over the gateway replicas).
const RATE: &str = "20";
/// The compose services of the gateway replicas, in order: `proxy` in docker-compose.yml,
/// `proxy-2` in docker-compose.replicas.yml.
const GATEWAYS: [&str; 2] = ["proxy", "proxy-2"];

pub(crate) fn repo_root() -> PathBuf {
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

/// A child process that is killed when the test ends (or when dropped earlier), however it
/// ends. Its output goes to a log file, shown when the test fails.
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
pub(crate) fn substitute(text: &str, replacements: &[(&str, String)]) -> String {
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

/// What a [`Stack`] runs besides the shipped stack's one gateway with its limits in memory.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    replicas: usize,
    redis: bool,
    settings: Option<String>,
    env: Vec<(String, String)>,
}

impl Options {
    /// The compose stack: one gateway, the shipped settings.
    pub(crate) fn new() -> Self {
        Self {
            replicas: 1,
            redis: false,
            settings: None,
            env: Vec::new(),
        }
    }

    /// Gateway processes with the same settings: 1, or 2 as docker-compose.replicas.yml runs
    /// them (Prometheus then scrapes both with its list, and the load generator sends each
    /// request to the next in turn).
    pub(crate) fn replicas(mut self, replicas: usize) -> Self {
        assert!(
            (1..=GATEWAYS.len()).contains(&replicas),
            "1 or 2 replicas, as compose runs"
        );
        self.replicas = replicas;
        self
    }

    /// A `redis-server` (as compose's `redis` service runs it) holding every gateway's
    /// limits, reservations and spend: `MCP__STATE__BACKEND=redis` and `REDIS_URL`.
    pub(crate) fn redis(mut self) -> Self {
        self.redis = true;
        self
    }

    /// The gateways' settings file, in place of deploy/mcp-server.yaml.
    pub(crate) fn settings(mut self, yaml: String) -> Self {
        self.settings = Some(yaml);
        self
    }

    /// A variable in every gateway's environment (`MCP__...` overrides a setting).
    pub(crate) fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_owned(), value.to_string()));
        self
    }
}

/// The Redis server of a stack, on a port of its own, which a test may stop and start again
/// there; its append-only file (as compose keeps one) lives in the stack's directory.
struct Redis {
    port: u16,
    data: PathBuf,
    process: Option<Process>,
}

impl Redis {
    async fn start(dir: &Path) -> Self {
        let mut redis = Self {
            port: free_port(),
            data: dir.join("redis-data"),
            process: None,
        };
        fs::create_dir_all(&redis.data).expect("a data directory");
        redis.start_again(dir, "redis").await;
        redis
    }

    async fn start_again(&mut self, dir: &Path, name: &'static str) {
        assert!(self.process.is_none(), "Redis is running already");
        // compose's `redis-server --appendonly yes`, on loopback and a port of its own.
        let process = Process::start(
            name,
            dir,
            Command::new(system_binary(&["redis-server"]))
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--appendonly", "yes", "--save", ""])
                .arg("--dir")
                .arg(&self.data),
        );
        self.process = Some(process);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "Redis did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

pub(crate) struct Stack {
    dir: TempDir,
    pub(crate) http: reqwest::Client,
    /// The two mocks' roots, primary first (the primary also takes Alertmanager's webhook).
    mocks: [String; 2],
    /// The gateway replicas' roots, `proxy` first.
    pub(crate) proxies: Vec<String>,
    pub(crate) prometheus: String,
    alertmanager: String,
    redis: Option<Redis>,
    // Declared last: dropped (killed) after the fields above are no longer needed.
    processes: Vec<Process>,
}

impl Stack {
    /// The stack with the shipped settings and what `options` adds.
    pub(crate) async fn start(name: &str, options: Options) -> Self {
        let root = repo_root();
        let dir = TempDir::new(name);
        let (mock_port, secondary_port, prom_port, am_port) =
            (free_port(), free_port(), free_port(), free_port());
        let proxy_ports: Vec<u16> = (0..options.replicas).map(|_| free_port()).collect();
        let mut processes = Vec::new();
        let redis = match options.redis {
            true => Some(Redis::start(&dir.0).await),
            false => None,
        };

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
        let settings = match &options.settings {
            Some(yaml) => {
                let path = dir.0.join("mcp-server.yaml");
                fs::write(&path, yaml).expect("written");
                path
            }
            None => root.join("deploy/mcp-server.yaml"),
        };
        for (name, port) in GATEWAYS.into_iter().zip(&proxy_ports) {
            let mut proxy = Command::new(env!("CARGO_BIN_EXE_mcp-proxy"));
            proxy
                .arg("--config")
                .arg(&settings)
                .args(["--listen", &format!("127.0.0.1:{port}")])
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
                .env_remove("REDIS_URL")
                .env_remove("RUST_LOG");
            if let Some(redis) = &redis {
                // As compose sets them.
                proxy
                    .env("MCP__STATE__BACKEND", "redis")
                    .env("REDIS_URL", redis.url());
            }
            for (key, value) in &options.env {
                proxy.env(key, value);
            }
            processes.push(Process::start(name, &dir.0, &mut proxy));
        }
        let proxies: Vec<String> = proxy_ports
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}"))
            .collect();
        processes.push(Process::start(
            "loadgen",
            &dir.0,
            Command::new(workspace_binary("mcp-loadgen"))
                // Each request to the next replica, as docker-compose.replicas.yml has it.
                .args(["run", "--target", &proxies.join(",")])
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

        // The gateways Prometheus scrapes: the list compose mounts for this many replicas,
        // each replica's service name mapped to its port.
        let targets_file = match options.replicas {
            1 => "prometheus/targets/mcp-server.yml",
            _ => "prometheus/targets/replicas.yml",
        };
        let gateway_addresses = [
            ("proxy:8080", proxy_ports[0]),
            ("proxy-2:8083", proxy_ports.get(1).copied().unwrap_or(0)),
        ];
        let targets = substitute(
            &fs::read_to_string(root.join(targets_file)).expect(targets_file),
            &gateway_addresses[..options.replicas]
                .iter()
                .map(|&(from, port)| (from, format!("127.0.0.1:{port}")))
                .collect::<Vec<_>>(),
        );
        let targets_path = dir.0.join("gateway-targets.yml");
        fs::write(&targets_path, targets).expect("written");
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
                (
                    "files: [targets/mcp-server.yml]",
                    format!("files: [{}]", targets_path.display()),
                ),
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
            proxies,
            prometheus: format!("http://127.0.0.1:{prom_port}"),
            alertmanager: format!("http://127.0.0.1:{am_port}"),
            redis,
            processes,
        };
        stack.wait_until_up().await;
        stack
    }

    /// Kills the Redis server (SIGKILL: no chance to say goodbye to its clients).
    pub(crate) fn kill_redis(&mut self) {
        let redis = self.redis.as_mut().expect("a stack with Redis");
        drop(redis.process.take().expect("Redis is running"));
    }

    /// Starts Redis again on the port it had, with its append-only file.
    pub(crate) async fn restart_redis(&mut self) {
        let redis = self.redis.as_mut().expect("a stack with Redis");
        redis.start_again(&self.dir.0, "redis-restarted").await;
    }

    pub(crate) async fn get_json(&self, url: &str) -> Option<Value> {
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
            active.len() == 2 + self.proxies.len() && active.iter().all(|t| t["health"] == "up")
        })
        .await;
        within(
            Duration::from_secs(30),
            "the load generator's traffic is scraped",
            || async { self.query_value("sum(mcp_server_requests_total)").await > 20.0 },
        )
        .await;
    }

    pub(crate) async fn query(&self, expr: &str) -> Vec<Value> {
        self.query_with(expr, &[]).await
    }

    /// `expr` evaluated at `time` (seconds since the epoch), as a rule evaluated then saw it.
    pub(crate) async fn query_at(&self, expr: &str, time: f64) -> Vec<Value> {
        self.query_with(expr, &[("time", format!("{time:.3}"))])
            .await
    }

    async fn query_with(&self, expr: &str, params: &[(&str, String)]) -> Vec<Value> {
        let url = url::Url::parse_with_params(
            &format!("{}/api/v1/query", self.prometheus),
            std::iter::once(("query", expr)).chain(params.iter().map(|(k, v)| (*k, v.as_str()))),
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
    pub(crate) async fn alerts(&self, state: &str) -> Vec<String> {
        self.alert_labels(state)
            .await
            .iter()
            .filter_map(|labels| labels["alertname"].as_str().map(str::to_owned))
            .collect()
    }

    /// The labels of each alert Prometheus holds in `state`.
    pub(crate) async fn alert_labels(&self, state: &str) -> Vec<Value> {
        let body = self
            .get_json(&format!("{}/api/v1/alerts", self.prometheus))
            .await
            .expect("Prometheus answers");
        body["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == state)
            .map(|a| a["labels"].clone())
            .collect()
    }

    /// Alerts Alertmanager holds, as (alertname, state); an inhibited alert is held too, as
    /// `suppressed`.
    pub(crate) async fn alertmanager_alerts(&self) -> Vec<(String, String)> {
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
    pub(crate) async fn set_faults(&self, patch: Option<Value>) {
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
pub(crate) async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
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

pub(crate) const HIGH_ERROR_RATE: &str = "McpServerHighErrorRate";
pub(crate) const FAST_BURN: &str = "McpServerErrorBudgetBurnFast";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_rate_alerts_fire_on_an_incident_and_resolve_after_it() {
    // One attempt per request: the incident's errors reach the clients, which is what the
    // error-rate alerts are about. (With retries, see the failover test below.)
    let stack = Stack::start(
        "alerts",
        Options::new().env("MCP__ROUTING__MAX_ATTEMPTS", 1),
    )
    .await;

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
    let stack = Stack::start("failover", Options::new()).await;
    let log = stack.dir.0.join("failover.log");
    let out = fs::File::create(&log).expect("a log file");
    let status = Command::new(workspace_binary("mcp-loadgen"))
        .args(["--log-format", "json", "scenario", "failover"])
        .env("LOADGEN_API_KEYS", DEMO_KEYS)
        .args([
            "--target",
            &stack.proxies[0],
            "--mock-admin",
            &stack.mocks[0],
        ])
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
