//! MCP Server: an observable OpenAI-compatible LLM gateway.
//!
//! The request flow: [`routes`] -> [`intake`] (content type, size, model) -> [`relay`] (one
//! upstream attempt, then a plain or streamed answer) -> client, with [`relay::Exchange`]
//! keeping each request's books and [`middleware::ErrorAccounting`] counting every error.
//! [`startup::Application`] assembles it from [`configuration::Settings`].

pub mod admission;
pub mod cli;
pub mod configuration;
pub mod error;
pub mod gateway;
pub mod intake;
pub mod middleware;
pub mod relay;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use startup::Application;
