//! Spawning a mock upstream and a gateway on port 0, and reading what they saw.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use mcp_loadgen::traffic::TrafficConfig;
use mcp_mock_upstream::{FaultProfile, MockOptions, MockUpstream};
use mcp_proxy::Application;
use mcp_proxy::configuration::{Secrets, Settings};
use serde_json::{Value, json};

/// A running mock upstream.
pub struct Mock {
    /// Its root URL, where `/health`, `/v1/...` and `/admin/...` live.
    pub root: String,
}

impl Mock {
    pub fn spawn(profile: FaultProfile) -> Self {
        Self::spawn_on(0, profile)
    }

    pub fn spawn_on(port: u16, profile: FaultProfile) -> Self {
        let options = MockOptions {
            profile,
            seed: Some(7),
            ..MockOptions::default()
        };
        let mock = MockUpstream::bind(([127, 0, 0, 1], port).into(), options).unwrap();
        let root = format!("http://{}", mock.local_addr());
        tokio::spawn(mock.run());
        Self { root }
    }

    pub async fn stats(&self) -> Value {
        get_json(&format!("{}/admin/stats", self.root)).await
    }

    pub async fn faults(&self) -> Value {
        get_json(&format!("{}/admin/faults", self.root)).await
    }

    /// Polls the fault profile until `check` holds; fails after `within`.
    pub async fn faults_until(&self, within: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let faults = self.faults().await;
            if check(&faults) {
                return faults;
            }
            assert!(
                Instant::now() < deadline,
                "the faults never matched: {faults}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A running gateway in front of a mock upstream.
pub struct Gateway {
    pub root: String,
    pub mock: Mock,
}

impl Gateway {
    pub fn spawn() -> Self {
        Self::spawn_with(FaultProfile::default())
    }

    pub fn spawn_with(profile: FaultProfile) -> Self {
        Self::start(profile, json!([]), Secrets::default())
    }

    /// A gateway that asks for client keys: `keys` is its `keys` section, and `secrets` holds
    /// the secrets its `key_env`s name.
    pub fn spawn_with_keys(keys: Value, secrets: Secrets) -> Self {
        Self::start(FaultProfile::default(), keys, secrets)
    }

    fn start(profile: FaultProfile, keys: Value, secrets: Secrets) -> Self {
        let mock = Mock::spawn(profile);
        let mut settings: Settings = serde_json::from_value(json!({
            "server": {"workers": 2},
            "upstream": {
                "request_timeout_secs": 10,
                "stream_idle_timeout_secs": 10,
                "health_check_interval_secs": 0,
                // Not set in the test environment: the gateway sends no key.
                "api_key_env": "MCP_LOADGEN_TEST_UNSET_KEY"
            },
            // One attempt per request: the scenarios' injected errors must reach the clients.
            "routing": {"max_attempts": 1},
            "models": [
                {"id": "gpt-4o-mini"},
                {"id": "gpt-4o"},
                {"id": "gpt-3.5-turbo-instruct"},
                {"id": "text-embedding-3-small"}
            ],
            "keys": keys
        }))
        .unwrap();
        settings.upstream.base_url = Some(format!("{}/v1", mock.root).parse().unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let app = Application::build_on(listener, settings, secrets).unwrap();
        let root = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        Self { root, mock }
    }

    pub async fn scrape(&self) -> Scrape {
        let text = reqwest::get(format!("{}/metrics", self.root))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        Scrape(text)
    }
}

/// One `/metrics` exposition.
pub struct Scrape(pub String);

impl Scrape {
    /// The sum of the samples of `name` whose labels include every pair in `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (series_name, series_labels) = match series.split_once('{') {
                    Some((n, rest)) => (n, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let matches = series_name == name
                    && labels.iter().all(|(k, v)| {
                        series_labels
                            .split(',')
                            .any(|p| p == format!("{k}=\"{v}\""))
                    });
                matches.then(|| value.parse::<f64>().unwrap())
            })
            .sum()
    }
}

/// A port on which nothing listens.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Traffic for tests: seeded, reporting rarely, short timeouts.
pub fn traffic(target: &str, rate: f64, duration: Duration) -> TrafficConfig {
    TrafficConfig {
        rate,
        duration: Some(duration),
        seed: Some(1),
        request_timeout: Duration::from_secs(10),
        health_wait: Duration::from_secs(10),
        ..TrafficConfig::new(target)
    }
}

pub async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Polls until `check` holds; fails after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
