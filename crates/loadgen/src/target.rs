//! The system under load: the gateway (or the mock upstream directly), addressed by its root
//! URL, or several replicas of it by theirs, each request going to the next in turn. Sends one
//! planned request, reads the answer to its last byte (a stream to its end) and reports the
//! [`Outcome`]; a failure of any kind becomes an outcome, never a panic or an error that stops
//! the traffic. Each request presents its client key ([`Credentials`]); the health probe
//! presents none, since `/health` asks for none.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use tokio::time::Instant;

use crate::keys::{ApiKey, Credentials};
use crate::mix::{Endpoint, PlannedRequest};
use crate::sse::{StreamFault, StreamWatch};
use crate::tally::Outcome;

/// How long a TCP connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one health probe may take.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Where the gateway names the upstream that served an answer (`primary`, `secondary`, ...).
pub const UPSTREAM_HEADER: HeaderName = HeaderName::from_static("x-mcp-upstream");

/// One or more gateway root URLs (replicas of one gateway), a pooled client for them, and the
/// client keys to present. Clones share the turn, so requests sent from many tasks still go
/// to each root in turn.
#[derive(Debug, Clone)]
pub struct Target {
    client: reqwest::Client,
    roots: Arc<[String]>,
    next: Arc<AtomicUsize>,
    credentials: Credentials,
}

/// A root whose `GET /health` did not answer 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhealthy {
    /// The URL probed.
    pub url: String,
    /// What went wrong.
    pub error: String,
}

impl Target {
    /// A target at `roots` (e.g. `http://127.0.0.1:8080`, or one URL per replica); each
    /// request, stream included, may take up to `request_timeout` to its last byte. An error
    /// if there is no root or a key cannot be sent.
    pub fn new(
        roots: &[String],
        request_timeout: Duration,
        keys: &[ApiKey],
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!roots.is_empty(), "no target URL");
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(request_timeout)
            .build()?;
        Ok(Self {
            client,
            roots: roots
                .iter()
                .map(|root| root.trim_end_matches('/').to_owned())
                .collect(),
            next: Arc::new(AtomicUsize::new(0)),
            credentials: Credentials::new(keys)?,
        })
    }

    /// The root URLs, without a trailing slash.
    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    /// The health URLs the loadgen waits on, one per root.
    pub fn health_urls(&self) -> Vec<String> {
        self.roots.iter().map(|root| health_url(root)).collect()
    }

    /// Probes `GET /health` of every root once: `Ok` when each answers 200, else the first
    /// that did not and what went wrong.
    pub async fn probe_health(&self) -> Result<(), Unhealthy> {
        for root in self.roots.iter() {
            let url = health_url(root);
            if let Err(error) = self.probe(&url).await {
                return Err(Unhealthy { url, error });
            }
        }
        Ok(())
    }

    async fn probe(&self, url: &str) -> Result<(), String> {
        let response = self
            .client
            .get(url)
            .timeout(HEALTH_PROBE_TIMEOUT)
            .send()
            .await
            .map_err(|error| describe(&error))?;
        match response.status().as_u16() {
            200 => Ok(()),
            status => Err(format!("answered {status}")),
        }
    }

    /// The root the next request goes to: each in turn.
    pub fn next_root(&self) -> &str {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        &self.roots[turn % self.roots.len()]
    }

    /// Sends `request` to the next root and reads the answer to its end.
    pub async fn send(&self, request: &PlannedRequest) -> Outcome {
        let started = Instant::now();
        let mut builder = self
            .client
            .post(format!("{}{}", self.next_root(), request.endpoint.path()))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(authorization) = self.credentials.header(request.credential) {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        let sent = builder.body(request.body.clone()).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(endpoint = request.endpoint.path(), error = %describe(&error), "request failed");
                return Outcome {
                    endpoint: request.endpoint,
                    status: None,
                    latency: started.elapsed(),
                    stream: None,
                    upstream: None,
                };
            }
        };
        let status = response.status().as_u16();
        // Kept as the header value (a reference-counted slice of the response head), so that
        // naming the upstream costs no allocation per request.
        let upstream = response.headers().get(UPSTREAM_HEADER).cloned();
        let is_event_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        let stream = if request.stream && status == 200 && is_event_stream {
            Some(read_stream(response, request.endpoint).await)
        } else {
            drain(response, request).await;
            None
        };
        if let Some(Err(fault)) = stream {
            tracing::debug!(endpoint = request.endpoint.path(), ?fault, "stream broke");
        }
        Outcome {
            endpoint: request.endpoint,
            status: Some(status),
            latency: started.elapsed(),
            stream,
            upstream,
        }
    }
}

fn health_url(root: &str) -> String {
    format!("{root}/health")
}

/// Reads a streamed answer to its end and judges how it ended.
async fn read_stream(response: reqwest::Response, endpoint: Endpoint) -> Result<(), StreamFault> {
    let mut watch = StreamWatch::new(endpoint);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => watch.feed(&chunk),
            Err(error) => {
                tracing::debug!(error = %describe(&error), "stream read failed");
                return Err(StreamFault::ReadFailed);
            }
        }
    }
    watch.finish().map(|_events| ())
}

/// Reads a plain answer to its last byte, without keeping it.
async fn drain(response: reqwest::Response, request: &PlannedRequest) {
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        if let Err(error) = chunk {
            // The status is already known and counted; only the latency is cut short.
            tracing::debug!(endpoint = request.endpoint.path(), error = %describe(&error), "answer read failed");
            return;
        }
    }
}

/// A reqwest error with its causes: "error sending request" alone says little, the cause
/// ("Connection refused") says what to fix.
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
