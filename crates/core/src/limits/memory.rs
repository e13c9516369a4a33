//! The limits kept in this process: requests per minute with governor's GCRA, tokens per
//! minute with a [`TokenBucket`] that settles, budgets with a [`Spend`] per key. Every
//! decision takes a lock per limit involved; the order is fixed (key, then gateway), and a
//! refusal gives back whatever the request had taken, except a governor cell taken from the
//! key when the gateway's own request limit then refuses (governor cannot give cells back).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota as GovernorQuota, RateLimiter};

use super::bucket::TokenBucket;
use super::budget::Spend;
use super::{
    Admitted, Headroom, KeyId, KeyLimits, LimitFuture, LimitKind, Limiter, Quota, Refused, Scope,
    Window,
};
use crate::clock::Clock;

/// governor reads the gateway's policy clock, so that tests can move it.
#[derive(Debug, Clone)]
struct PolicyClock(Arc<dyn Clock>);

impl GovernorClock for PolicyClock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        self.0.now()
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, PolicyClock, StateInformationMiddleware>;

/// One scope's rate limits (a key's, or the gateway's).
#[derive(Debug)]
struct Rates {
    quota: Quota,
    requests: Option<Gcra>,
    /// What governor reported left of the request burst at its last decision (it reports it
    /// only with a decision).
    requests_left: AtomicU32,
    tokens: Option<Mutex<TokenBucket>>,
}

impl Rates {
    fn new(quota: Quota, clock: &Arc<dyn Clock>) -> Self {
        let requests = quota
            .requests_per_minute
            .and_then(std::num::NonZeroU32::new)
            .map(|n| {
                RateLimiter::direct_with_clock(
                    GovernorQuota::per_minute(n),
                    PolicyClock(Arc::clone(clock)),
                )
                .with_middleware::<StateInformationMiddleware>()
            });
        let tokens = quota
            .tokens_per_minute
            .map(|n| Mutex::new(TokenBucket::per_minute(n, clock.now())));
        Self {
            quota,
            requests,
            requests_left: AtomicU32::new(quota.requests_per_minute.unwrap_or(0)),
            tokens,
        }
    }

    fn is_limited(&self) -> bool {
        self.requests.is_some() || self.tokens.is_some()
    }
}

/// One key's state: its rates and its budget.
#[derive(Debug)]
struct KeyState {
    rates: Arc<Rates>,
    spend: Option<Arc<Mutex<Spend>>>,
}

/// Limits and budgets in this process.
#[derive(Debug)]
pub struct MemoryLimiter {
    clock: Arc<dyn Clock>,
    global: Arc<Rates>,
    /// By `KeyId`.
    keys: Vec<KeyState>,
    names: Vec<String>,
}

impl MemoryLimiter {
    /// Limits for `keys` (in `KeyId` order) and the gateway as a whole. With `previous`
    /// (a reload), a scope whose rates are unchanged keeps its counts, and a key keeps what
    /// it has spent of a budget of the same period.
    pub fn new(
        keys: &[KeyLimits],
        global: Quota,
        clock: Arc<dyn Clock>,
        previous: Option<&MemoryLimiter>,
    ) -> Self {
        let old_key = |name: &str| {
            let p = previous?;
            let i = p.names.iter().position(|n| n == name)?;
            Some(&p.keys[i])
        };
        let global = match previous {
            Some(p) if p.global.quota == global => Arc::clone(&p.global),
            _ => Arc::new(Rates::new(global, &clock)),
        };
        let names = keys.iter().map(|k| k.name.clone()).collect();
        let keys: Vec<KeyState> = keys
            .iter()
            .map(|k| {
                let old = old_key(&k.name);
                let rates = match old {
                    Some(o) if o.rates.quota == k.quota => Arc::clone(&o.rates),
                    _ => Arc::new(Rates::new(k.quota, &clock)),
                };
                let spend = k.budget.map(|b| {
                    let kept = old.and_then(|o| o.spend.as_ref()).filter(|s| {
                        let mut s = lock(s);
                        s.limit_usd = b.usd;
                        s.period() == b.period
                    });
                    kept.map_or_else(
                        || Arc::new(Mutex::new(Spend::new(b.usd, b.period, clock.wall()))),
                        Arc::clone,
                    )
                });
                KeyState { rates, spend }
            })
            .collect();
        Self {
            clock,
            global,
            keys,
            names,
        }
    }

    /// Takes the shared store's word for what is left of `key`'s budget, so that a decision
    /// made here while the store cannot be asked starts from the whole gateway's spend.
    pub(crate) fn mirror_spend(&self, key: KeyId, remaining_usd: f64) {
        if let Some(spend) = &self.keys[key.index()].spend {
            lock(spend).mirror(remaining_usd, self.clock.wall());
        }
    }

    /// Adds to what `key` has spent here.
    pub(crate) fn charge(&self, key: KeyId, usd: f64) {
        if let Some(spend) = &self.keys[key.index()].spend {
            lock(spend).spend(usd, self.clock.wall());
        }
    }

    pub(crate) fn decide(&self, key: Option<KeyId>, tokens: u64) -> Result<Admitted, Refused> {
        let now = self.clock.now();
        let state = key.map(|k| &self.keys[k.index()]);
        if let (Some(k), Some(spend)) = (key, state.and_then(|s| s.spend.as_ref())) {
            let checked = lock(spend).check(self.clock.wall());
            if let Err(next_period) = checked {
                let retry_after = next_period
                    .duration_since(self.clock.wall())
                    .unwrap_or(Duration::ZERO);
                return Err(Refused {
                    limit: LimitKind::Budget,
                    scope: Scope::Key(k),
                    retry_after,
                    headroom: self.headroom(state, now),
                });
            }
        }
        // Tokens first, key then gateway: a bucket can give back what it took.
        let mut taken: Vec<(&Mutex<TokenBucket>, u64)> = Vec::with_capacity(2);
        let scopes = [
            (key.map(Scope::Key), state.map(|s| &*s.rates)),
            (Some(Scope::Global), Some(&*self.global)),
        ];
        for (scope, rates) in scopes {
            let (Some(scope), Some(rates)) = (scope, rates) else {
                continue;
            };
            let Some(bucket) = &rates.tokens else {
                continue;
            };
            // The guard goes before the match: a refusal reads the bucket again.
            let took = lock(bucket).take(tokens, now);
            match took {
                Ok(n) => taken.push((bucket, n)),
                Err(retry_after) => {
                    give_back(&taken, now);
                    return Err(Refused {
                        limit: LimitKind::Tokens,
                        scope,
                        retry_after,
                        headroom: self.headroom(state, now),
                    });
                }
            }
        }
        for (scope, rates) in scopes {
            let (Some(scope), Some(rates)) = (scope, rates) else {
                continue;
            };
            let Some(gcra) = &rates.requests else {
                continue;
            };
            let decided = gcra.check();
            let left = decided.as_ref().map_or(0, |s| s.remaining_burst_capacity());
            rates.requests_left.store(left, Ordering::Relaxed);
            if let Err(not_until) = decided {
                give_back(&taken, now);
                return Err(Refused {
                    limit: LimitKind::Requests,
                    scope,
                    retry_after: not_until.wait_time_from(now),
                    headroom: self.headroom(state, now),
                });
            }
        }
        let reserved = |scope_rates: Option<&Rates>| {
            scope_rates
                .and_then(|r| r.tokens.as_ref())
                .and_then(|b| taken.iter().find(|(t, _)| std::ptr::eq(*t, b)))
                .map_or(0, |(_, n)| *n)
        };
        Ok(Admitted {
            key_tokens: reserved(state.map(|s| &*s.rates)),
            global_tokens: reserved(Some(&self.global)),
            headroom: self.headroom(state, now),
            ticket: 0,
            local: true,
        })
    }

    /// The client's own limits: its key's where it has them, else the gateway's.
    fn headroom(&self, state: Option<&KeyState>, now: Instant) -> Headroom {
        let rates = match state {
            Some(s) if s.rates.is_limited() => &*s.rates,
            _ => &*self.global,
        };
        let requests = rates.requests.as_ref().map(|_| {
            let limit = u64::from(rates.quota.requests_per_minute.unwrap_or(0));
            let remaining = u64::from(rates.requests_left.load(Ordering::Relaxed));
            let per = Duration::from_secs(60) / u32::try_from(limit.max(1)).unwrap_or(u32::MAX);
            Window {
                limit,
                remaining,
                reset: per * u32::try_from(limit.saturating_sub(remaining)).unwrap_or(u32::MAX),
            }
        });
        let tokens = rates.tokens.as_ref().map(|bucket| {
            let mut bucket = lock(bucket);
            Window {
                limit: bucket.capacity(),
                remaining: bucket.remaining(now),
                reset: bucket.until_full(now),
            }
        });
        Headroom { requests, tokens }
    }
}

/// Returns reserved tokens to the buckets they came from.
fn give_back(taken: &[(&Mutex<TokenBucket>, u64)], now: Instant) {
    for (bucket, n) in taken {
        lock(bucket).adjust(i64::try_from(*n).unwrap_or(i64::MAX), now);
    }
}

impl Limiter for MemoryLimiter {
    fn admit(&self, key: Option<KeyId>, tokens: u64) -> LimitFuture<Result<Admitted, Refused>> {
        Box::pin(std::future::ready(self.decide(key, tokens)))
    }

    fn settle(
        &self,
        key: Option<KeyId>,
        admitted: Admitted,
        used_tokens: u64,
        cost_usd: f64,
    ) -> LimitFuture<Option<f64>> {
        let now = self.clock.now();
        let state = key.map(|k| &self.keys[k.index()]);
        let settle = |rates: &Rates, reserved: u64| {
            if let Some(bucket) = &rates.tokens {
                let back = i64::try_from(reserved).unwrap_or(i64::MAX)
                    - i64::try_from(used_tokens).unwrap_or(i64::MAX);
                lock(bucket).adjust(back, now);
            }
        };
        if let Some(s) = state {
            settle(&s.rates, admitted.key_tokens);
        }
        settle(&self.global, admitted.global_tokens);
        let remaining = state.and_then(|s| s.spend.as_ref()).map(|spend| {
            let mut spend = lock(spend);
            spend.spend(cost_usd, self.clock.wall());
            spend.remaining(self.clock.wall())
        });
        Box::pin(std::future::ready(remaining))
    }

    fn budget_remaining(&self, key: KeyId) -> LimitFuture<Option<f64>> {
        let remaining = self.keys[key.index()]
            .spend
            .as_ref()
            .map(|s| lock(s).remaining(self.clock.wall()));
        Box::pin(std::future::ready(remaining))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
