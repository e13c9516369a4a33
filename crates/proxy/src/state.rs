//! What every worker shares: the model list, the upstream client, the metric families and
//! the request limits. Built once at start-up; read-only afterwards.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mcp_core::ModelCatalog;
use mcp_core::metrics::Metrics;
use mcp_core::upstream::UpstreamClient;

#[derive(Debug)]
pub struct AppState {
    pub catalog: ModelCatalog,
    pub upstream: Arc<UpstreamClient>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    pub stream_idle_timeout: Duration,
    /// The largest plain answer, or stream event, read from the upstream.
    pub max_response_bytes: usize,
    /// `GET /v1/models`, rendered once.
    pub models_body: Bytes,
}
