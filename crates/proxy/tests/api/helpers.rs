//! Spawning the gateway and a real upstream stub on port 0, and typed requests against them.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_core::clock::ManualClock;
use mcp_core::upstream::UpstreamKind;
use mcp_core::{DeploymentSpec, ModelSpec, Pricing};
use mcp_mock_upstream::{FaultProfile, MockOptions, MockUpstream};
use mcp_proxy::Application;
use mcp_proxy::configuration::{Secrets, Settings, UpstreamEntry};
use mcp_proxy::gateway::Gateway;
use serde_json::{Value, json};

use crate::scrape::Scrape;

pub const CHAT_MODEL: &str = "gpt-4o-mini";
pub const COMPLETION_MODEL: &str = "gpt-3.5-turbo-instruct";
pub const EMBEDDING_MODEL: &str = "text-embedding-3-small";
/// The price table the tests configure for [`CHAT_MODEL`].
pub const CHAT_PRICING: Pricing = Pricing::new(0.15, 0.6);

/// A running gateway in front of running mock upstreams.
pub struct TestApp {
    pub address: String,
    /// The first mock's API root.
    pub mock_url: String,
    /// Every mock's API root, in the order of [`Spawn::upstreams`].
    pub mock_urls: Vec<String>,
    /// The clock the gateway's policies read: breaker cool-downs pass when it is advanced,
    /// and waits between attempts advance it instead of sleeping.
    pub clock: Arc<ManualClock>,
    /// The configuration in force, for reload tests.
    pub gateway: Arc<Gateway>,
    /// The admin listener's root, when `server.admin_listen` is set.
    pub admin: Option<String>,
    pub client: reqwest::Client,
}

/// What to spawn.
pub struct Spawn {
    /// The first mock's options; the others get the same seed and their instance name.
    pub mock: MockOptions,
    /// Empty: one mock, configured as the single `upstream` (the quick-start form).
    /// Otherwise one mock per name, each configured as an entry of `upstreams` under that
    /// name (and with that instance name), for the test's `models` to route over.
    pub upstreams: Vec<&'static str>,
    /// Which of `upstreams` are Anthropic-kind (the mock serves both APIs).
    pub anthropic: Vec<&'static str>,
    pub settings: Settings,
    pub secrets: Secrets,
    /// Point the gateway at a closed port instead of the mock.
    pub unreachable_upstream: bool,
    /// Point the gateway at this API root instead of the mock (see [`raw_upstream`]).
    pub upstream: Option<String>,
}

impl Default for Spawn {
    fn default() -> Self {
        let mut settings = Settings::default();
        settings.server.workers = 2;
        settings.upstream.request_timeout_secs = 10;
        settings.upstream.stream_idle_timeout_secs = 10;
        settings.upstream.health_check_interval_secs = 0;
        // A name that is not set in the test environment: no key unless a test gives one.
        settings.upstream.api_key_env = "MCP_TEST_UNSET_KEY".into();
        settings.models = vec![
            ModelSpec::new(CHAT_MODEL).with_pricing(CHAT_PRICING),
            ModelSpec::new("gpt-4o"),
            ModelSpec::new(COMPLETION_MODEL),
            ModelSpec::new(EMBEDDING_MODEL),
        ];
        // One attempt per request and breakers that never open: most tests are about what
        // one attempt does. The routing tests set their own.
        settings.routing.max_attempts = 1;
        settings.routing.breaker.consecutive_failures = 0;
        settings.routing.breaker.failure_ratio = 0.0;
        Self {
            mock: MockOptions {
                seed: Some(7),
                ..MockOptions::default()
            },
            upstreams: Vec::new(),
            anthropic: Vec::new(),
            settings,
            secrets: Secrets::default(),
            unreachable_upstream: false,
            upstream: None,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn(Spawn::default()).await
}

pub async fn spawn_with_faults(profile: FaultProfile) -> TestApp {
    let mut spawn_options = Spawn::default();
    spawn_options.mock.profile = profile;
    spawn(spawn_options).await
}

pub async fn spawn(mut options: Spawn) -> TestApp {
    let names = if options.upstreams.is_empty() {
        vec!["mock"]
    } else {
        options.upstreams.clone()
    };
    let mut mock_urls = Vec::new();
    for name in &names {
        let mut mock_options = options.mock.clone();
        mock_options.instance = (*name).to_owned();
        let mock = MockUpstream::bind("127.0.0.1:0".parse().unwrap(), mock_options)
            .expect("the mock binds");
        mock_urls.push(mock.base_url());
        tokio::spawn(mock.run());
    }
    let mock_url = mock_urls[0].clone();
    if options.upstreams.is_empty() {
        let upstream = if let Some(upstream) = options.upstream.take() {
            upstream
        } else if options.unreachable_upstream {
            closed_port_url()
        } else {
            mock_url.clone()
        };
        options.settings.upstream.base_url = Some(upstream.parse().unwrap());
    } else {
        options.settings.upstreams = names
            .iter()
            .zip(&mock_urls)
            .map(|(name, url)| UpstreamEntry {
                name: (*name).to_owned(),
                base_url: url.parse().unwrap(),
                kind: options
                    .anthropic
                    .contains(name)
                    .then_some(UpstreamKind::Anthropic),
                anthropic_version: None,
                api_key_env: None,
                connect_timeout_ms: None,
                request_timeout_secs: None,
                stream_idle_timeout_secs: None,
                max_in_flight: None,
                queue: None,
            })
            .collect();
    }
    let clock = Arc::new(ManualClock::new());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app =
        Application::build_with_clock(listener, options.settings, options.secrets, clock.clone())
            .expect("the gateway builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let gateway = app.gateway();
    let admin = app.admin_addr().map(|a| format!("http://{a}"));
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        mock_url,
        mock_urls,
        clock,
        gateway,
        admin,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    }
}

/// An API root on a port nothing listens on.
pub fn closed_port_url() -> String {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    format!("http://127.0.0.1:{port}/v1")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("the gateway answers")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &'static [u8],
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the gateway answers")
    }

    /// POSTs `body` with extra request headers.
    pub async fn post_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("the gateway answers")
    }

    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        self.post_json("/v1/chat/completions", body).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the gateway answers")
    }

    pub async fn scrape(&self) -> Scrape {
        let response = self.get("/metrics").await;
        assert_eq!(response.status(), 200);
        Scrape::parse(response.text().await.unwrap())
    }

    /// Merges `patch` into the first mock's fault profile.
    pub async fn set_faults(&self, patch: Value) {
        self.set_faults_of(0, patch).await;
    }

    /// Merges `patch` into the `index`-th mock's fault profile.
    pub async fn set_faults_of(&self, index: usize, patch: Value) {
        let admin = self.mock_urls[index].trim_end_matches("/v1").to_owned() + "/admin/faults";
        let response = self.client.put(admin).json(&patch).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    pub async fn mock_stats(&self) -> Value {
        self.mock_stats_of(0).await
    }

    pub async fn mock_stats_of(&self, index: usize) -> Value {
        let url = self.mock_urls[index].trim_end_matches("/v1").to_owned() + "/admin/stats";
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Sends `body` straight to the mock, bypassing the gateway.
    pub async fn direct(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{}", self.mock_url, path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Scrapes until `check` holds, or fails after `within`.
    pub async fn eventually<F>(&self, within: Duration, what: &str, check: F) -> Scrape
    where
        F: Fn(&Scrape) -> bool,
    {
        let deadline = Instant::now() + within;
        loop {
            let scrape = self.scrape().await;
            if check(&scrape) {
                // A scrape reads the families one after another, not at one instant: a
                // request settling meanwhile can show in a family read late and not in one
                // read early. What held is complete by now; read it again, whole.
                return self.scrape().await;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {what}\n{}",
                scrape.text
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Polls an async condition until it holds, or fails after `within`.
pub async fn wait_until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A deployment on `upstream`, under the model's own name.
pub fn deployment(upstream: &str, weight: u32) -> DeploymentSpec {
    DeploymentSpec {
        upstream: upstream.into(),
        model: None,
        weight,
    }
}

/// A priced model served by `deployments`.
pub fn model(id: &str, deployments: Vec<DeploymentSpec>, fallbacks: &[&str]) -> ModelSpec {
    let mut spec = ModelSpec::new(id).with_pricing(CHAT_PRICING);
    spec.deployments = deployments;
    spec.fallbacks = fallbacks.iter().map(|f| (*f).to_owned()).collect();
    spec
}

pub fn chat_body(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say something about the gateway."}],
        "max_tokens": 20
    })
}

/// An upstream stub below HTTP libraries, for answers the mock does not give: it answers every
/// request 200 with `content_type` and `Transfer-Encoding: chunked`, sends each of `chunks` as
/// one HTTP chunk (and one TCP write), ends the body, and keeps the connection. Returns its API
/// root.
pub async fn raw_upstream(content_type: &'static str, chunks: Vec<Vec<u8>>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let chunks = chunks.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    // One request at a time: read the head, then the body it announces.
                    let complete = request_length(&request);
                    if let Some(length) = complete {
                        request.drain(..length);
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n"
                        );
                        if socket.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        for chunk in &chunks {
                            let frame =
                                [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"]
                                    .concat();
                            if socket.write_all(&frame).await.is_err() {
                                return;
                            }
                        }
                        if socket.write_all(b"0\r\n\r\n").await.is_err() {
                            return;
                        }
                        continue;
                    }
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    root
}

/// The length of the first complete request in `buf` (head and `content-length` body).
fn request_length(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let body = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    (buf.len() >= head_end + body).then_some(head_end + body)
}
