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
    deployment: DeploymentId,
    upstream: UpstreamId,
    model: ModelId,
    /// `None` once settled.
    permit: Option<Permit>,
    slot: Option<Slot>,
    sent: Instant,
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
            deployment,
            upstream,
            model,
            permit: Some(permit),
            slot: Some(slot),
            sent: Instant::now(),
        }
    }

    pub(super) fn deployment(&self) -> DeploymentId {
        self.deployment
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
        let Some(permit) = self.permit.take() else {
            return;
        };
        let upstream = self.state.upstream(self.upstream);
        match outcome.reachability() {
            Some(false) => upstream.health.record_failure(),
            Some(true) => upstream.health.record_success(),
            None => {}
        }
        self.state.settle_permit(self.deployment, permit, outcome);
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
