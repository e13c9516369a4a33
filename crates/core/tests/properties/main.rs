//! Property tests of the pure functions every proxied request goes through: the request peek,
//! the model replacement, the usage reader, the chunk summary and the SSE framing. Each
//! property is checked on generated inputs (bodies with any other members, any spelling,
//! streams cut anywhere) rather than on the few examples the unit tests spell out.
//!
//! `cargo test` runs proptest's default of 256 cases per property, about two seconds for the
//! whole binary; `PROPTEST_CASES=10000 cargo test -p mcp-core --test properties` runs forty
//! times as many. `make fuzz` drives the same functions with cargo-fuzz for longer.

// Helpers are shared between the modules of this one test binary, and a panic is how a test
// reports failure.
#![allow(unreachable_pub, clippy::unwrap_used)]

mod json;
mod oracle;
mod request;
mod response;
mod sse;
