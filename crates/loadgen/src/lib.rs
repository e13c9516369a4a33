//! Demo traffic for the MCP Server stack, and scenarios that break the upstream on purpose.
//!
//! The flow of a run: [`health`] waits until the gateway answers `GET /health`, then
//! [`traffic`] starts requests on the open-loop [`schedule`], each drawn from the weighted
//! [`mix`] and sent by [`target`] in its own task (with a client key from [`keys`] when the
//! gateway asks for one); [`tally`] counts the outcomes and [`latency`] keeps their
//! percentiles in bounded memory. A [`scenario`] runs that traffic
//! while it changes the mock upstream's fault profile through [`admin`], and [`phases`] counts
//! its answers phase by phase and by the upstream that served them.
//!
//! The binary is a thin shell over [`commands::execute`]; tests drive the same functions
//! in-process against a real mock upstream and a real gateway.

pub mod admin;
pub mod cli;
pub mod commands;
pub mod health;
pub mod keys;
pub mod latency;
pub mod mix;
pub mod phases;
pub mod scenario;
pub mod schedule;
pub mod shutdown;
pub mod sse;
pub mod tally;
pub mod target;
pub mod telemetry;
pub mod traffic;
mod words;
