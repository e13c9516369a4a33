//! The gateway's vocabulary, shared by the proxy and its tools: which endpoints exist, how an
//! error is classified, which models are known, what the metric families are, how the
//! OpenAI, Responses and Anthropic wire formats are read, one usage record for all of them,
//! and the client that talks to an upstream provider.
//!
//! This crate knows nothing about serving HTTP; only `mcp-proxy` and the service binaries do.

pub mod anthropic;
pub mod clock;
pub mod endpoint;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod openai;
pub mod request_id;
pub mod resilience;
pub mod responses;
pub mod routing;
pub mod sse;
pub mod upstream;
pub mod usage;

pub use endpoint::{Endpoint, Protocol};
pub use error::{ErrorType, Fault};
pub use models::{DeploymentSpec, ModelCatalog, ModelId, ModelSpec, Pricing};
