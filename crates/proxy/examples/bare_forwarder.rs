//! The yardstick `make bench` measures the gateway against: the least an actix-web + reqwest
//! forwarder can do. It reads the request body, posts it to the upstream with one pooled
//! reqwest client, relays the status, content type and body, and counts requests in one
//! Prometheus counter. No validation, no usage accounting, no latency histograms, no logging.
//!
//! ```text
//! cargo run --release -p mcp-proxy --example bare_forwarder -- 127.0.0.1:9000 http://127.0.0.1:8081
//! ```
//!
//! One worker thread, like the gateway when `make bench` pins it to one core.

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use prometheus::IntCounter;

struct Forwarder {
    client: reqwest::Client,
    upstream: String,
    requests: IntCounter,
}

async fn forward(req: HttpRequest, body: Bytes, state: web::Data<Forwarder>) -> HttpResponse {
    state.requests.inc();
    let url = format!("{}{}", state.upstream, req.uri().path());
    let sent = state
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let Ok(response) = sent else {
        return HttpResponse::BadGateway().finish();
    };
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .cloned();
    match response.bytes().await {
        Ok(bytes) => {
            let mut answer = HttpResponse::build(status);
            if let Some(content_type) = content_type {
                answer.insert_header((
                    actix_web::http::header::CONTENT_TYPE,
                    content_type.as_bytes(),
                ));
            }
            answer.body(bytes)
        }
        Err(_) => HttpResponse::BadGateway().finish(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: bare_forwarder LISTEN_ADDR UPSTREAM_ROOT (e.g. 127.0.0.1:9000 http://127.0.0.1:8081)"
        );
        std::process::exit(2);
    };
    let requests = IntCounter::new("forwarded_requests_total", "Requests forwarded.")
        .map_err(std::io::Error::other)?;
    let state = web::Data::new(Forwarder {
        client: reqwest::Client::new(),
        upstream: upstream.trim_end_matches('/').to_owned(),
        requests,
    });
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .default_service(web::post().to(forward))
    })
    .workers(1)
    .bind(listen)?
    .run()
    .await
}
