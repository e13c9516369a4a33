//! Building and running the gateway: settings in, a bound server out.
//!
//! [`Application::build`] binds the listener first, so the real port is known (tests bind
//! port 0), then assembles the registry, the metric families, the upstream client and the
//! app. [`Application::run_until_stopped`] serves until a shutdown signal, with the upstream
//! health probe running beside it.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use actix_web_prom::{ActixMetricsConfiguration, PrometheusMetricsBuilder};
use anyhow::Context;
use bytes::Bytes;
use mcp_core::ModelCatalog;
use mcp_core::metrics::{
    self, BuildInfo, DURATION_BUCKETS, LabelSets, Metrics, NAMESPACE, UNMATCHED_ENDPOINT,
    label_values,
};
use mcp_core::openai::ModelList;
use mcp_core::upstream::{UpstreamClient, UpstreamHealth, UpstreamId, UpstreamOptions};
use prometheus::Registry;

use crate::configuration::{Secrets, Settings};
use crate::middleware::ErrorAccounting;
use crate::routes::{self, HEALTH_PATH, METRICS_PATH, READY_PATH};
use crate::state::AppState;

/// A gateway whose listener is bound and whose server is ready to run.
pub struct Application {
    local_addr: SocketAddr,
    server: Server,
    upstream: Arc<UpstreamClient>,
    probe_interval: Option<Duration>,
    probe_timeout: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Binds `server.listen` and builds the gateway.
    pub fn build(settings: Settings, secrets: Secrets) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.server.listen)
            .with_context(|| format!("could not listen on {}", settings.server.listen))?;
        Self::build_on(listener, settings, secrets)
    }

    /// Builds the gateway on a listener bound by the caller.
    pub fn build_on(
        listener: TcpListener,
        settings: Settings,
        secrets: Secrets,
    ) -> anyhow::Result<Self> {
        let local_addr = listener.local_addr()?;
        let catalog = ModelCatalog::new(settings.models.clone())?;
        let has_key = secrets.upstream_api_key.is_some();
        let (base_url, upstream_name) = settings.upstream.resolve(has_key);

        let registry = Registry::new();
        let sets = LabelSets {
            models: label_values(catalog.labels().iter().cloned()),
            upstreams: label_values([upstream_name.clone()]),
        };
        let metrics = Arc::new(Metrics::register(&registry, &sets, &build_info())?);

        let upstream_id = UpstreamId::new(0);
        let health = UpstreamHealth::new(
            upstream_name.clone(),
            settings.upstream.unhealthy_after,
            metrics.upstream.up_gauge(upstream_id),
        );
        let upstream = Arc::new(UpstreamClient::new(
            upstream_id,
            UpstreamOptions {
                name: upstream_name.clone(),
                base_url: base_url.clone(),
                api_key: secrets.upstream_api_key,
                connect_timeout: settings.upstream.connect_timeout(),
                request_timeout: settings.upstream.request_timeout(),
                pool_idle_timeout: Duration::from_secs(settings.upstream.pool_idle_timeout_secs),
                pool_max_idle_per_host: settings.upstream.pool_max_idle_per_host,
                unhealthy_after: settings.upstream.unhealthy_after,
            },
            health,
        )?);

        let models_body = Bytes::from(serde_json::to_vec(&ModelList::new(
            catalog.specs().iter().map(|s| s.id.as_str()),
            &upstream_name,
            unix_now(),
        ))?);
        let state = web::Data::new(AppState {
            catalog,
            upstream: upstream.clone(),
            metrics: metrics.clone(),
            max_body_bytes: settings.server.max_body_bytes,
            stream_idle_timeout: settings.upstream.stream_idle_timeout(),
            max_response_bytes: settings.upstream.max_response_bytes,
            models_body,
        });

        // Built once and cloned into every worker, so that all workers share one registry.
        let http_metrics = PrometheusMetricsBuilder::new(NAMESPACE)
            .registry(registry)
            .endpoint(METRICS_PATH)
            .buckets(DURATION_BUCKETS)
            .mask_unmatched_patterns(UNMATCHED_ENDPOINT)
            .exclude(METRICS_PATH)
            .exclude(HEALTH_PATH)
            .exclude(READY_PATH)
            .metrics_configuration(
                ActixMetricsConfiguration::default()
                    .http_requests_total_name(metrics::REQUESTS_TOTAL)
                    .http_requests_duration_seconds_name(metrics::REQUEST_DURATION_SECONDS),
            )
            .build()
            .map_err(|e| anyhow::anyhow!("could not build the HTTP metrics: {e}"))?;
        let error_accounting = ErrorAccounting::new(metrics);

        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(routes::configure)
                // Inside actix-web-prom, so that what it turns into responses is counted there.
                .wrap(error_accounting.clone())
                .wrap(http_metrics.clone())
        })
        .workers(workers)
        .keep_alive(Duration::from_secs(settings.server.keep_alive_secs))
        // A client that closes its side is gone: stop its request, and with it the upstream
        // attempt, instead of waiting for an answer nobody will read.
        .h1_allow_half_closed(false)
        // Events and small answers leave at once instead of waiting for the client's delayed ACK.
        .tcp_nodelay(true)
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .listen(listener)?
        .run();

        tracing::info!(
            listen = %local_addr,
            upstream = %upstream_name,
            base_url = %base_url,
            api_key = if has_key { "set" } else { "not set" },
            models = settings.models.len(),
            workers,
            "mcp-server ready"
        );
        let probe_interval = match settings.upstream.health_check_interval_secs {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        };
        Ok(Self {
            local_addr,
            server,
            upstream,
            probe_interval,
            probe_timeout: settings.upstream.connect_timeout() + Duration::from_secs(5),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Serves until the process gets SIGINT or SIGTERM, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let probe = self.probe_interval.map(|interval| {
            tokio::spawn(probe_upstream(
                self.upstream.clone(),
                interval,
                self.probe_timeout,
            ))
        });
        let result = self.server.await;
        if let Some(probe) = probe {
            probe.abort();
        }
        result
    }
}

/// Asks the upstream whether it is up, every `interval`, feeding its health state.
async fn probe_upstream(upstream: Arc<UpstreamClient>, interval: Duration, timeout: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match upstream.probe(timeout).await {
            Ok(()) => upstream.health().record_success(),
            Err(e) => {
                tracing::debug!(upstream = upstream.name(), error = %e, "upstream probe failed");
                upstream.health().record_failure();
            }
        }
    }
}

fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        revision: option_env!("MCP_REVISION").unwrap_or("unknown").to_owned(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
