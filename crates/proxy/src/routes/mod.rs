//! The routes the gateway serves. Each proxied endpoint is a resource with its methods; any
//! other method gets 405 and any other path 404, in OpenAI's shape (Anthropic's under
//! `/v1/messages`).

mod health;
pub mod metrics;
mod models;

use actix_web::{HttpRequest, HttpResponse, web};
use mcp_core::{Endpoint, ErrorType};

use crate::error::{ApiError, ErrorShape};
use crate::gateway::Gateway;
use crate::relay;

pub use health::{HEALTH_PATH, READY_PATH, health, ready};

/// Where the scrape is served.
pub const METRICS_PATH: &str = "/metrics";

/// The gateway's routes; `/metrics` among them unless it has a listener of its own.
pub fn configure(cfg: &mut web::ServiceConfig, serve_metrics: bool) {
    if serve_metrics {
        cfg.service(
            web::resource(METRICS_PATH)
                .route(web::get().to(metrics::scrape))
                .default_service(web::to(method_not_allowed)),
        );
    }
    cfg.service(
        web::resource(Endpoint::ChatCompletions.route())
            .route(web::post().to(chat_completions))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(Endpoint::Completions.route())
            .route(web::post().to(completions))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(Endpoint::Embeddings.route())
            .route(web::post().to(embeddings))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(Endpoint::Responses.route())
            .route(web::post().to(responses))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(Endpoint::ResponseById.route())
            .route(web::get().to(response_by_id))
            .route(web::delete().to(response_by_id))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(Endpoint::ResponseInputItems.route())
            .route(web::get().to(response_input_items))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(Endpoint::Messages.route())
            .route(web::post().to(messages))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(Endpoint::MessagesCountTokens.route())
            .route(web::post().to(messages_count_tokens))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/models")
            .route(web::get().to(models::list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(HEALTH_PATH)
            .route(web::get().to(health::health))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource(READY_PATH)
            .route(web::get().to(health::ready))
            .default_service(web::to(method_not_allowed)),
    )
    .default_service(web::to(not_found));
}

async fn chat_completions(
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    relay::forward(Endpoint::ChatCompletions, req, payload, gateway).await
}

async fn completions(
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    relay::forward(Endpoint::Completions, req, payload, gateway).await
}

async fn embeddings(
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    relay::forward(Endpoint::Embeddings, req, payload, gateway).await
}

async fn responses(
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    relay::forward(Endpoint::Responses, req, payload, gateway).await
}

async fn response_by_id(
    req: HttpRequest,
    gateway: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    relay::retrieve(Endpoint::ResponseById, req, gateway).await
}

async fn response_input_items(
    req: HttpRequest,
    gateway: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    relay::retrieve(Endpoint::ResponseInputItems, req, gateway).await
}

async fn messages(
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    relay::forward(Endpoint::Messages, req, payload, gateway).await
}

async fn messages_count_tokens(
    req: HttpRequest,
    payload: web::Payload,
    gateway: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    relay::forward(Endpoint::MessagesCountTokens, req, payload, gateway).await
}

/// Paths in messages are cut short: they come from the client.
fn shown_path(req: &HttpRequest) -> String {
    req.path().chars().take(100).collect()
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorType::NotFound,
        format!(
            "The gateway does not serve {} {}.",
            req.method(),
            shown_path(&req)
        ),
    )
    .in_shape(ErrorShape::of_path(req.path())))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorType::MethodNotAllowed,
        format!("{} is not allowed on {}.", req.method(), shown_path(&req)),
    )
    .in_shape(ErrorShape::of_path(req.path())))
}
