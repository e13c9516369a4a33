//! Black-box tests: a real mock on port 0, spoken to over real sockets.

// clippy.toml allows unwrap in test functions but not in the helpers they share; the policy is
// the same for both: a panic in a test is its failure report.
#![allow(
    clippy::unwrap_used,
    reason = "a panic in a test is its failure report"
)]

mod admin;
mod anthropic;
mod auth;
mod endpoints;
mod fail_next;
mod faults;
mod fixed;
mod helpers;
mod instance;
mod retry_after;
mod streaming;
