//! Error accounting: every error response leaves the app counted and in the client's API's
//! shape (OpenAI's, or Anthropic's under `/v1/messages`). And request ids: every request
//! gets one here (the client's, if usable), in its extensions for the handlers and in the
//! answer's `x-mcp-request-id`.
//!
//! It sits just inside actix-web-prom. Errors the gateway renders itself carry their
//! [`ErrorType`] in the response extensions; anything else (a framework error) is classified
//! by status and re-rendered.
//!
//! actix-web-prom does not count a request whose inner service fails with `Err` (its open
//! issue #91), and an `Err` cannot be turned back into a response here: the request it
//! belongs to is owned by the router. So the rule is that middleware inside this one answers
//! rejections as responses (`Ok`), as the gateway's own do; an `Err` that still arrives is
//! counted in `mcp_server_errors_total` under the unmatched endpoint and logged.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use actix_web::Error;
use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use futures_util::future::Either;
use mcp_core::ErrorType;
use mcp_core::metrics::{GatewayMetrics, UNMATCHED_ENDPOINT};
use mcp_core::request_id::{self, RequestId};

use crate::error::{ErrorShape, error_response};

/// The middleware factory; wrap it directly inside actix-web-prom.
#[derive(Debug, Clone)]
pub struct ErrorAccounting {
    metrics: Arc<mcp_core::metrics::Metrics>,
    /// The largest request head accepted (`server.max_header_bytes`).
    max_header_bytes: usize,
}

impl ErrorAccounting {
    pub fn new(metrics: Arc<mcp_core::metrics::Metrics>, max_header_bytes: usize) -> Self {
        Self {
            metrics,
            max_header_bytes,
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for ErrorAccounting
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = ErrorAccountingService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(ErrorAccountingService {
            service: Rc::new(service),
            metrics: self.metrics.clone(),
            max_header_bytes: self.max_header_bytes,
        }))
    }
}

#[derive(Debug)]
pub struct ErrorAccountingService<S> {
    service: Rc<S>,
    metrics: Arc<mcp_core::metrics::Metrics>,
    max_header_bytes: usize,
}

impl<S, B> Service<ServiceRequest> for ErrorAccountingService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Either<
        Accounted<S::Future>,
        std::future::Ready<Result<ServiceResponse<EitherBody<B>>, Error>>,
    >;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let sent = req.headers().get(CLIENT_REQUEST_ID).map(|v| v.as_bytes());
        let id = RequestId::from_client(sent);
        // The HTTP layer refuses heads past its own fixed limits (96 headers, 128 KiB) with a
        // bare 431; below those, the configured limit answers in the client's API's shape.
        let head_bytes: usize = req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>()
            + req.uri().to_string().len();
        if head_bytes > self.max_header_bytes {
            let kind = ErrorType::HeadersTooLarge;
            self.metrics.gateway.record_error(kind, UNMATCHED_ENDPOINT);
            let message = format!(
                "The request's headers are larger than the {} bytes this gateway accepts.",
                self.max_header_bytes
            );
            let shape = ErrorShape::of_path(req.path());
            let status = StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut rendered = error_response(status, kind, &message, None, shape);
            insert_id(rendered.headers_mut(), &id);
            let response = req.into_response(rendered).map_into_right_body();
            return Either::Right(std::future::ready(Ok(response)));
        }
        req.extensions_mut().insert(id.clone());
        Either::Left(Accounted {
            inner: self.service.call(req),
            metrics: self.metrics.clone(),
            id,
        })
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, with the accounting applied to its result.
    pub struct Accounted<F> {
        #[pin]
        inner: F,
        metrics: Arc<mcp_core::metrics::Metrics>,
        // Answered in `x-mcp-request-id`, whatever the answer.
        id: RequestId,
    }
}

impl<F, B> Future for Accounted<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let gateway = &this.metrics.gateway;
        Poll::Ready(match ready!(this.inner.poll(cx)) {
            Ok(response) => {
                let mut response = account(response, gateway);
                insert_id(response.headers_mut(), this.id);
                Ok(response)
            }
            Err(error) => {
                let status = error.as_response_error().status_code().as_u16();
                gateway.record_error(ErrorType::from_status(status), UNMATCHED_ENDPOINT);
                tracing::error!(%error, status, "middleware answered with an error, not a response");
                Err(error)
            }
        })
    }
}

const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static(request_id::CLIENT_HEADER);
const GATEWAY_REQUEST_ID: HeaderName = HeaderName::from_static(request_id::GATEWAY_HEADER);

/// `x-mcp-request-id` on an answer.
fn insert_id(headers: &mut actix_web::http::header::HeaderMap, id: &RequestId) {
    if let Ok(id) = HeaderValue::from_maybe_shared(id.as_bytes().clone()) {
        headers.insert(GATEWAY_REQUEST_ID, id);
    }
}

fn account<B: MessageBody>(
    response: ServiceResponse<B>,
    metrics: &GatewayMetrics,
) -> ServiceResponse<EitherBody<B>> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response.map_into_left_body();
    }
    let endpoint = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ENDPOINT.to_owned());
    let tagged = response.response().extensions().get::<ErrorType>().copied();
    match tagged {
        Some(kind) => {
            metrics.record_error(kind, &endpoint);
            response.map_into_left_body()
        }
        None => {
            let kind = ErrorType::from_status(status.as_u16());
            metrics.record_error(kind, &endpoint);
            if let (ErrorType::Internal, Some(e)) = (kind, response.response().error()) {
                tracing::error!(error = %e, endpoint, "internal error");
            }
            let message = match kind {
                ErrorType::Internal => "The gateway failed to handle the request.".to_owned(),
                _ => response
                    .response()
                    .error()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned()),
            };
            let shape = ErrorShape::of_path(response.request().path());
            let (request, _) = response.into_parts();
            let rendered = error_response(status, kind, &message, None, shape);
            ServiceResponse::new(request, rendered).map_into_right_body()
        }
    }
}
