//! `GET /v1/models`: the configured models, in OpenAI's list shape (rendered at start-up).

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};

use crate::state::AppState;

pub(super) async fn list(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(state.models_body.clone())
}
