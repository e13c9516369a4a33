//! `GET /metrics`: the Prometheus text exposition of the gateway's registry, on the main
//! listener or, with `server.admin_listen`, on the admin one only; behind a bearer token when
//! `server.metrics_token_env` names one.

use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use prometheus::{Encoder, Registry, TextEncoder};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// What the scrape needs.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub registry: Registry,
    pub token: Option<SecretString>,
}

pub async fn scrape(req: HttpRequest, scrape: web::Data<Scrape>) -> HttpResponse {
    if let Some(token) = &scrape.token {
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let same: bool = presented
            .as_bytes()
            .ct_eq(token.expose_secret().as_bytes())
            .into();
        if !same {
            return HttpResponse::Unauthorized()
                .insert_header(("www-authenticate", "Bearer"))
                .body("a bearer token is required\n");
        }
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    if let Err(e) = encoder.encode(&scrape.registry.gather(), &mut body) {
        tracing::error!(error = %e, "the metrics could not be encoded");
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        ))
        .body(body)
}
