//! The HTTP surface: the OpenAI-compatible `/v1` API, the admin API that steers faults and
//! reads counters, and the health probe. Unknown paths get OpenAI's "Invalid URL" error.

mod admin;
mod stored;
mod v1;

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::api_error::ApiError;
use crate::state::AppState;

/// The largest request body read; prompts near a model's context limit fit.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

const HEALTH_BODY: &str = r#"{"status":"healthy","service":"mcp-mock-upstream"}"#;

/// Registers every route on an `App`.
pub(crate) fn configure(config: &mut ServiceConfig) {
    config
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route("/health", web::get().to(health))
        .configure(v1::configure)
        .configure(admin::configure)
        .default_service(web::to(unknown_url));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(HEALTH_BODY)
}

async fn unknown_url(state: Data<AppState>, request: HttpRequest) -> HttpResponse {
    let mut response =
        ApiError::unknown_url(request.method().as_str(), request.path()).error_response();
    // Under /v1 the answer comes from "the upstream", so it names the instance like the rest.
    if request.path().starts_with("/v1/") {
        v1::name_instance(&state, &mut response);
    }
    response
}
