//! Probes: `/health` says the process serves requests; `/ready` says it is worth sending
//! traffic to (settings loaded and the upstream not known to be down).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

pub const HEALTH_PATH: &str = "/health";
pub const READY_PATH: &str = "/ready";

pub(super) async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "healthy", "service": "mcp-server"}))
}

pub(super) async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let upstream = &state.upstream;
    if upstream.health().is_down() {
        HttpResponse::ServiceUnavailable().json(json!({
            "status": "not_ready",
            "reason": format!("upstream `{}` is down", upstream.name()),
        }))
    } else {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    }
}
