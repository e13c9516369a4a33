//! The streaming relay: Server-Sent Events from the upstream to the client as they arrive.
//!
//! Each upstream chunk is split into complete events ([`EventSplitter`]); complete events are
//! handed to the client at once and unchanged, as slices of the chunk that brought them. The
//! relay reads each event's `data` only to account for it, as its wire format says
//! ([`Wire`]): content gives time to first token and inter-token latency, usage gives the
//! tokens. When the gateway asked for OpenAI's usage chunk itself, it is removed from what the
//! client receives.
//!
//! A stream that breaks (reset, malformed event, nothing for the idle timeout, a body that
//! ends before the API's last event) ends with an error event in the API's own shape, so the
//! client sees a clean end rather than a hang. An error the upstream reports in its own
//! event is relayed as it is. Dropping the relay (the client left) drops the upstream
//! response with it, which closes the upstream connection at once.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use mcp_core::ErrorType;
use mcp_core::sse::{self, EventSplitter};
use mcp_core::upstream::{Outcome, UpstreamError, UpstreamResponse};

use super::attempt::Attempt;
use super::events::{End, Wire};
use super::{ErrorChain, Exchange, insert_served_headers, relayed_headers};
use crate::error::ApiError;
use crate::shutdown::Closing;

/// Tells buffering reverse proxies in front of the gateway not to hold events back.
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// Adds `"stream_options":{"include_usage":true}` to a streamed request so that the upstream
/// reports usage. The body is spliced, not re-serialised, unless the client sent
/// `stream_options` of its own (then that object is amended).
pub(super) fn ask_for_usage(body: Bytes, has_stream_options: bool) -> Result<Bytes, ApiError> {
    if has_stream_options {
        let mut value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                ErrorType::InvalidRequest,
                format!("Invalid JSON body: {e}."),
            )
        })?;
        value["stream_options"]["include_usage"] = serde_json::Value::Bool(true);
        let body = serde_json::to_vec(&value).map_err(|_| {
            ApiError::new(ErrorType::Internal, "The request could not be prepared.")
        })?;
        return Ok(body.into());
    }
    const OPTION: &[u8] = br#""stream_options":{"include_usage":true}"#;
    let Some(open) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok(body);
    };
    if body[open] != b'{' {
        return Ok(body);
    }
    let empty = body[open + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'}');
    let mut spliced = BytesMut::with_capacity(body.len() + OPTION.len() + 1);
    spliced.extend_from_slice(&body[..=open]);
    spliced.extend_from_slice(OPTION);
    if !empty {
        spliced.extend_from_slice(b",");
    }
    spliced.extend_from_slice(&body[open + 1..]);
    Ok(spliced.freeze())
}

/// The client's response for an upstream event stream.
pub(super) fn respond(
    mut exchange: Exchange,
    attempt: Attempt,
    upstream: UpstreamResponse,
    wire: Wire,
) -> HttpResponse {
    let began = Instant::now();
    exchange.respond(200);
    let mut builder = HttpResponse::Ok();
    for header in relayed_headers(exchange.state(), attempt.upstream(), &upstream) {
        builder.insert_header(header);
    }
    insert_served_headers(&exchange, &mut builder);
    builder
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/event-stream")))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((X_ACCEL_BUFFERING, HeaderValue::from_static("no")));
    let idle_timeout = exchange
        .state()
        .upstream(attempt.upstream())
        .stream_idle_timeout;
    let max_event_bytes = exchange.state().max_response_bytes;
    // Everything so far that was not a wait, and the head just built.
    exchange.worked_until_now(began);
    let closing = exchange.state().drain.closing();
    builder.streaming(SseRelay {
        chunks: Box::pin(upstream.into_chunks()),
        closing,
        idle: Box::pin(tokio::time::sleep(idle_timeout)),
        idle_timeout,
        max_event_bytes,
        splitter: EventSplitter::new(),
        attempt,
        exchange,
        wire,
        finished: false,
    })
}

type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>>>>;

struct SseRelay {
    chunks: Chunks,
    /// Completes when the gateway, shutting down, ends the streams still open.
    closing: Closing,
    /// Fires when the upstream has sent nothing for `idle_timeout`.
    idle: Pin<Box<tokio::time::Sleep>>,
    idle_timeout: Duration,
    /// An event still incomplete beyond this many bytes ends the stream.
    max_event_bytes: usize,
    splitter: EventSplitter,
    /// Declared before the exchange, so dropped before it: a stream the client leaves
    /// settles its attempt (cancelled) before the exchange settles the request and, last of
    /// all, takes it out of the in-flight gauge.
    attempt: Attempt,
    exchange: Exchange,
    wire: Wire,
    finished: bool,
}

/// Why a stream was cut short.
enum Break {
    Idle(Duration),
    Reset(UpstreamError),
    MalformedEvent,
    UpstreamErrorEvent,
    Truncated,
    EventTooLarge(usize),
    ShuttingDown,
}

impl Stream for SseRelay {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if this.closing.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Ok(this.cut_short(Bytes::new(), Break::ShuttingDown))));
        }
        loop {
            match this.chunks.as_mut().poll_next(cx) {
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let idle = this.idle_timeout;
                        return Poll::Ready(Some(Ok(
                            this.cut_short(Bytes::new(), Break::Idle(idle))
                        )));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    let arrived = Instant::now();
                    let deadline = tokio::time::Instant::from_std(arrived) + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                    let mut out = this.relay(chunk);
                    if !this.finished && this.splitter.pending().len() > this.max_event_bytes {
                        let before = out.take().unwrap_or_default();
                        let limit = this.max_event_bytes;
                        out = Some(this.cut_short(before, Break::EventTooLarge(limit)));
                    }
                    this.exchange.worked(arrived.elapsed());
                    if let Some(out) = out {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Ok(this.cut_short(Bytes::new(), Break::Reset(e)))));
                }
                Poll::Ready(None) => {
                    let whole = this.splitter.pending().iter().all(u8::is_ascii_whitespace);
                    match this.wire.end() {
                        End::Complete if whole => this.finish_ok(),
                        End::UpstreamError(outcome) if whole => this.finish_failed(outcome),
                        _ => {
                            let cut = this.cut_short(Bytes::new(), Break::Truncated);
                            return Poll::Ready(Some(Ok(cut)));
                        }
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl SseRelay {
    /// Relays the complete events in `chunk`; `None` when none is complete yet or all of them
    /// were removed.
    fn relay(&mut self, chunk: Bytes) -> Option<Bytes> {
        let run = self.splitter.push(chunk)?;
        let mut kept: Option<BytesMut> = None;
        let mut content = 0;
        let mut offset = 0;
        for event in sse::events(&run) {
            let start = offset;
            offset += event.len();
            let keep = match sse::data(&event) {
                None => true,
                Some(data) => match self.wire.read(&data) {
                    Ok(seen) => {
                        if let Some(usage) = seen.usage {
                            self.exchange.set_usage(usage);
                        }
                        if seen.stop_with_error {
                            let before = match kept.take() {
                                Some(mut buf) => {
                                    buf.extend_from_slice(&event);
                                    buf.freeze()
                                }
                                None => run.slice(..offset),
                            };
                            return Some(self.cut_short(before, Break::UpstreamErrorEvent));
                        }
                        content += u64::from(seen.content);
                        seen.keep
                    }
                    Err(_) => {
                        let before = match kept.take() {
                            Some(buf) => buf.freeze(),
                            None => run.slice(..start),
                        };
                        return Some(self.cut_short(before, Break::MalformedEvent));
                    }
                },
            };
            match (&mut kept, keep) {
                (Some(buf), true) => buf.extend_from_slice(&event),
                (Some(_), false) => {}
                (None, true) => {}
                // The first event removed: keep what came before it, copy from now on.
                (None, false) => kept = Some(BytesMut::from(&run[..start])),
            }
        }
        if content > 0 {
            self.exchange.content_written(Instant::now(), content);
        }
        let out = kept.map_or(run, BytesMut::freeze);
        (!out.is_empty()).then_some(out)
    }

    fn finish_ok(&mut self) {
        self.finished = true;
        self.attempt.finish(Outcome::Success);
        self.exchange.complete();
    }

    /// The stream ended after the upstream reported a failure in its own event (Responses'
    /// `response.failed`, Anthropic's `error`): the client has that event; the attempt and
    /// the request are counted as broken.
    fn finish_failed(&mut self, outcome: Outcome) {
        self.finished = true;
        let upstream = self.exchange.state().upstream(self.attempt.upstream());
        tracing::warn!(
            upstream = upstream.client.name(),
            outcome = outcome.as_str(),
            "the upstream reported an error mid-stream"
        );
        self.attempt.finish(outcome);
        self.exchange.amend_last_attempt(outcome);
        self.exchange.interrupted();
        self.exchange.complete();
    }

    /// Ends the stream after `before` with an error event the client can read.
    fn cut_short(&mut self, before: Bytes, why: Break) -> Bytes {
        self.finished = true;
        let (message, outcome) = match &why {
            Break::Idle(d) => (
                format!(
                    "The upstream sent nothing for {} s; the stream was ended.",
                    d.as_secs()
                ),
                Outcome::Timeout,
            ),
            Break::Reset(_) => (
                "The connection to the upstream broke mid-stream.".to_owned(),
                Outcome::StreamInterrupted,
            ),
            Break::MalformedEvent => (
                "The upstream sent an event that is not valid JSON.".to_owned(),
                Outcome::Malformed,
            ),
            Break::UpstreamErrorEvent => (
                "The upstream reported an error mid-stream.".to_owned(),
                Outcome::StreamInterrupted,
            ),
            Break::Truncated => (
                "The upstream ended the stream before its last event.".to_owned(),
                Outcome::StreamInterrupted,
            ),
            Break::ShuttingDown => (
                "The gateway is shutting down; the stream was ended.".to_owned(),
                // The gateway's decision: it says nothing about the upstream.
                Outcome::Cancelled,
            ),
            Break::EventTooLarge(limit) => (
                format!("The upstream sent an event larger than {limit} bytes."),
                Outcome::Malformed,
            ),
        };
        let upstream = self
            .exchange
            .state()
            .upstream(self.attempt.upstream())
            .client
            .name();
        match &why {
            Break::Reset(e) => tracing::warn!(
                upstream,
                error = %ErrorChain(e),
                "upstream stream interrupted"
            ),
            _ => {
                tracing::warn!(upstream, reason = %message, "upstream stream interrupted")
            }
        }
        self.attempt.finish(outcome);
        self.exchange.amend_last_attempt(outcome);
        self.exchange.interrupted();
        self.exchange.complete();
        if matches!(why, Break::UpstreamErrorEvent) {
            // The upstream's own error event already tells the client what happened.
            return before;
        }
        let event = self.wire.error_event(&message);
        let mut out = BytesMut::with_capacity(before.len() + event.len());
        out.extend_from_slice(&before);
        out.extend_from_slice(event.as_bytes());
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_requested_by_splicing_the_body() {
        let body = Bytes::from_static(br#" {"model":"m","stream":true}"#);
        let out = ask_for_usage(body, false).unwrap();
        assert_eq!(
            &out[..],
            br#" {"stream_options":{"include_usage":true},"model":"m","stream":true}"#
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn existing_stream_options_are_amended_not_duplicated() {
        let body = Bytes::from_static(
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":1}}"#,
        );
        let out = ask_for_usage(body, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["x"], 1);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(text.matches("stream_options").count(), 1);
    }
}
