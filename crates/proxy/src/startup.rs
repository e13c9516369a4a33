//! Building and running the gateway: settings in, a bound server out.
//!
//! [`Application::build`] binds the listener first, so the real port is known (tests bind
//! port 0), then assembles the registry, the metric families, the routing table, the
//! upstreams and the app. [`Application::run_until_stopped`] serves until a shutdown signal,
//! with a health probe per upstream running beside it.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use actix_web_prom::{ActixMetricsConfiguration, PrometheusMetricsBuilder};
use anyhow::Context;
use bytes::Bytes;
use mcp_core::clock::{Clock, SystemClock};
use mcp_core::metrics::{
    self, BuildInfo, DURATION_BUCKETS, LabelSets, Metrics, NAMESPACE, UNMATCHED_ENDPOINT,
    label_values,
};
use mcp_core::openai::ModelList;
use mcp_core::resilience::{CircuitBreaker, ConcurrencyLimit, RetryBudget};
use mcp_core::upstream::{UpstreamClient, UpstreamHealth, UpstreamId, UpstreamOptions};
use prometheus::Registry;

use crate::configuration::{Secrets, Settings};
use crate::middleware::ErrorAccounting;
use crate::routes::{self, HEALTH_PATH, METRICS_PATH, READY_PATH};
use crate::state::{AppState, Upstream};

/// A gateway whose listener is bound and whose server is ready to run.
pub struct Application {
    local_addr: SocketAddr,
    server: Server,
    state: web::Data<AppState>,
    probe_interval: Option<Duration>,
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
        Self::build_with_clock(listener, settings, secrets, Arc::new(SystemClock))
    }

    /// Builds the gateway with the clock its policies read (breaker cool-downs, the retry
    /// budget, waits between attempts); tests pass a manual one.
    pub fn build_with_clock(
        listener: TcpListener,
        settings: Settings,
        secrets: Secrets,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let local_addr = listener.local_addr()?;
        let routes = settings.routing_table()?;
        let plans = settings.upstream_plans(|env| secrets.key(env).is_some());

        let registry = Registry::new();
        let sets = LabelSets {
            models: label_values(routes.catalog().labels().iter().cloned()),
            upstreams: label_values(plans.iter().map(|p| p.name.clone())),
        };
        let metrics = Arc::new(Metrics::register(&registry, &sets, &build_info())?);

        let mut upstreams = Vec::with_capacity(plans.len());
        for (i, plan) in plans.iter().enumerate() {
            let id = UpstreamId::new(i);
            let client = UpstreamClient::new(
                id,
                UpstreamOptions {
                    name: plan.name.clone(),
                    base_url: plan.base_url.clone(),
                    kind: plan.kind,
                    api_key: secrets.key(&plan.api_key_env).cloned(),
                    anthropic_version: plan.anthropic_version.clone(),
                    connect_timeout: plan.connect_timeout,
                    request_timeout: plan.request_timeout,
                    pool_idle_timeout: Duration::from_secs(
                        settings.upstream.pool_idle_timeout_secs,
                    ),
                    pool_max_idle_per_host: settings.upstream.pool_max_idle_per_host,
                },
            )
            .with_context(|| format!("upstream `{}`", plan.name))?;
            upstreams.push(Upstream {
                client: Arc::new(client),
                health: UpstreamHealth::new(
                    plan.name.clone(),
                    settings.upstream.unhealthy_after,
                    metrics.upstream.up_gauge(id),
                ),
                limit: ConcurrencyLimit::new(plan.concurrency, metrics.routing.in_flight_gauge(id)),
                stream_idle_timeout: plan.stream_idle_timeout,
            });
        }
        let now = clock.now();
        let breaker_policy = settings.routing.breaker_policy();
        let breakers = routes
            .deployments()
            .iter()
            .map(|d| {
                metrics.routing.add_deployment(d.upstream, d.model);
                metrics.usage.add_deployment(d.upstream, d.model);
                CircuitBreaker::new(breaker_policy.clone(), now)
            })
            .collect();
        for spec in routes.catalog().specs() {
            let from = routes.catalog().resolve(&spec.id).expect("configured");
            for to in &spec.fallbacks {
                let to = routes.catalog().resolve(to).expect("validated");
                metrics.routing.add_fallback(from, to);
            }
        }

        let owner = if plans.len() == 1 {
            plans[0].name.as_str()
        } else {
            "mcp-server"
        };
        let names = routes
            .catalog()
            .specs()
            .iter()
            .flat_map(|s| std::iter::once(&s.id).chain(&s.aliases))
            .map(String::as_str);
        let models_body = Bytes::from(serde_json::to_vec(&ModelList::new(
            names,
            owner,
            unix_now(),
        ))?);
        for plan in &plans {
            tracing::info!(
                upstream = %plan.name,
                kind = plan.kind.as_str(),
                base_url = %plan.base_url,
                api_key = if secrets.key(&plan.api_key_env).is_some() { "set" } else { "not set" },
                max_in_flight = plan.concurrency.max_in_flight,
                "upstream"
            );
        }
        let deployments = routes.deployments().len();
        let state = web::Data::new(AppState {
            routes,
            upstreams,
            breakers,
            retry: settings.routing.retry_policy(),
            budget: RetryBudget::new(settings.routing.budget_policy(), now),
            deadline: settings.routing.deadline(),
            clock,
            metrics: metrics.clone(),
            max_body_bytes: settings.server.max_body_bytes,
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
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
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
            upstreams = plans.len(),
            models = settings.models.len(),
            deployments,
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
            state,
            probe_interval,
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
        let probes: Vec<_> = match self.probe_interval {
            None => Vec::new(),
            Some(interval) => (0..self.state.upstreams.len())
                .map(|i| {
                    tokio::spawn(probe_upstream(
                        self.state.clone().into_inner(),
                        UpstreamId::new(i),
                        interval,
                    ))
                })
                .collect(),
        };
        let result = self.server.await;
        for probe in probes {
            probe.abort();
        }
        result
    }
}

/// Asks an upstream whether it is up, every `interval`, feeding its health state.
async fn probe_upstream(state: Arc<AppState>, id: UpstreamId, interval: Duration) {
    let upstream = state.upstream(id);
    let timeout = upstream.client.connect_timeout() + Duration::from_secs(5);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match upstream.client.probe(timeout).await {
            Ok(()) => upstream.health.record_success(),
            Err(e) => {
                tracing::debug!(upstream = upstream.client.name(), error = %e, "upstream probe failed");
                upstream.health.record_failure();
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
