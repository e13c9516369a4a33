use super::*;

const S: Duration = Duration::from_secs(1);

fn policy() -> BreakerPolicy {
    BreakerPolicy {
        consecutive_failures: 3,
        failure_ratio: 0.5,
        min_requests: 10,
        window: Duration::from_secs(10),
        cooldown: Duration::from_secs(5),
        max_cooldown: Duration::from_secs(12),
        half_open_probes: 1,
    }
}

/// One attempt at `now` with `outcome`; the state moves it caused, in order.
fn attempt(b: &CircuitBreaker, outcome: Outcome, now: Instant) -> Vec<BreakerState> {
    let (permit, moved) = b.permit(now);
    let mut moves: Vec<BreakerState> = moved.into_iter().collect();
    let permit = permit.expect("admitted");
    moves.extend(b.record(permit, outcome, now));
    moves
}

#[test]
fn a_run_of_failures_opens_and_a_success_in_between_resets_the_run() {
    let t0 = Instant::now();
    let b = CircuitBreaker::new(policy(), t0);
    assert!(attempt(&b, Outcome::ServerError, t0).is_empty());
    assert!(attempt(&b, Outcome::Timeout, t0).is_empty());
    assert!(attempt(&b, Outcome::Success, t0).is_empty());
    assert!(attempt(&b, Outcome::ConnectError, t0).is_empty());
    assert!(attempt(&b, Outcome::Malformed, t0).is_empty());
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(
        attempt(&b, Outcome::StreamInterrupted, t0),
        [BreakerState::Open]
    );
    assert_eq!(
        b.permit(t0 + S).0,
        Err(Refusal::Open {
            until: t0 + Duration::from_secs(5)
        })
    );
}

#[test]
fn the_clients_own_errors_and_429s_never_open_it() {
    let t0 = Instant::now();
    let b = CircuitBreaker::new(policy(), t0);
    for _ in 0..50 {
        assert!(attempt(&b, Outcome::ClientError, t0).is_empty());
        assert!(attempt(&b, Outcome::RateLimited, t0).is_empty());
        assert!(attempt(&b, Outcome::Cancelled, t0).is_empty());
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn a_failure_ratio_opens_it_only_past_the_minimum_volume() {
    let t0 = Instant::now();
    let b = CircuitBreaker::new(policy(), t0);
    // Alternating failure and success: never three in a row, a ratio of one half.
    for i in 0..9 {
        let outcome = if i % 2 == 0 {
            Outcome::ServerError
        } else {
            Outcome::Success
        };
        assert!(attempt(&b, outcome, t0).is_empty(), "attempt {i}");
    }
    // The tenth attempt reaches the minimum volume at 5 failures of 10.
    assert_eq!(
        attempt(&b, Outcome::Success, t0),
        Vec::<BreakerState>::new()
    );
    assert_eq!(attempt(&b, Outcome::ServerError, t0), [BreakerState::Open]);
}

#[test]
fn failures_that_left_the_window_no_longer_count() {
    let t0 = Instant::now();
    let b = CircuitBreaker::new(policy(), t0);
    // Five failures among nine attempts: a ratio above one half, below the minimum volume.
    for i in 0..9 {
        let outcome = if i % 2 == 0 {
            Outcome::ServerError
        } else {
            Outcome::Success
        };
        attempt(&b, outcome, t0);
    }
    // Counted with those nine, a tenth failure would open it (6 of 10); eleven seconds
    // later they have left the window, and one failure is below the minimum volume.
    let later = t0 + Duration::from_secs(11);
    assert!(attempt(&b, Outcome::ServerError, later).is_empty());
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn after_the_cool_down_one_probe_half_opens_it_and_its_success_closes_it() {
    let t0 = Instant::now();
    let b = CircuitBreaker::new(policy(), t0);
    for _ in 0..3 {
        attempt(&b, Outcome::ServerError, t0);
    }
    assert_eq!(b.state(), BreakerState::Open);
    assert!(!b.would_admit(t0 + Duration::from_millis(4999)));
    let t1 = t0 + Duration::from_secs(5);
    assert!(b.would_admit(t1));
    let (probe, moved) = b.permit(t1);
    assert_eq!(
        (probe, moved),
        (Ok(Permit::Probe), Some(BreakerState::HalfOpen))
    );
    // The one probe slot is taken: the next attempt waits for the probe's result.
    assert_eq!(b.permit(t1).0, Err(Refusal::Probing));
    assert!(!b.would_admit(t1));
    assert_eq!(
        b.record(Permit::Probe, Outcome::Success, t1),
        Some(BreakerState::Closed)
    );
    assert_eq!(b.permit(t1).0, Ok(Permit::Normal));
}

#[test]
fn a_failed_probe_reopens_it_for_a_doubled_cool_down_up_to_the_cap() {
    let t0 = Instant::now();
    let b = CircuitBreaker::new(policy(), t0);
    for _ in 0..3 {
        attempt(&b, Outcome::ConnectError, t0);
    }
    // Cool-downs: 5 s, then 10 s, then 12 s (capped), while probes keep failing.
    let mut now = t0;
    for cooldown in [5, 10, 12, 12] {
        let until = now + Duration::from_secs(cooldown);
        assert_eq!(
            b.permit(until - Duration::from_millis(1)).0,
            Err(Refusal::Open { until })
        );
        assert_eq!(
            attempt(&b, Outcome::Timeout, until),
            [BreakerState::HalfOpen, BreakerState::Open]
        );
        now = until;
    }
    // A successful probe closes it and resets the cool-down to the first one.
    let t = now + Duration::from_secs(12);
    assert_eq!(
        attempt(&b, Outcome::Success, t),
        [BreakerState::HalfOpen, BreakerState::Closed]
    );
    for _ in 0..3 {
        attempt(&b, Outcome::ServerError, t);
    }
    assert_eq!(
        b.permit(t).0,
        Err(Refusal::Open {
            until: t + Duration::from_secs(5)
        })
    );
}

#[test]
fn a_cancelled_probe_frees_its_slot_without_deciding() {
    let t0 = Instant::now();
    let b = CircuitBreaker::new(policy(), t0);
    for _ in 0..3 {
        attempt(&b, Outcome::ServerError, t0);
    }
    let t1 = t0 + Duration::from_secs(5);
    let (probe, _) = b.permit(t1);
    assert_eq!(b.record(probe.unwrap(), Outcome::Cancelled, t1), None);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.permit(t1).0, Ok(Permit::Probe));
}

#[test]
fn results_of_attempts_admitted_before_a_trip_are_ignored() {
    let t0 = Instant::now();
    let b = CircuitBreaker::new(policy(), t0);
    let (late, _) = b.permit(t0);
    for _ in 0..3 {
        attempt(&b, Outcome::ServerError, t0);
    }
    assert_eq!(b.record(late.unwrap(), Outcome::Success, t0), None);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn a_429_sits_the_deployment_out_until_its_retry_after_without_a_state_change() {
    let t0 = Instant::now();
    let b = CircuitBreaker::new(policy(), t0);
    b.sit_out(t0 + Duration::from_secs(2));
    assert_eq!(
        b.permit(t0 + S).0,
        Err(Refusal::SittingOut {
            until: t0 + Duration::from_secs(2)
        })
    );
    assert!(!b.would_admit(t0 + S));
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.permit(t0 + Duration::from_secs(2)).0, Ok(Permit::Normal));
}
