//! Building an [`AppState`] from settings, at start-up or on a reload.
//!
//! On a reload the new state takes over from the old one what must not start again: an
//! upstream whose plan and key are unchanged keeps its connection pools, its health and its
//! in-flight slots (requests still running on the old state hold the same slots); a
//! deployment that still exists, with the same breaker settings, keeps its breaker; the
//! retry budget keeps its window when its settings are unchanged. Everything else (routes,
//! prices, the policies) is the new configuration's. The metric families are the same ones,
//! rebound to the new label values.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::HeaderValue;
use bytes::Bytes;
use mcp_core::clock::Clock;
use mcp_core::metrics::{LabelSets, Metrics, label_values};
use mcp_core::openai::ModelList;
use mcp_core::resilience::{CircuitBreaker, ConcurrencyLimit, RetryBudget};
use mcp_core::upstream::{UpstreamClient, UpstreamHealth, UpstreamId, UpstreamOptions};
use secrecy::ExposeSecret;

use futures_util::FutureExt;
use mcp_core::limits::{KeyId, Limiter, MemoryLimiter, OnError, Quota, RedisLimiter, RedisOptions};

use super::{AppState, Gates, Limits, Upstream};
use crate::admission::Gate;
use crate::configuration::{
    ALL_KEYS_LABEL, GLOBAL_KEY_LABEL, OnErrorSetting, Secrets, Settings, SettingsError,
    StateBackend,
};

/// What every state of the process shares, whatever the configuration.
#[derive(Debug)]
pub struct Shared {
    pub clock: Arc<dyn Clock>,
    /// The families as first registered; each state rebinds them to its label values.
    pub metrics: Arc<Metrics>,
    pub drain: Arc<crate::shutdown::Drain>,
}

/// Settings that cannot be turned into a state.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("upstream `{name}`: {source}")]
    Upstream {
        name: String,
        #[source]
        source: mcp_core::upstream::BuildError,
    },
    #[error("the metric families could not take the new label values: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("the model list could not be rendered: {0}")]
    ModelList(#[from] serde_json::Error),
}

impl AppState {
    /// The state for `settings`, taking over what it can from `previous`.
    pub fn build(
        settings: &Settings,
        secrets: &Secrets,
        shared: &Shared,
        previous: Option<&AppState>,
    ) -> Result<Self, BuildError> {
        let routes = settings.routing_table()?;
        let plans = settings.upstream_plans(|env| secrets.key(env).is_some());
        let (keys, key_limits) = settings.key_table(secrets)?;
        let key_label = settings.metrics.key_label;
        let key_names: Vec<String> = if key_label {
            keys.names().to_vec()
        } else {
            vec![ALL_KEYS_LABEL.to_owned()]
        };
        let sets = LabelSets {
            models: label_values(routes.catalog().labels().iter().cloned()),
            upstreams: label_values(plans.iter().map(|p| p.name.clone())),
            keys: label_values(key_names.into_iter().chain([GLOBAL_KEY_LABEL.to_owned()])),
        };
        let metrics = Arc::new(shared.metrics.rebind(&sets)?);

        let mut upstreams = Vec::with_capacity(plans.len());
        for (i, plan) in plans.into_iter().enumerate() {
            let id = UpstreamId::new(i);
            let key = secrets.key(&plan.api_key_env).cloned();
            let same = |old: &&Arc<Upstream>| {
                old.plan == plan
                    && old.key.as_ref().map(ExposeSecret::expose_secret)
                        == key.as_ref().map(ExposeSecret::expose_secret)
            };
            if let Some(old) = previous.and_then(|p| p.upstreams.get(i)).filter(same) {
                upstreams.push(Arc::clone(old));
                continue;
            }
            let client = UpstreamClient::new(
                id,
                UpstreamOptions {
                    name: plan.name.clone(),
                    base_url: plan.base_url.clone(),
                    kind: plan.kind,
                    api_key: key.clone(),
                    anthropic_version: plan.anthropic_version.clone(),
                    connect_timeout: plan.connect_timeout,
                    request_timeout: plan.request_timeout,
                    pool_idle_timeout: Duration::from_secs(
                        settings.upstream.pool_idle_timeout_secs,
                    ),
                    pool_max_idle_per_host: settings.upstream.pool_max_idle_per_host,
                },
            )
            .map_err(|source| BuildError::Upstream {
                name: plan.name.clone(),
                source,
            })?;
            upstreams.push(Arc::new(Upstream {
                health: UpstreamHealth::new(
                    plan.name.clone(),
                    settings.upstream.unhealthy_after,
                    metrics.upstream.up_gauge(id),
                ),
                limit: ConcurrencyLimit::new(plan.concurrency, metrics.routing.in_flight_gauge(id)),
                stream_idle_timeout: plan.stream_idle_timeout,
                served_by: HeaderValue::from_str(&plan.name).ok(),
                client: Arc::new(client),
                key,
                plan,
            }));
        }

        let now = shared.clock.now();
        let breaker_policy = settings.routing.breaker_policy();
        let breakers = routes
            .deployments()
            .iter()
            .map(|d| {
                let upstream = &upstreams[d.upstream.index()].plan.name;
                let model = routes.catalog().label(d.model);
                let kept = previous.and_then(|p| {
                    p.routes.deployments().iter().find_map(|old| {
                        let same = p.upstreams[old.upstream.index()].plan.name == *upstream
                            && p.routes.catalog().label(old.model) == model
                            && old.upstream_model == d.upstream_model;
                        let breaker = &p.breakers[old.id.index()];
                        (same && *breaker.policy() == breaker_policy).then(|| Arc::clone(breaker))
                    })
                });
                let breaker = kept
                    .unwrap_or_else(|| Arc::new(CircuitBreaker::new(breaker_policy.clone(), now)));
                metrics
                    .routing
                    .add_deployment(d.upstream, d.model, breaker.state());
                metrics.usage.add_deployment(d.upstream, d.model);
                breaker
            })
            .collect();
        for spec in routes.catalog().specs() {
            let from = routes.catalog().resolve(&spec.id).expect("configured");
            for to in &spec.fallbacks {
                let to = routes.catalog().resolve(to).expect("validated");
                metrics.routing.add_fallback(from, to);
            }
        }
        let budget_policy = settings.routing.budget_policy();
        let budget = previous
            .map(|p| &p.budget)
            .filter(|b| *b.policy() == budget_policy)
            .map_or_else(
                || Arc::new(RetryBudget::new(budget_policy, now)),
                Arc::clone,
            );

        let owner = if upstreams.len() == 1 {
            upstreams[0].plan.name.as_str()
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
        let allowed_models = settings
            .keys
            .iter()
            .map(|k| {
                k.models.as_ref().map(|names| {
                    names
                        .iter()
                        .filter_map(|n| routes.catalog().resolve(n))
                        .collect()
                })
            })
            .collect();
        let global = settings.limits.global;
        let limiter = match settings.state.backend {
            StateBackend::Memory => Limits::Memory(Arc::new(MemoryLimiter::new(
                &key_limits,
                global.quota(),
                Arc::clone(&shared.clock),
                previous.and_then(|p| match &p.limiter {
                    Limits::Memory(m) => Some(&**m),
                    Limits::Redis(_) => None,
                }),
            ))),
            StateBackend::Redis => {
                let r = &settings.state.redis;
                let url = secrets.redis_url.as_ref().ok_or_else(|| {
                    SettingsError::invalid(
                        "state.redis.url_env",
                        format!("the environment variable `{}` is not set", r.url_env),
                    )
                })?;
                let options = RedisOptions {
                    url: url.expose_secret().to_owned(),
                    prefix: r.key_prefix.clone(),
                    timeout: Duration::from_millis(r.timeout_ms),
                    on_error: match r.on_error {
                        OnErrorSetting::FailOpen => OnError::FailOpen {
                            share: r.fail_open_share,
                        },
                        OnErrorSetting::FailClosed => OnError::FailClosed,
                    },
                };
                let previous = previous.and_then(|p| match &p.limiter {
                    Limits::Redis(r) => Some(&**r),
                    Limits::Memory(_) => None,
                });
                let redis = RedisLimiter::new(
                    options,
                    &key_limits,
                    global.quota(),
                    Arc::clone(&shared.clock),
                    Arc::clone(&metrics),
                    previous,
                )
                .map_err(|_| {
                    SettingsError::invalid("state.redis.url_env", "is not a usable Redis URL")
                })?;
                Limits::Redis(Arc::new(redis))
            }
        };
        let limits_active = global.quota() != Quota::default()
            || key_limits
                .iter()
                .any(|k| k.quota != Quota::default() || k.budget.is_some());
        let gate = |limit: Option<u32>, old: Option<&Arc<Gate>>| {
            old.filter(|g| g.limit() == limit)
                .map_or_else(|| Arc::new(Gate::new(limit)), Arc::clone)
        };
        let old_gate = |name: &str| {
            let p = previous?;
            let i = p.keys.names().iter().position(|n| n == name)?;
            p.gates.keys.get(i)
        };
        let gates = Gates {
            global: gate(
                global.concurrent_requests,
                previous.map(|p| &p.gates.global),
            ),
            keys: settings
                .keys
                .iter()
                .map(|k| gate(k.limits.concurrent_requests, old_gate(&k.name)))
                .collect(),
        };
        for (i, k) in key_limits.iter().enumerate() {
            let (Some(budget), true) = (k.budget, key_label) else {
                continue;
            };
            let id = KeyId::from_index(i);
            // Redis is not asked here: the connection is still being made (the first
            // refresh asks it).
            let remaining = match &limiter {
                Limits::Memory(memory) => Limiter::budget_remaining(&**memory, id)
                    .now_or_never()
                    .flatten(),
                Limits::Redis(redis) => redis.budget_remaining_known(id),
            }
            .unwrap_or(budget.usd);
            metrics.keys.set_budget(i, budget.usd, remaining);
        }
        let served_model = routes
            .catalog()
            .labels()
            .iter()
            .map(|label| HeaderValue::from_str(label).ok())
            .collect();
        Ok(AppState {
            served_model,
            routes,
            upstreams,
            breakers,
            retry: settings.routing.retry_policy(),
            budget,
            deadline: settings.routing.deadline(),
            clock: Arc::clone(&shared.clock),
            metrics,
            max_body_bytes: settings.server.max_body_bytes,
            body_timeout: Duration::from_secs(settings.server.body_timeout_secs),
            ready_requires_upstream: settings.server.ready_requires_upstream,
            drain: Arc::clone(&shared.drain),
            max_response_bytes: settings.upstream.max_response_bytes,
            models_body,
            keys,
            allowed_models,
            limiter,
            limits_active,
            gates,
            default_max_tokens: settings.limits.default_max_tokens,
            key_label,
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
