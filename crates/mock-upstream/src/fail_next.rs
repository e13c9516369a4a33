//! The `fail_next` countdown: the next N completion, chat and embedding requests fail,
//! whatever the rates say. A rate gives a retry test a probability; a countdown gives it an
//! exact script ("the first attempt fails, the retry succeeds").
//!
//! It is state, not a knob of the [`crate::FaultProfile`]: each failure consumes one unit, so
//! it lives in an atomic beside the profile rather than in the `Copy` value every request
//! reads.

use std::sync::atomic::{AtomicU64, Ordering};

/// Failures still due, and the count `DELETE /admin/faults` restores.
#[derive(Debug)]
pub(crate) struct FailNext {
    remaining: AtomicU64,
    startup: u64,
}

impl FailNext {
    pub(crate) fn new(startup: u64) -> Self {
        Self {
            remaining: AtomicU64::new(startup),
            startup,
        }
    }

    /// Consumes one failure if any is due; `true` means this request must fail. Concurrent
    /// callers never take more failures than were due, nor leave one behind: the check and
    /// the decrement are one compare-and-swap.
    pub(crate) fn take(&self) -> bool {
        self.remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }

    /// Failures still due.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining.load(Ordering::Acquire)
    }

    /// Replaces the count (not added to it: a test that asks for 2 gets exactly 2).
    pub(crate) fn set(&self, count: u64) {
        self.remaining.store(count, Ordering::Release);
    }

    /// Back to the start-up count.
    pub(crate) fn reset(&self) {
        self.set(self.startup);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn it_counts_down_to_zero_and_stays_there() {
        let countdown = FailNext::new(2);
        assert!(countdown.take());
        assert_eq!(countdown.remaining(), 1);
        assert!(countdown.take());
        assert!(!countdown.take());
        assert_eq!(countdown.remaining(), 0);
    }

    #[test]
    fn set_replaces_the_count_and_reset_restores_the_start_up_one() {
        let countdown = FailNext::new(1);
        countdown.set(5);
        assert_eq!(countdown.remaining(), 5);
        countdown.reset();
        assert_eq!(countdown.remaining(), 1);
    }

    #[test]
    fn concurrent_takers_consume_exactly_the_count() {
        let countdown = Arc::new(FailNext::new(1000));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let countdown = Arc::clone(&countdown);
                std::thread::spawn(move || (0..500).filter(|_| countdown.take()).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(taken, 1000);
        assert_eq!(countdown.remaining(), 0);
    }
}
