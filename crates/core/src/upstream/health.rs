//! Whether an upstream is up, as far as the gateway knows.
//!
//! Passive: consecutive attempts that could not reach it (no connection, timeouts) mark it
//! down, and any answer marks it up again. An upstream answering 5xx is up but failing: that
//! is the upstream error-rate alert's business, and taking every gateway out of rotation
//! (`/ready`) because one upstream has a bad minute would turn a partial outage into a full
//! one. An active probe feeds the same state, so an upstream
//! marked down is noticed when it recovers even if no traffic reaches it.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use prometheus::IntGauge;

/// An upstream's health, shared by every worker.
#[derive(Debug)]
pub struct UpstreamHealth {
    name: String,
    failures: AtomicU32,
    down: AtomicBool,
    threshold: u32,
    /// `mcp_server_upstream_up` for this upstream.
    gauge: IntGauge,
}

impl UpstreamHealth {
    pub fn new(name: impl Into<String>, threshold: u32, gauge: IntGauge) -> Self {
        gauge.set(1);
        Self {
            name: name.into(),
            failures: AtomicU32::new(0),
            down: AtomicBool::new(false),
            threshold: threshold.max(1),
            gauge,
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// The upstream answered.
    pub fn record_success(&self) {
        // Loads first: on the hot path nothing changes, and a plain load does not contend.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            self.gauge.set(1);
            tracing::info!(upstream = %self.name, "upstream is reachable again");
        }
    }

    /// An attempt could not reach the upstream.
    pub fn record_failure(&self) {
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures >= self.threshold && !self.down.swap(true, Ordering::Relaxed) {
            self.gauge.set(0);
            tracing::warn!(upstream = %self.name, failures, "upstream marked down");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_failures_mark_down_and_one_success_marks_up() {
        let gauge = IntGauge::new("g", "g").unwrap();
        let h = UpstreamHealth::new("u", 3, gauge.clone());
        h.record_failure();
        h.record_failure();
        assert!(!h.is_down());
        h.record_success();
        h.record_failure();
        h.record_failure();
        assert!(!h.is_down(), "a success in between resets the count");
        h.record_failure();
        assert!(h.is_down());
        assert_eq!(gauge.get(), 0);
        h.record_success();
        assert!(!h.is_down());
        assert_eq!(gauge.get(), 1);
    }
}
