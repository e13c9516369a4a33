//! Who may spend, how fast, and how much: client keys, rate limits (requests and tokens per
//! minute, per key and for the whole gateway) and spending budgets per key.
//!
//! The gateway asks a [`Limiter`] once per request, after reading its body (the tokens to
//! reserve come from it), and settles with it once the answer's real usage is known.
//! [`MemoryLimiter`] keeps the counts in this process; the trait is what a shared store
//! implements so that several replicas hold one limit between them. Concurrency limits are
//! per process by nature (a slot is held by a connection) and live in the proxy.

mod bucket;
mod budget;
pub mod keys;
mod memory;
mod redis;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use budget::BudgetPeriod;
pub use keys::{KeyDigest, KeyId, KeyTable};
pub use memory::MemoryLimiter;
pub use redis::{OnError, RedisLimiter, RedisOptions};

/// Rates; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
}

/// A spending budget in US dollars per period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub usd: f64,
    pub period: BudgetPeriod,
}

/// What one key may do.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyLimits {
    pub name: String,
    pub quota: Quota,
    pub budget: Option<Budget>,
}

/// Which limit refused a request; the `limit` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
    Concurrency,
    Budget,
    /// The shared store that keeps the limits could not be asked, and the policy is to
    /// refuse rather than decide alone.
    Unavailable,
}

impl LimitKind {
    pub const ALL: [LimitKind; 5] = [
        LimitKind::Requests,
        LimitKind::Tokens,
        LimitKind::Concurrency,
        LimitKind::Budget,
        LimitKind::Unavailable,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::Concurrency => "concurrency",
            LimitKind::Budget => "budget",
            LimitKind::Unavailable => "unavailable",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Whose limit: a key's, or the whole gateway's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Key(KeyId),
    Global,
}

/// One limit as OpenAI's `x-ratelimit-*` headers describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub remaining: u64,
    /// Until the limit is back to its full size.
    pub reset: Duration,
}

/// The client's own rate limits after a decision: its key's, or the gateway's when the key
/// has none (or there are no keys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Headroom {
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
}

/// An admitted request: what it reserved, to be settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admitted {
    /// Tokens reserved from the key's and the gateway's tokens per minute.
    pub key_tokens: u64,
    pub global_tokens: u64,
    pub headroom: Headroom,
    /// Names this admission's settlement, so that a settlement written twice counts once.
    pub ticket: u128,
    /// Decided in this process because the shared store could not be asked: settled here
    /// too.
    pub local: bool,
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub limit: LimitKind,
    pub scope: Scope,
    /// When to try again.
    pub retry_after: Duration,
    pub headroom: Headroom,
}

/// What a [`Limiter`] returns.
pub type LimitFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Rate limits and budgets, kept in this process or in a store shared by replicas.
pub trait Limiter: std::fmt::Debug + Send + Sync {
    /// Admits one request for `key` that may use `tokens` tokens: one request and `tokens`
    /// tokens are taken from each limit that applies, and the key's budget must not be
    /// spent; or nothing is taken and the request is refused.
    fn admit(&self, key: Option<KeyId>, tokens: u64) -> LimitFuture<Result<Admitted, Refused>>;

    /// Settles an admitted request once its usage is known: the unused part of the
    /// reservation goes back (or usage beyond it is owed), and its cost is spent from the
    /// key's budget. Returns what is left of that budget, if the key has one.
    fn settle(
        &self,
        key: Option<KeyId>,
        admitted: Admitted,
        used_tokens: u64,
        cost_usd: f64,
    ) -> LimitFuture<Option<f64>>;

    /// What is left of a key's budget in its current period, if it has one.
    fn budget_remaining(&self, key: KeyId) -> LimitFuture<Option<f64>>;
}
