//! `GET /v1/models`: the configured models, in OpenAI's list shape (rendered at start-up).

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};

use crate::gateway::Gateway;

pub(super) async fn list(gateway: web::Data<Gateway>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(gateway.current().models_body.clone())
}
