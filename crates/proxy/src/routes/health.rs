//! Probes: `/health` says the process serves requests; `/ready` says it is worth sending
//! traffic to (settings loaded, not shutting down, and, unless
//! `server.ready_requires_upstream` is off, at least one upstream not known to be down).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::gateway::Gateway;

pub const HEALTH_PATH: &str = "/health";
pub const READY_PATH: &str = "/ready";

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "healthy", "service": "mcp-server"}))
}

pub async fn ready(gateway: web::Data<Gateway>) -> HttpResponse {
    let state = gateway.current();
    if state.drain.is_draining() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not_ready",
            "reason": "shutting down",
        }));
    }
    // One reachable upstream is enough to serve (its models, and others' fallbacks to them).
    if state.ready_requires_upstream && state.upstreams.iter().all(|u| u.health.is_down()) {
        let names: Vec<&str> = state.upstreams.iter().map(|u| u.client.name()).collect();
        HttpResponse::ServiceUnavailable().json(json!({
            "status": "not_ready",
            "reason": format!("every upstream is down: {}", names.join(", ")),
        }))
    } else {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    }
}
