//! One upstream attempt, from the moment it holds its breaker permit and its upstream slot
//! until its outcome is known.
//!
//! An [`Attempt`] settles the upstream's side of the books exactly once, whichever way the
//! attempt ends: the attempt counter and duration, the upstream's reachability, the
//! deployment's breaker, and the slot it held. Dropping one that was never finished (the
//! client left, or the stream it fed was dropped) settles it as `cancelled`, which says
//! nothing about the upstream. The client's side of the books is the [`super::Exchange`]'s.

use std::sync::Arc;
use std::time::Instant;

use mcp_core::ModelId;
use mcp_core::resilience::{Permit, Slot};
use mcp_core::routing::DeploymentId;
use mcp_core::upstream::{Outcome, UpstreamId};

use crate::state::AppState;

#[derive(Debug)]
pub(super) struct Attempt {
    state: Arc<AppState>,
    /// `None` for a request routed by upstream, not by model (a stored-response retrieval),
    /// which has no breaker.
    deployment: Option<DeploymentId>,
    upstream: UpstreamId,
    model: ModelId,
    permit: Option<Permit>,
    slot: Option<Slot>,
    sent: Instant,
    settled: bool,
}

impl Attempt {
    /// An attempt about to be sent to `deployment`, holding its permit and slot.
    pub(super) fn start(
        state: Arc<AppState>,
        deployment: DeploymentId,
        permit: Permit,
        slot: Slot,
    ) -> Self {
        let d = state.routes.deployment(deployment);
        let (upstream, model) = (d.upstream, d.model);
        Self {
            state,
            deployment: Some(deployment),
            upstream,
            model,
            permit: Some(permit),
            slot: Some(slot),
            sent: Instant::now(),
            settled: false,
        }
    }

    /// An attempt on `upstream` that no deployment's breaker guards, counted under `model`.
    pub(super) fn unrouted(
        state: Arc<AppState>,
        upstream: UpstreamId,
        model: ModelId,
        slot: Slot,
    ) -> Self {
        Self {
            state,
            deployment: None,
            upstream,
            model,
            permit: None,
            slot: Some(slot),
            sent: Instant::now(),
            settled: false,
        }
    }

    /// The deployment of an attempt routed by model.
    ///
    /// # Panics
    /// For an attempt made with [`Attempt::unrouted`]; only the dispatch loop asks.
    pub(super) fn deployment(&self) -> DeploymentId {
        self.deployment.expect("a routed attempt has a deployment")
    }

    pub(super) fn upstream(&self) -> UpstreamId {
        self.upstream
    }

    pub(super) fn model(&self) -> ModelId {
        self.model
    }

    pub(super) fn sent(&self) -> Instant {
        self.sent
    }

    /// The response headers arrived.
    pub(super) fn first_byte(&self) {
        self.state.metrics.upstream.observe_first_byte(
            self.upstream,
            self.model,
            self.sent.elapsed(),
        );
    }

    /// The attempt ended with `outcome`; later calls do nothing.
    pub(super) fn finish(&mut self, outcome: Outcome) {
        if self.settled {
            return;
        }
        self.settled = true;
        let upstream = self.state.upstream(self.upstream);
        match outcome.reachability() {
            Some(false) => upstream.health.record_failure(),
            Some(true) => upstream.health.record_success(),
            None => {}
        }
        if let (Some(deployment), Some(permit)) = (self.deployment, self.permit.take()) {
            self.state.settle_permit(deployment, permit, outcome);
        }
        self.state.metrics.upstream.record_attempt(
            self.upstream,
            self.model,
            outcome,
            self.sent.elapsed(),
        );
        self.slot = None;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}
