//! Request and stream counters, shown on `GET /admin/stats`. They let the gateway's tests see
//! the upstream side of a conversation: how many attempts arrived, and whether a stream was
//! completed, cut by a fault, or abandoned because the gateway closed the connection, and how
//! many attempts it had in flight at once (a gateway's concurrency cap, or a fallback that
//! should not double the load, shows there).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// The counters. Only `/v1/*` requests count: probes and admin calls would blur the picture.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    requests_total: AtomicU64,
    in_flight: AtomicU64,
    /// The high-water mark of `in_flight` since start-up (the counters are never reset).
    max_in_flight: AtomicU64,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    streams_cancelled: AtomicU64,
    streams_cut: AtomicU64,
    /// The `x-request-id` the last `/v1/*` request carried, so that a gateway's tests can
    /// see which id it forwarded.
    last_request_id: Mutex<Option<String>>,
}

/// A point-in-time copy of [`Stats`], as served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct StatsSnapshot {
    requests_total: u64,
    in_flight: u64,
    max_in_flight: u64,
    streams_started: u64,
    streams_completed: u64,
    streams_cancelled: u64,
    streams_cut: u64,
}

/// How a stream's body ended, as decided when it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// Every event was handed to the server.
    Completed,
    /// The cut fault ended it on purpose.
    Cut,
    /// Dropped early: the client went away.
    Cancelled,
}

impl Stats {
    /// Counts a request and keeps it in flight until the guard is dropped, which for a stream
    /// is when its body is dropped.
    pub(crate) fn begin_request(self: &Arc<Self>) -> InFlight {
        let count = self.requests_total.fetch_add(1, Ordering::Relaxed) + 1;
        // Every value `in_flight` reaches comes out of one of these increments, so taking the
        // maximum of each result misses no peak, however the requests interleave.
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight
            .fetch_max(now_in_flight, Ordering::Relaxed);
        InFlight {
            stats: Arc::clone(self),
            sequence: count,
        }
    }

    /// Remembers the id a request carried (or that it carried none).
    pub(crate) fn note_request_id(&self, id: Option<&str>) {
        *self
            .last_request_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = id.map(str::to_owned);
    }

    pub(crate) fn last_request_id(&self) -> Option<String> {
        self.last_request_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn stream_started(&self) {
        self.streams_started.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stream_ended(&self, end: StreamEnd) {
        let counter = match end {
            StreamEnd::Completed => &self.streams_completed,
            StreamEnd::Cut => &self.streams_cut,
            StreamEnd::Cancelled => &self.streams_cancelled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests_total: self.requests_total.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
            streams_started: self.streams_started.load(Ordering::Relaxed),
            streams_completed: self.streams_completed.load(Ordering::Relaxed),
            streams_cancelled: self.streams_cancelled.load(Ordering::Relaxed),
            streams_cut: self.streams_cut.load(Ordering::Relaxed),
        }
    }
}

/// One request in flight; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct InFlight {
    stats: Arc<Stats>,
    sequence: u64,
}

impl InFlight {
    /// This request's number since start-up (1-based); drives the rate-limit headers.
    pub(crate) fn sequence(&self) -> u64 {
        self.sequence
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_in_flight_until_its_guard_drops() {
        let stats = Arc::new(Stats::default());
        let first = stats.begin_request();
        let second = stats.begin_request();
        assert_eq!((first.sequence(), second.sequence()), (1, 2));
        assert_eq!(stats.snapshot().in_flight, 2);
        drop(first);
        drop(second);
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.requests_total, snapshot.in_flight), (2, 0));
        assert_eq!(snapshot.max_in_flight, 2, "the peak outlives the requests");
        drop(stats.begin_request());
        assert_eq!(stats.snapshot().max_in_flight, 2);
    }
}
