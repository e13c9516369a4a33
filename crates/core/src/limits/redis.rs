//! Limits and budgets shared by every replica, in Redis: each decision and each settlement is
//! one script call (`limits.lua`), one round trip and one atomic step on Redis's own clock.
//!
//! Redis must never hold a request up for long, nor take the gateway down with it: every call
//! has a short timeout, and when Redis is slow or unreachable the configured policy decides.
//! `fail_open` (the default) decides in this process instead, with the configured share of
//! each limit (a replica's share of the whole), and `fail_closed` refuses. The connection is
//! made in the background and remade by the client when it breaks; the limits are shared
//! again as soon as Redis answers.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use super::memory::MemoryLimiter;
use super::{
    Admitted, BudgetPeriod, Headroom, KeyId, KeyLimits, LimitFuture, LimitKind, Limiter, Quota,
    Refused, Scope, Window,
};
use crate::clock::Clock;
use crate::metrics::Metrics;

/// What to do when Redis cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OnError {
    /// Decide in this process, with `share` of each limit.
    FailOpen { share: f64 },
    /// Refuse the request (503).
    FailClosed,
}

/// How to reach Redis and what to do when it does not answer.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[:password@]host:port[/db]`; kept out of every log.
    pub url: String,
    /// Every key the gateway writes starts with it (`<prefix>:k:<key>:tpm`, ...).
    pub prefix: String,
    /// The longest a decision may wait for Redis.
    pub timeout: Duration,
    pub on_error: OnError,
}

/// The shared limiter.
#[derive(Debug)]
pub struct RedisLimiter {
    script: Script,
    client: redis::Client,
    connection: Arc<Mutex<Option<ConnectionManager>>>,
    connecting: Arc<AtomicBool>,
    options: RedisOptions,
    keys: Vec<KeyLimits>,
    global: Quota,
    /// Decides when Redis cannot (fail-open), with the configured share of each limit; its
    /// budgets mirror the shared spend, as last read, plus what was spent here since.
    fallback: MemoryLimiter,
    /// By `KeyId`: spend not yet written to Redis (settled while it could not be asked),
    /// added to the key's next settlement that reaches it.
    owed: Mutex<Vec<f64>>,
    /// `metrics.state`: errors, time and reachability of the store.
    metrics: Arc<Metrics>,
    /// Calls in a row that got no answer within the timeout: a store that accepts
    /// connections but does not answer (paused, swapping, stopped) is down too.
    timeouts_in_a_row: AtomicU32,
}

/// Calls in a row without an answer after which the store counts as down.
const TIMEOUTS_UNTIL_DOWN: u32 = 3;

/// One operation's name: the script's first argument and the `op` label.
#[derive(Debug, Clone, Copy)]
enum Op {
    Admit,
    Settle,
    Budget,
}

impl Op {
    const fn as_str(self) -> &'static str {
        match self {
            Op::Admit => "admit",
            Op::Settle => "settle",
            Op::Budget => "budget",
        }
    }
}

impl RedisLimiter {
    /// A limiter on `options.url` for these keys and the gateway's `global` quota. With
    /// `previous` (a reload to the same Redis), its connection is kept.
    pub fn new(
        options: RedisOptions,
        keys: &[KeyLimits],
        global: Quota,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        previous: Option<&RedisLimiter>,
    ) -> Result<Self, redis::RedisError> {
        let share = match options.on_error {
            OnError::FailOpen { share } => share,
            OnError::FailClosed => 1.0,
        };
        let scaled: Vec<KeyLimits> = keys
            .iter()
            .map(|k| KeyLimits {
                quota: scale(k.quota, share),
                ..k.clone()
            })
            .collect();
        let fallback = MemoryLimiter::new(
            &scaled,
            scale(global, share),
            clock,
            previous.map(|p| &p.fallback),
        );
        let owed = keys
            .iter()
            .map(|k| {
                previous
                    .and_then(|p| {
                        let i = p.keys.iter().position(|old| old.name == k.name)?;
                        lock(&p.owed).get(i).copied()
                    })
                    .unwrap_or(0.0)
            })
            .collect();
        let reuse = previous.filter(|p| p.options.url == options.url);
        let (client, connection, connecting) = match reuse {
            Some(p) => (
                p.client.clone(),
                Arc::clone(&p.connection),
                Arc::clone(&p.connecting),
            ),
            None => (
                redis::Client::open(options.url.as_str())?,
                Arc::new(Mutex::new(None)),
                Arc::new(AtomicBool::new(false)),
            ),
        };
        let limiter = Self {
            script: Script::new(include_str!("limits.lua")),
            client,
            connection,
            connecting,
            options,
            keys: keys.to_vec(),
            global,
            fallback,
            owed: Mutex::new(owed),
            metrics,
            timeouts_in_a_row: AtomicU32::new(0),
        };
        limiter.connect_in_background();
        Ok(limiter)
    }

    /// Starts connecting unless connected or already trying; the client reconnects by itself
    /// once it has connected.
    fn connect_in_background(&self) {
        if lock(&self.connection).is_some() || self.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (client, slot, connecting) = (
            self.client.clone(),
            Arc::clone(&self.connection),
            Arc::clone(&self.connecting),
        );
        let timeout = self.options.timeout;
        let metrics = Arc::clone(&self.metrics);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.connecting.store(false, Ordering::Release);
            return;
        };
        runtime.spawn(async move {
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(timeout))
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1));
            match client.get_connection_manager_with_config(config).await {
                Ok(manager) => {
                    *lock(&slot) = Some(manager);
                    metrics.state.set_up(true);
                    tracing::info!("connected to the shared state store");
                }
                Err(e) => {
                    metrics.state.set_up(false);
                    tracing::warn!(
                        error = e.category(),
                        "the shared state store cannot be reached"
                    );
                }
            }
            connecting.store(false, Ordering::Release);
        });
    }

    /// Runs the script with `keys` and `args` (after the operation's name), within the
    /// timeout; counts the time and any failure.
    async fn call(&self, op: Op, keys: &[String], args: &[String]) -> Result<Value, &'static str> {
        let Some(mut connection) = lock(&self.connection).clone() else {
            self.connect_in_background();
            self.metrics.state.record_error(op.as_str());
            return Err("not connected");
        };
        let mut invocation = self.script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation.arg(op.as_str());
        for arg in args {
            invocation.arg(arg);
        }
        let started = Instant::now();
        let result = tokio::time::timeout(
            self.options.timeout,
            invocation.invoke_async::<Value>(&mut connection),
        )
        .await;
        self.metrics.state.observe(op.as_str(), started.elapsed());
        match result {
            Ok(Ok(value)) => {
                self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                self.metrics.state.set_up(true);
                Ok(value)
            }
            Ok(Err(e)) => {
                self.metrics.state.record_error(op.as_str());
                if e.is_timeout() {
                    self.timed_out();
                } else if e.is_io_error() || e.is_connection_dropped() {
                    self.metrics.state.set_up(false);
                }
                tracing::warn!(
                    op = op.as_str(),
                    error = e.category(),
                    "the shared state store failed"
                );
                Err("failed")
            }
            Err(_) => {
                self.metrics.state.record_error(op.as_str());
                self.timed_out();
                Err("timed out")
            }
        }
    }

    /// A call got no answer in time; the store is down after a few in a row.
    fn timed_out(&self) {
        if self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= TIMEOUTS_UNTIL_DOWN {
            self.metrics.state.set_up(false);
        }
    }

    fn names(&self, key: Option<KeyId>) -> Names {
        let p = &self.options.prefix;
        let global = |what: &str| format!("{p}:g:{what}");
        match key {
            Some(k) => {
                let name = &self.keys[k.index()].name;
                let of = |what: &str| format!("{p}:k:{name}:{what}");
                Names {
                    key_tokens: of("tpm"),
                    global_tokens: global("tpm"),
                    key_requests: of("rpm"),
                    global_requests: global("rpm"),
                    spend: of("spend"),
                }
            }
            None => Names {
                key_tokens: format!("{p}:none"),
                global_tokens: global("tpm"),
                key_requests: format!("{p}:none"),
                global_requests: global("rpm"),
                spend: format!("{p}:none"),
            },
        }
    }

    fn key_limits(&self, key: Option<KeyId>) -> (Quota, Option<(f64, BudgetPeriod)>) {
        key.map_or((Quota::default(), None), |k| {
            let limits = &self.keys[k.index()];
            (limits.quota, limits.budget.map(|b| (b.usd, b.period)))
        })
    }

    async fn admit_shared(
        &self,
        key: Option<KeyId>,
        tokens: u64,
    ) -> Result<Result<Admitted, Refused>, ()> {
        let names = self.names(key);
        let (quota, budget) = self.key_limits(key);
        let (usd, period) = budget.unwrap_or((0.0, BudgetPeriod::Day));
        let keys = [
            names.key_tokens,
            names.global_tokens,
            names.key_requests,
            names.global_requests,
            names.spend,
        ];
        let args = [
            tokens.to_string(),
            limit(quota.tokens_per_minute),
            limit(self.global.tokens_per_minute),
            limit(quota.requests_per_minute.map(u64::from)),
            limit(self.global.requests_per_minute.map(u64::from)),
            usd.to_string(),
            period_name(period).to_owned(),
        ];
        let value = self.call(Op::Admit, &keys, &args).await.map_err(|_| ())?;
        let numbers = integers(&value).ok_or(())?;
        let retry = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        let headroom = |n: &[i64]| -> Headroom {
            let window = |limit: i64, remaining: i64| {
                (limit > 0).then(|| {
                    let (limit, remaining) = (limit as u64, remaining.max(0) as u64);
                    Window {
                        limit,
                        remaining,
                        reset: Duration::from_millis(
                            (limit - remaining.min(limit)) * 60_000 / limit.max(1),
                        ),
                    }
                })
            };
            // The client's own limits: its key's where it has them, else the gateway's.
            let key_limited = n.len() >= 10 && (n[2] > 0 || n[6] > 0);
            if key_limited {
                Headroom {
                    tokens: window(n[2], n[3]),
                    requests: window(n[6], n[7]),
                }
            } else if n.len() >= 10 {
                Headroom {
                    tokens: window(n[4], n[5]),
                    requests: window(n[8], n[9]),
                }
            } else {
                Headroom::default()
            }
        };
        let code = *numbers.first().ok_or(())?;
        let retry_after = retry(*numbers.get(1).ok_or(())?);
        let refused = |limit: LimitKind, scope: Scope| {
            Ok(Err(Refused {
                limit,
                scope,
                retry_after,
                headroom: Headroom::default(),
            }))
        };
        let key_scope = key.map_or(Scope::Global, Scope::Key);
        match code {
            0 if numbers.len() >= 12 => Ok(Ok(Admitted {
                key_tokens: u64::try_from(numbers[10]).unwrap_or(0),
                global_tokens: u64::try_from(numbers[11]).unwrap_or(0),
                headroom: headroom(&numbers),
                ticket: fastrand::u128(..),
                local: false,
            })),
            1 => {
                if let Some(k) = key {
                    self.fallback.mirror_spend(k, 0.0);
                }
                refused(LimitKind::Budget, key_scope)
            }
            2 => refused(LimitKind::Tokens, key_scope),
            3 => refused(LimitKind::Tokens, Scope::Global),
            4 => refused(LimitKind::Requests, key_scope),
            5 => refused(LimitKind::Requests, Scope::Global),
            _ => Err(()),
        }
    }

    /// Spend settled without Redis: owed to it, and counted by the fallback's budgets (a
    /// local admission's settlement charges the fallback itself).
    fn owe(&self, key: Option<KeyId>, cost_usd: f64) {
        let Some(k) = key else {
            return;
        };
        if cost_usd.is_finite() && cost_usd > 0.0 {
            lock(&self.owed)[k.index()] += cost_usd;
        }
    }

    /// What is left of `key`'s budget as this replica last heard it, without asking Redis.
    pub fn budget_remaining_known(&self, key: KeyId) -> Option<f64> {
        self.fallback.budget_remaining(key).now_or_never().flatten()
    }

    /// The answer when Redis cannot be asked.
    fn without_redis(&self, key: Option<KeyId>, tokens: u64) -> Result<Admitted, Refused> {
        match self.options.on_error {
            OnError::FailOpen { .. } => self
                .fallback
                .decide(key, tokens)
                .map(|a| Admitted { local: true, ..a }),
            OnError::FailClosed => Err(Refused {
                limit: LimitKind::Unavailable,
                scope: key.map_or(Scope::Global, Scope::Key),
                retry_after: Duration::from_secs(1),
                headroom: Headroom::default(),
            }),
        }
    }
}

/// The Redis keys of one decision.
struct Names {
    key_tokens: String,
    global_tokens: String,
    key_requests: String,
    global_requests: String,
    spend: String,
}

impl Limiter for Arc<RedisLimiter> {
    fn admit(&self, key: Option<KeyId>, tokens: u64) -> LimitFuture<Result<Admitted, Refused>> {
        // The decision runs on a task of its own: a client that leaves while it is on its
        // way to Redis drops the request, but the script still reserves its tokens there,
        // and the task gives them back.
        let this = Arc::clone(self);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let decided = match this.admit_shared(key, tokens).await {
                Ok(decided) => decided,
                Err(()) => this.without_redis(key, tokens),
            };
            if let Err(Ok(orphan)) = sender.send(decided) {
                this.settle(key, orphan, 0, 0.0).await;
            }
        });
        let this = Arc::clone(self);
        Box::pin(async move {
            receiver
                .await
                .unwrap_or_else(|_| this.without_redis(key, tokens))
        })
    }

    fn settle(
        &self,
        key: Option<KeyId>,
        admitted: Admitted,
        used_tokens: u64,
        cost_usd: f64,
    ) -> LimitFuture<Option<f64>> {
        let this = Arc::clone(self);
        Box::pin(async move {
            if admitted.local {
                this.owe(key, cost_usd);
                return this
                    .fallback
                    .settle(key, admitted, used_tokens, cost_usd)
                    .await;
            }
            // Spend that could not be written before goes with this settlement.
            let owed = key.map_or(0.0, |k| std::mem::take(&mut lock(&this.owed)[k.index()]));
            let names = this.names(key);
            let (quota, budget) = this.key_limits(key);
            let (usd, period) = budget.unwrap_or((0.0, BudgetPeriod::Day));
            let ticket = format!("{}:t:{:032x}", this.options.prefix, admitted.ticket);
            let keys = [names.key_tokens, names.global_tokens, names.spend, ticket];
            let args = [
                admitted.key_tokens.to_string(),
                admitted.global_tokens.to_string(),
                used_tokens.to_string(),
                limit(quota.tokens_per_minute),
                limit(this.global.tokens_per_minute),
                (cost_usd + owed).to_string(),
                usd.to_string(),
                period_name(period).to_owned(),
            ];
            // A settlement is worth a second try: the ticket makes a repeated one harmless.
            for _ in 0..2 {
                if let Ok(value) = this.call(Op::Settle, &keys, &args).await {
                    let left = remaining(&value);
                    if let (Some(k), Some(left)) = (key, left) {
                        this.fallback.mirror_spend(k, left);
                    }
                    return left;
                }
            }
            tracing::warn!(
                "a settlement could not be written to the shared state store; its spend is \
                 kept for the next one"
            );
            if let Some(k) = key {
                lock(&this.owed)[k.index()] += owed;
                this.fallback.charge(k, cost_usd);
            }
            this.owe(key, cost_usd);
            None
        })
    }

    fn budget_remaining(&self, key: KeyId) -> LimitFuture<Option<f64>> {
        let this = Arc::clone(self);
        Box::pin(async move {
            let (_, budget) = this.key_limits(Some(key));
            let (usd, period) = budget?;
            let keys = [this.names(Some(key)).spend];
            let args = [usd.to_string(), period_name(period).to_owned()];
            match this.call(Op::Budget, &keys, &args).await {
                Ok(value) => {
                    let left = remaining(&value);
                    if let Some(left) = left {
                        this.fallback.mirror_spend(key, left);
                    }
                    left
                }
                Err(_) => this.fallback.budget_remaining(key).await,
            }
        })
    }
}

fn scale(quota: Quota, share: f64) -> Quota {
    let part = |n: u64| ((n as f64 * share).ceil() as u64).max(1);
    Quota {
        requests_per_minute: quota
            .requests_per_minute
            .map(|n| u32::try_from(part(u64::from(n))).unwrap_or(u32::MAX)),
        tokens_per_minute: quota.tokens_per_minute.map(part),
    }
}

fn limit(n: Option<u64>) -> String {
    n.unwrap_or(0).to_string()
}

fn period_name(period: BudgetPeriod) -> &'static str {
    match period {
        BudgetPeriod::Day => "day",
        BudgetPeriod::Month => "month",
    }
}

fn integers(value: &Value) -> Option<Vec<i64>> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Int(n) => Some(*n),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn remaining(value: &Value) -> Option<f64> {
    let text = match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.to_owned(),
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    text.parse().ok()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
