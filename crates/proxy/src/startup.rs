//! Building and running the gateway: settings in, a bound server out.
//!
//! [`Application::build`] binds the listener first, so the real port is known (tests bind
//! port 0), then assembles the registry, the metric families, the routing table, the
//! upstreams and the app. [`Application::run_until_stopped`] serves until a shutdown signal,
//! with a health probe per upstream running beside it.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use actix_web_prom::{ActixMetricsConfiguration, PrometheusMetricsBuilder};
use anyhow::Context;
use mcp_core::clock::{Clock, SystemClock};
use mcp_core::metrics::{
    self, BuildInfo, DURATION_BUCKETS, LabelSets, Metrics, NAMESPACE, UNMATCHED_ENDPOINT,
    label_values,
};
use prometheus::Registry;

use crate::configuration::{Secrets, Settings};
use crate::gateway::{Gateway, Loader};
use crate::middleware::ErrorAccounting;
use crate::routes::metrics::Scrape;
use crate::routes::{self, HEALTH_PATH, METRICS_PATH, READY_PATH};
use crate::shutdown::{self, Drain};
use crate::state::{AppState, Shared};

/// A gateway whose listener is bound and whose server is ready to run.
pub struct Application {
    local_addr: SocketAddr,
    server: Server,
    /// `/metrics`, `/health` and `/ready` on a listener of their own, when configured.
    admin: Option<(SocketAddr, Server)>,
    gateway: Arc<Gateway>,
    drain: Arc<Drain>,
    probe_interval: Option<Duration>,
    drain_delay: Duration,
    grace: Duration,
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
        let registry = Registry::new();
        // Registered with no configured label values; every state rebinds them to its own.
        let empty = LabelSets {
            models: label_values::<String>([]),
            upstreams: label_values::<String>([]),
            keys: label_values::<String>([]),
        };
        let metrics = Arc::new(Metrics::register(&registry, &empty, &build_info())?);
        let drain = Arc::new(Drain::default());
        let shared = Shared {
            clock,
            metrics: metrics.clone(),
            drain: drain.clone(),
        };
        let state = AppState::build(&settings, &secrets, &shared, None)?;
        for upstream in &state.upstreams {
            let plan = &upstream.plan;
            tracing::info!(
                upstream = %plan.name,
                kind = plan.kind.as_str(),
                base_url = %plan.base_url,
                api_key = if secrets.key(&plan.api_key_env).is_some() { "set" } else { "not set" },
                max_in_flight = plan.concurrency.max_in_flight,
                "upstream"
            );
        }
        if state.keys.is_empty() {
            tracing::warn!(
                "no client keys are configured: anyone who can reach the gateway can use it"
            );
        } else {
            tracing::info!(
                keys = state.keys.len(),
                spend = state.limiter.kept_in(),
                "client keys required"
            );
        }
        let (upstreams, deployments) = (state.upstreams.len(), state.routes.deployments().len());
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let probe_interval = match settings.upstream.health_check_interval_secs {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        };
        let server_settings = settings.server.clone();
        let models = settings.models.len();
        let gateway = Arc::new(Gateway::new(state, shared, settings));
        let app_data = web::Data::from(gateway.clone());

        // Built once and cloned into every worker, so that all workers share one registry.
        let scrape = web::Data::new(Scrape {
            registry: registry.clone(),
            token: secrets.metrics_token.clone(),
        });
        let http_metrics = PrometheusMetricsBuilder::new(NAMESPACE)
            .registry(registry)
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
        let error_accounting = ErrorAccounting::new(metrics, server_settings.max_header_bytes);

        let serve_metrics = server_settings.admin_listen.is_none();
        let (main_scrape, main_data) = (scrape.clone(), app_data.clone());
        let grace = Duration::from_secs(server_settings.shutdown_timeout_secs);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(main_data.clone())
                .app_data(main_scrape.clone())
                .configure(|cfg| routes::configure(cfg, serve_metrics))
                // Inside actix-web-prom, so that what it turns into responses is counted there.
                .wrap(error_accounting.clone())
                .wrap(http_metrics.clone())
        })
        .workers(workers)
        .keep_alive(Duration::from_secs(server_settings.keep_alive_secs))
        // A client that closes its side is gone: stop its request, and with it the upstream
        // attempt, instead of waiting for an answer nobody will read.
        .h1_allow_half_closed(false)
        // Events and small answers leave at once instead of waiting for the client's delayed ACK.
        .tcp_nodelay(true)
        .client_request_timeout(Duration::from_millis(
            server_settings.client_header_timeout_ms,
        ))
        .max_connections((server_settings.max_connections / workers).max(1))
        // Signals are the drain's (see `shutdown`); actix's own handling would refuse new
        // connections at once. Its timeout is a last resort past the grace period, which
        // ends open streams with an error event first.
        .disable_signals()
        .shutdown_timeout(grace.as_secs() + 2)
        .listen(listener)?
        .run();
        let admin = match server_settings.admin_listen {
            None => None,
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .with_context(|| format!("could not listen on {address} (admin)"))?;
                let bound = listener.local_addr()?;
                let admin = HttpServer::new(move || {
                    App::new()
                        .app_data(app_data.clone())
                        .app_data(scrape.clone())
                        .route(METRICS_PATH, web::get().to(routes::metrics::scrape))
                        .route(HEALTH_PATH, web::get().to(routes::health))
                        .route(READY_PATH, web::get().to(routes::ready))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)?
                .run();
                tracing::info!(listen = %bound, "admin listener: /metrics, /health, /ready");
                Some((bound, admin))
            }
        };

        tracing::info!(
            listen = %local_addr,
            upstreams,
            models,
            deployments,
            workers,
            "mcp-server ready"
        );
        Ok(Self {
            local_addr,
            server,
            admin,
            gateway,
            drain,
            probe_interval,
            drain_delay: Duration::from_secs(server_settings.drain_delay_secs),
            grace,
        })
    }

    /// The admin listener's address, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(address, _)| *address)
    }

    /// The configuration in force, and reloading it.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.clone()
    }

    /// Where a SIGHUP reads the settings again from.
    pub fn reload_from(self, loader: Loader) -> Self {
        self.gateway.set_loader(loader);
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Serves until the process gets SIGINT or SIGTERM, then drains in-flight requests;
    /// a SIGHUP reloads the configuration meanwhile.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let probe = self
            .probe_interval
            .map(|interval| tokio::spawn(probe_upstreams(self.gateway.clone(), interval)));
        let reloads = tokio::spawn(reload_on_hangup(self.gateway.clone()));
        let budgets = tokio::spawn(refresh_budgets(self.gateway.clone()));
        let drain = tokio::spawn(shutdown::on_signal(
            self.drain.clone(),
            self.server.handle(),
            self.drain_delay,
            self.grace,
        ));
        let admin = self.admin.map(|(_, server)| {
            let handle = server.handle();
            (tokio::spawn(server), handle)
        });
        let result = self.server.await;
        drain.abort();
        if let Some((task, handle)) = admin {
            handle.stop(true).await;
            let _ = task.await;
        }
        if let Some(probe) = probe {
            probe.abort();
        }
        reloads.abort();
        budgets.abort();
        result
    }
}

/// Keeps each key's budget gauge true when no request settles: a new period starts the
/// budget again whether or not the key is used. The first refresh comes a second after the
/// start, once a shared store's connection is made.
async fn refresh_budgets(gateway: Arc<Gateway>) {
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(30),
    );
    loop {
        ticks.tick().await;
        gateway.current().refresh_budget_gauges().await;
    }
}

/// Reloads the configuration on every SIGHUP.
async fn reload_on_hangup(gateway: Arc<Gateway>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("SIGHUP cannot be handled: configuration reloads are off");
        return;
    };
    while hangups.recv().await.is_some() {
        // Reading and building are quick and synchronous; the result is logged and counted.
        let _ = gateway.reload();
    }
}

/// Asks every upstream of the configuration in force whether it is up, every `interval`,
/// feeding its health state.
async fn probe_upstreams(gateway: Arc<Gateway>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let state = gateway.current();
        let probes = state.upstreams.iter().map(|upstream| async move {
            let timeout = upstream.client.connect_timeout() + Duration::from_secs(5);
            match upstream.client.probe(timeout).await {
                Ok(()) => upstream.health.record_success(),
                Err(e) => {
                    tracing::debug!(upstream = upstream.client.name(), error = %e, "upstream probe failed");
                    upstream.health.record_failure();
                }
            }
        });
        futures_util::future::join_all(probes).await;
    }
}

fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        revision: option_env!("MCP_REVISION").unwrap_or("unknown").to_owned(),
    }
}
