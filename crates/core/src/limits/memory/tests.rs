use std::time::SystemTime;

use super::*;
use crate::clock::ManualClock;
use crate::limits::{Budget, BudgetPeriod};

const S: Duration = Duration::from_secs(1);

fn key(name: &str, quota: Quota, budget: Option<Budget>) -> KeyLimits {
    KeyLimits {
        name: name.into(),
        quota,
        budget,
    }
}

fn id(i: usize) -> Option<KeyId> {
    Some(KeyId::from_index(i))
}

fn rpm(n: u32) -> Quota {
    Quota {
        requests_per_minute: Some(n),
        tokens_per_minute: None,
    }
}

fn tpm(n: u64) -> Quota {
    Quota {
        requests_per_minute: None,
        tokens_per_minute: Some(n),
    }
}

fn decide(l: &MemoryLimiter, key: Option<KeyId>, tokens: u64) -> Result<Admitted, Refused> {
    l.decide(key, tokens)
}

#[test]
fn exactly_the_requests_per_minute_pass_and_the_rest_are_told_when_to_retry() {
    let clock = Arc::new(ManualClock::new());
    let l = MemoryLimiter::new(
        &[key("a", rpm(60), None)],
        Quota::default(),
        clock.clone(),
        None,
    );
    let passed = (0..75).filter(|_| decide(&l, id(0), 0).is_ok()).count();
    assert_eq!(passed, 60);
    let refused = decide(&l, id(0), 0).unwrap_err();
    assert_eq!(refused.limit, LimitKind::Requests);
    assert_eq!(refused.scope, Scope::Key(KeyId::from_index(0)));
    assert_eq!(refused.retry_after, S, "one request a second comes back");
    assert_eq!(refused.headroom.requests.unwrap().remaining, 0);
    clock.advance(S);
    assert!(decide(&l, id(0), 0).is_ok());
    // Another key, or none, is not limited by this one.
    assert!(decide(&l, None, 0).is_ok());
}

#[test]
fn a_reservation_is_settled_from_the_real_usage() {
    let clock = Arc::new(ManualClock::new());
    let l = MemoryLimiter::new(
        &[key("a", tpm(10_000), None)],
        Quota::default(),
        clock,
        None,
    );
    let big = decide(&l, id(0), 8_000).unwrap();
    assert_eq!(big.key_tokens, 8_000);
    assert_eq!(big.headroom.tokens.unwrap().remaining, 2_000);
    let refused = decide(&l, id(0), 4_000).unwrap_err();
    assert_eq!(refused.limit, LimitKind::Tokens);
    // The answer used 300 tokens: the other 7,700 come back.
    futures_util::FutureExt::now_or_never(l.settle(id(0), big, 300, 0.0)).unwrap();
    let next = decide(&l, id(0), 4_000).unwrap();
    assert_eq!(next.headroom.tokens.unwrap().remaining, 5_700);
}

#[test]
fn the_gateways_limit_holds_for_every_key_and_a_refusal_gives_back_what_it_took() {
    let clock = Arc::new(ManualClock::new());
    let l = MemoryLimiter::new(
        &[key("a", tpm(1_000), None), key("b", tpm(1_000), None)],
        tpm(1_500),
        clock,
        None,
    );
    assert!(decide(&l, id(0), 1_000).is_ok());
    let refused = decide(&l, id(1), 1_000).unwrap_err();
    assert_eq!(
        (refused.limit, refused.scope),
        (LimitKind::Tokens, Scope::Global)
    );
    // b's own bucket got its 1,000 back when the gateway's refused.
    assert!(decide(&l, id(1), 500).is_ok());
}

#[test]
fn a_spent_budget_refuses_until_the_next_period() {
    let clock = Arc::new(ManualClock::new());
    let start = UNIX_EPOCH_PLUS_DAYS(20_000) + Duration::from_secs(3_600);
    clock.set_wall(start);
    let budget = Budget {
        usd: 1.0,
        period: BudgetPeriod::Day,
    };
    let l = MemoryLimiter::new(
        &[key("a", Quota::default(), Some(budget))],
        Quota::default(),
        clock.clone(),
        None,
    );
    let admitted = decide(&l, id(0), 0).unwrap();
    let left = futures_util::FutureExt::now_or_never(l.settle(id(0), admitted, 0, 1.25)).unwrap();
    assert_eq!(left, Some(0.0));
    let refused = decide(&l, id(0), 0).unwrap_err();
    assert_eq!(refused.limit, LimitKind::Budget);
    assert_eq!(refused.retry_after, Duration::from_secs(23 * 3_600));
    clock.set_wall(UNIX_EPOCH_PLUS_DAYS(20_001));
    assert!(decide(&l, id(0), 0).is_ok());
}

#[test]
fn a_reload_keeps_counts_of_unchanged_limits_and_what_was_spent() {
    let clock = Arc::new(ManualClock::new());
    let budget = Budget {
        usd: 10.0,
        period: BudgetPeriod::Month,
    };
    let old = MemoryLimiter::new(
        &[key("a", rpm(2), Some(budget))],
        Quota::default(),
        clock.clone(),
        None,
    );
    decide(&old, id(0), 0).unwrap();
    let admitted = decide(&old, id(0), 0).unwrap();
    futures_util::FutureExt::now_or_never(old.settle(id(0), admitted, 0, 4.0)).unwrap();
    // Key `a` moves to the second position; a new key comes first.
    let raised = Budget {
        usd: 12.0,
        ..budget
    };
    let new = MemoryLimiter::new(
        &[key("new", rpm(2), None), key("a", rpm(2), Some(raised))],
        Quota::default(),
        clock,
        Some(&old),
    );
    assert!(
        decide(&new, id(1), 0).is_err(),
        "a's two requests still count"
    );
    assert!(decide(&new, id(0), 0).is_ok());
    let left =
        futures_util::FutureExt::now_or_never(new.budget_remaining(KeyId::from_index(1))).unwrap();
    assert_eq!(left, Some(8.0), "the new budget less what was spent");
}

#[allow(non_snake_case)]
fn UNIX_EPOCH_PLUS_DAYS(days: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400)
}
