//! Black-box tests of the gateway: real sockets on port 0, a real upstream stub (the mock
//! upstream, in-process), assertions on answers and on the `/metrics` scrape.

// Helpers are shared between the modules of this one test binary, and a panic is how a test
// reports failure.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::field_reassign_with_default
)]

mod endpoints;
mod errors;
mod hardening;
mod helpers;
mod keys;
mod logs;
mod messages;
mod metrics;
mod reload;
mod request_ids;
mod responses;
mod routing;
mod scrape;
mod sdk;
mod shared_state;
mod stored;
mod streaming;
