//! Black-box tests of the loadgen over real sockets: a mock upstream and a real gateway, both
//! on port 0, driven in-process through the library the binary uses; a few tests run the
//! binary itself.

// Helpers are shared between the modules of this one test binary, and a panic is how a test
// reports failure.
#![allow(unreachable_pub, clippy::unwrap_used)]

mod cli;
mod failover;
mod fallback;
mod health;
mod helpers;
mod keys;
mod recorder;
mod run;
mod scenario;
