//! `max_in_flight` for one upstream, with a bounded waiting room.
//!
//! An attempt takes a slot for as long as it runs (a stream until it ends). When every slot is
//! taken, up to `queue` requests wait, each at most `queue_timeout`; a request that finds the
//! waiting room full, or waits too long, is refused, and the client gets a 503 with
//! `Retry-After` if no other deployment can take it. Waiting is first come, first served
//! (tokio's semaphore is fair).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limit's settings. `max_in_flight` 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyPolicy {
    pub max_in_flight: usize,
    pub queue: usize,
    pub queue_timeout: Duration,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saturated {
    /// Every slot and every place in the waiting room was taken.
    Full,
    /// The request waited `queue_timeout` without a slot coming free.
    Timeout,
}

impl Saturated {
    pub const ALL: [Saturated; 2] = [Saturated::Full, Saturated::Timeout];

    /// The `reason` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Saturated::Full => "full",
            Saturated::Timeout => "timeout",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// What a request can expect from the limit right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capacity {
    /// A slot is free.
    Free,
    /// Every slot is taken; the waiting room has space.
    Queue,
    /// Every slot and the waiting room are taken.
    Full,
}

/// One upstream's slots.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    policy: ConcurrencyPolicy,
    slots: Option<Arc<Semaphore>>,
    waiting: AtomicUsize,
    /// `mcp_server_upstream_in_flight` for this upstream.
    in_flight: IntGauge,
}

/// A slot, held for the attempt's life; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    in_flight: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

impl ConcurrencyLimit {
    pub fn new(policy: ConcurrencyPolicy, in_flight: IntGauge) -> Self {
        let slots =
            (policy.max_in_flight > 0).then(|| Arc::new(Semaphore::new(policy.max_in_flight)));
        Self {
            policy,
            slots,
            waiting: AtomicUsize::new(0),
            in_flight,
        }
    }

    /// Whether a `max_in_flight` is set.
    pub fn is_limited(&self) -> bool {
        self.slots.is_some()
    }

    pub fn capacity(&self) -> Capacity {
        match &self.slots {
            None => Capacity::Free,
            Some(slots) if slots.available_permits() > 0 => Capacity::Free,
            Some(_) if self.waiting.load(Ordering::Relaxed) < self.policy.queue => Capacity::Queue,
            Some(_) => Capacity::Full,
        }
    }

    /// A slot, waiting for one if need be (up to the queue's size and timeout).
    pub async fn acquire(&self) -> Result<Slot, Saturated> {
        let Some(slots) = &self.slots else {
            return Ok(self.slot(None));
        };
        if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
            return Ok(self.slot(Some(permit)));
        }
        // Claim a place in the waiting room, or find it full.
        let claimed = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < self.policy.queue).then_some(w + 1)
            });
        if claimed.is_err() {
            return Err(Saturated::Full);
        }
        let _place = Leave(&self.waiting);
        match tokio::time::timeout(self.policy.queue_timeout, Arc::clone(slots).acquire_owned())
            .await
        {
            Ok(Ok(permit)) => Ok(self.slot(Some(permit))),
            // The semaphore is never closed; a timeout is the only way to miss a slot.
            Ok(Err(_)) | Err(_) => Err(Saturated::Timeout),
        }
    }

    fn slot(&self, permit: Option<OwnedSemaphorePermit>) -> Slot {
        self.in_flight.inc();
        Slot {
            _permit: permit,
            in_flight: self.in_flight.clone(),
        }
    }
}

/// Gives a place in the waiting room back, however the wait ends (the caller may be dropped
/// mid-wait when its client leaves).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: usize, queue: usize) -> (Arc<ConcurrencyLimit>, IntGauge) {
        let gauge = IntGauge::new("g", "g").unwrap();
        let policy = ConcurrencyPolicy {
            max_in_flight: max,
            queue,
            queue_timeout: Duration::from_secs(1),
        };
        (
            Arc::new(ConcurrencyLimit::new(policy, gauge.clone())),
            gauge,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn slots_then_the_waiting_room_then_refusal() {
        let (limit, gauge) = limit(2, 1);
        let a = limit.acquire().await.unwrap();
        let _b = limit.acquire().await.unwrap();
        assert_eq!(gauge.get(), 2);
        assert_eq!(limit.capacity(), Capacity::Queue);
        let waiter = tokio::spawn({
            let limit = Arc::clone(&limit);
            async move { limit.acquire().await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert_eq!(limit.capacity(), Capacity::Full);
        assert_eq!(limit.acquire().await.unwrap_err(), Saturated::Full);
        // A slot comes free: the waiter gets it.
        drop(a);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(gauge.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_the_queue_timeout() {
        let (limit, _) = limit(1, 4);
        let _held = limit.acquire().await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(limit.acquire().await.unwrap_err(), Saturated::Timeout);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        // The place in the waiting room was given back.
        assert_eq!(limit.capacity(), Capacity::Queue);
    }

    #[tokio::test]
    async fn unlimited_counts_in_flight_only() {
        let (limit, gauge) = limit(0, 0);
        let slots: Vec<_> = futures_util::future::join_all((0..100).map(|_| limit.acquire()))
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(gauge.get(), 100);
        assert_eq!(limit.capacity(), Capacity::Free);
        drop(slots);
        assert_eq!(gauge.get(), 0);
    }
}
