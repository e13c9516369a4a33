//! What every worker shares: the routing table and each deployment's breaker, the upstreams
//! (client, health, slots), the retry policy and budget, the clock policies read, the metric
//! families and the request limits.
//!
//! An [`AppState`] is one configuration's: built at start-up and again on every reload
//! ([`build`]), when it takes over from the old one whatever has state that must outlive a
//! reload (upstream pools and slots, breakers, the retry budget). A request keeps the state
//! it started with until it ends; [`crate::gateway::Gateway`] hands out the current one.

mod build;

pub use build::{BuildError, Shared};

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderValue;
use bytes::Bytes;
use mcp_core::ModelId;
use mcp_core::clock::Clock;
use mcp_core::limits::{KeyTable, Limiter, MemoryLimiter, RedisLimiter, Scope};
use mcp_core::metrics::Metrics;
use mcp_core::resilience::{
    BreakerState, CircuitBreaker, ConcurrencyLimit, Permit, Refusal, RetryBudget, RetryPolicy,
};
use mcp_core::routing::{DeploymentId, RoutingTable};
use mcp_core::upstream::{Outcome, UpstreamClient, UpstreamHealth, UpstreamId};
use secrecy::SecretString;

use crate::admission::Gate;
use crate::configuration::UpstreamPlan;
use crate::shutdown::Drain;

#[derive(Debug)]
pub struct AppState {
    pub routes: RoutingTable,
    /// By `UpstreamId`.
    pub upstreams: Vec<Arc<Upstream>>,
    /// By `DeploymentId`.
    pub breakers: Vec<Arc<CircuitBreaker>>,
    pub retry: RetryPolicy,
    pub budget: Arc<RetryBudget>,
    /// The longest a request may take, every attempt and wait included.
    pub deadline: Duration,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// Shutting down: `/ready` answers 503, and open streams end when told to.
    pub drain: Arc<Drain>,
    /// `/ready` answers 503 while every upstream is down.
    pub ready_requires_upstream: bool,
    /// The largest plain answer, or stream event, read from the upstream.
    pub max_response_bytes: usize,
    /// `GET /v1/models`, rendered once.
    pub models_body: Bytes,
    /// Client keys; empty when the gateway is open.
    pub keys: KeyTable,
    /// By `KeyId`: the models the key may use (`None`: all of them).
    pub allowed_models: Vec<Option<Vec<ModelId>>>,
    /// Rate limits and budgets; asked only when `limits_active`.
    pub limiter: Limits,
    pub limits_active: bool,
    pub gates: Gates,
    /// Tokens reserved for a request that sets no `max_tokens`.
    pub default_max_tokens: u64,
    /// Per-key series; off, every key counts under one label value.
    pub key_label: bool,
    /// By `ModelId`: the model's name as the `x-mcp-model` value of the answers it serves.
    pub served_model: Vec<Option<HeaderValue>>,
}

/// Where the limits are kept: in this process, or in the shared store.
#[derive(Debug)]
pub enum Limits {
    Memory(Arc<MemoryLimiter>),
    Redis(Arc<RedisLimiter>),
}

impl Limits {
    pub fn get(&self) -> &dyn Limiter {
        match self {
            Limits::Memory(memory) => &**memory,
            Limits::Redis(redis) => redis,
        }
    }

    /// Where spend is kept, for the start-up banner.
    pub fn kept_in(&self) -> &'static str {
        match self {
            Limits::Memory(_) => {
                "in this process: each replica keeps its own, and a restart starts again at zero"
            }
            Limits::Redis(_) => "in Redis: shared by every replica, and kept across restarts",
        }
    }
}

/// The concurrency limits: the gateway's, and each key's by `KeyId`.
#[derive(Debug)]
pub struct Gates {
    pub global: Arc<Gate>,
    pub keys: Vec<Arc<Gate>>,
}

/// One upstream: how to reach it, whether it can be reached, and its slots.
#[derive(Debug)]
pub struct Upstream {
    /// What it was built from; a reload keeps it when its plan and key have not changed.
    pub plan: UpstreamPlan,
    key: Option<SecretString>,
    pub client: Arc<UpstreamClient>,
    /// Down means unreachable; failing is the breakers' business.
    pub health: UpstreamHealth,
    pub limit: ConcurrencyLimit,
    pub stream_idle_timeout: Duration,
    /// Its name as the `x-mcp-upstream` value of the answers it serves.
    pub served_by: Option<HeaderValue>,
}

impl AppState {
    /// The `key` label index of a limit's scope.
    pub fn key_label(&self, scope: Scope) -> usize {
        match scope {
            Scope::Key(k) if self.key_label => k.index(),
            Scope::Key(_) => 0,
            // `_global` comes last.
            Scope::Global => {
                if self.key_label {
                    self.keys.len()
                } else {
                    1
                }
            }
        }
    }

    /// Sets each key's budget gauges from what the limiter says is left.
    pub async fn refresh_budget_gauges(&self) {
        if !self.key_label {
            return;
        }
        for i in 0..self.keys.len() {
            let key = mcp_core::limits::KeyId::from_index(i);
            if let Some(remaining) = self.limiter.get().budget_remaining(key).await {
                self.metrics.keys.set_budget_remaining(i, remaining);
            }
        }
    }

    pub fn upstream(&self, id: UpstreamId) -> &Upstream {
        &self.upstreams[id.index()]
    }

    /// Asks a deployment's breaker for a permit, and reports a state change.
    pub fn permit(&self, deployment: DeploymentId) -> Result<Permit, Refusal> {
        let (permit, moved) = self.breakers[deployment.index()].permit(self.clock.now());
        if let Some(to) = moved {
            self.breaker_moved(deployment, to);
        }
        permit
    }

    /// Hands a permit back with its attempt's outcome, and reports a state change.
    pub fn settle_permit(&self, deployment: DeploymentId, permit: Permit, outcome: Outcome) {
        let moved = self.breakers[deployment.index()].record(permit, outcome, self.clock.now());
        if let Some(to) = moved {
            self.breaker_moved(deployment, to);
        }
    }

    fn breaker_moved(&self, deployment: DeploymentId, to: BreakerState) {
        let d = self.routes.deployment(deployment);
        self.metrics.routing.breaker_moved(d.upstream, d.model, to);
        let upstream = self.upstream(d.upstream).client.name();
        let model = self.routes.catalog().label(d.model);
        match to {
            BreakerState::Open => tracing::warn!(upstream, model, "circuit breaker opened"),
            BreakerState::HalfOpen => {
                tracing::info!(upstream, model, "circuit breaker half-open: probing");
            }
            BreakerState::Closed => tracing::info!(upstream, model, "circuit breaker closed"),
        }
    }
}
