//! Stored responses read back and deleted: no faults, no latency, only the key check, as
//! the provider's own store would answer.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::v1::name_instance;
use crate::api_error::ApiError;
use crate::state::AppState;

/// `GET` (or `DELETE`) `/v1/responses/{id}`: the stored response, or OpenAI's 404.
pub(super) async fn response(
    state: Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let _in_flight = state.stats.begin_request();
    let answer = state.authorize(&request).and_then(|()| {
        if request.method() == actix_web::http::Method::DELETE {
            if state.responses.delete(&id) {
                Ok(serde_json::json!({"id": *id, "object": "response", "deleted": true}))
            } else {
                Err(ApiError::response_not_found(&id))
            }
        } else {
            state
                .responses
                .get(&id)
                .ok_or_else(|| ApiError::response_not_found(&id))
        }
    });
    stored_answer(&state, answer)
}

/// `GET /v1/responses/{id}/input_items`: the input items of a stored response.
pub(super) async fn input_items(
    state: Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let _in_flight = state.stats.begin_request();
    let answer = state.authorize(&request).and_then(|()| {
        state
            .responses
            .input_items(&id)
            .ok_or_else(|| ApiError::response_not_found(&id))
    });
    stored_answer(&state, answer)
}

fn stored_answer(state: &AppState, answer: Result<serde_json::Value, ApiError>) -> HttpResponse {
    let mut response = match answer {
        Ok(body) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
            .body(body.to_string()),
        Err(error) => error.error_response(),
    };
    name_instance(state, &mut response);
    response
}
