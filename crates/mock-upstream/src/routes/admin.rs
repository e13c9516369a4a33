//! The admin API: read, patch and reset the fault profile while the mock runs, read the
//! counters, and the Alertmanager webhook sink. None of it requires the API key, and none of
//! it counts as upstream traffic.

use actix_web::web::{self, Bytes, Data, ServiceConfig};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::alerts;
use crate::api_error::ApiError;
use crate::faults::FaultPatch;
use crate::state::AppState;
use crate::stats::StatsSnapshot;

pub(super) fn configure(config: &mut ServiceConfig) {
    config
        .service(
            web::resource("/admin/faults")
                .route(web::get().to(get_faults))
                .route(web::put().to(patch_faults))
                .route(web::delete().to(reset_faults)),
        )
        .route("/admin/stats", web::get().to(stats))
        .service(
            web::resource("/admin/alerts")
                .route(web::get().to(list_alerts))
                .route(web::post().to(receive_alerts)),
        );
}

async fn get_faults(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.faults())
}

/// Lays the fields present over the profile in force, and sets the `fail_next` countdown when
/// given; unknown fields and out-of-range values are refused whole, naming the field, and
/// change nothing.
async fn patch_faults(state: Data<AppState>, body: Bytes) -> HttpResponse {
    let patch: FaultPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(error) => {
            let message = format!("Invalid fault patch: {error}.");
            return ApiError::invalid_request(message, None).error_response();
        }
    };
    match state.patch_faults(&patch) {
        Ok(faults) => {
            tracing::info!(profile = ?faults.profile, fail_next = faults.fail_next, "fault profile changed");
            HttpResponse::Ok().json(faults)
        }
        Err(error) => {
            ApiError::invalid_request(error.to_string(), Some(error.field())).error_response()
        }
    }
}

async fn reset_faults(state: Data<AppState>) -> HttpResponse {
    let faults = state.reset_faults();
    tracing::info!(profile = ?faults.profile, fail_next = faults.fail_next, "fault profile reset");
    HttpResponse::Ok().json(faults)
}

/// The counters, with the name of the instance they belong to.
#[derive(Debug, Serialize)]
struct StatsAnswer<'a> {
    instance: &'a str,
    #[serde(flatten)]
    counters: StatsSnapshot,
    /// The `x-request-id` of the last `/v1/*` request, `null` if it had none.
    last_request_id: Option<String>,
}

async fn stats(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(StatsAnswer {
        instance: &state.instance,
        counters: state.stats.snapshot(),
        last_request_id: state.stats.last_request_id(),
    })
}

async fn receive_alerts(state: Data<AppState>, body: Bytes) -> HttpResponse {
    match alerts::parse_webhook(&body) {
        Ok(received) => {
            let count = received.len();
            state.alerts.record(received);
            HttpResponse::Ok().json(serde_json::json!({ "received": count }))
        }
        Err(error) => ApiError::invalid_request(error.to_string(), None).error_response(),
    }
}

async fn list_alerts(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.alerts.snapshot())
}
