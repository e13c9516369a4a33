//! Keeping traffic flowing when upstreams fail: circuit breakers per deployment, the retry
//! policy and its budget, and per-upstream concurrency limits. Pure policy: nothing here
//! sends a request or reads a clock; time is a parameter (see [`crate::clock`]).

mod breaker;
mod budget;
mod concurrency;
mod retry;
mod window;

pub use breaker::{BreakerPolicy, BreakerState, CircuitBreaker, Permit, Refusal};
pub use budget::{BudgetPolicy, RetryBudget};
pub use concurrency::{Capacity, ConcurrencyLimit, ConcurrencyPolicy, Saturated, Slot};
pub use retry::{Decision, Failure, Progress, RetryOn, RetryPolicy, parse_retry_after};
