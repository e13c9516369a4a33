//! Server-sent event streams: a script of events (generated per request, or replayed from a
//! fixture), played out with the profile's cadence, and the stream faults. The body knows how
//! it ended, so the stats can tell a completed stream from one the client abandoned.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use serde_json::Value;
use tokio::time::{Instant, Sleep};

use crate::stats::{InFlight, StreamEnd};

/// What an event is, which decides the delay before it and where faults may strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// The chat stream's opening `delta.role` chunk.
    Role,
    /// One token (word) of content.
    Content,
    /// The chunk carrying `finish_reason`.
    Finish,
    /// The `include_usage` chunk with `"choices":[]`.
    Usage,
    /// The `malformed_rate` fault: data that is not JSON.
    Corrupt,
    /// `data: [DONE]`.
    Done,
}

/// One event, framed as `data: <payload>\n\n`, or for the typed streams of the Responses
/// and Messages APIs `event: <type>\ndata: <payload>\n\n`.
#[derive(Debug, Clone)]
pub(crate) struct SseEvent {
    kind: EventKind,
    frame: Bytes,
    /// Where `data: ` starts in the frame (after the `event:` line, if any).
    data_at: usize,
}

impl SseEvent {
    pub(crate) fn json(kind: EventKind, payload: &Value) -> Self {
        Self::framed(kind, None, payload.to_string().as_bytes())
    }

    /// A typed event: `event: <payload's type>` before its data.
    pub(crate) fn typed(kind: EventKind, payload: &Value) -> Self {
        let name = payload["type"].as_str().unwrap_or("message");
        Self::framed(kind, Some(name), payload.to_string().as_bytes())
    }

    pub(crate) fn done() -> Self {
        Self::framed(EventKind::Done, None, b"[DONE]")
    }

    fn framed(kind: EventKind, name: Option<&str>, data: &[u8]) -> Self {
        let mut frame = BytesMut::with_capacity(data.len() + 40);
        if let Some(name) = name {
            frame.put_slice(b"event: ");
            frame.put_slice(name.as_bytes());
            frame.put_slice(b"\n");
        }
        let data_at = frame.len();
        frame.put_slice(b"data: ");
        frame.put_slice(data);
        frame.put_slice(b"\n\n");
        Self {
            kind,
            frame: frame.freeze(),
            data_at,
        }
    }

    fn data(&self) -> &[u8] {
        &self.frame[self.data_at + b"data: ".len()..self.frame.len() - 2]
    }

    /// The first half of this event's data: a JSON object cut short is never valid JSON.
    fn corrupted(&self) -> Self {
        let data = self.data();
        let name = std::str::from_utf8(&self.frame[..self.data_at])
            .ok()
            .and_then(|line| line.strip_prefix("event: "))
            .map(str::trim_end);
        Self::framed(EventKind::Corrupt, name, &data[..data.len() / 2])
    }

    pub(crate) fn kind(&self) -> EventKind {
        self.kind
    }
}

/// Splits a complete SSE body (such as a stream fixture) into classified events, each framed
/// as it was written (an `event:` line kept before its `data:` line).
pub(crate) fn parse_events(body: &str) -> Vec<SseEvent> {
    body.split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            let mut name = None;
            let mut data = "";
            for line in event.trim().lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = Some(value.trim());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data = value.trim();
                }
            }
            SseEvent::framed(classify(data), name, data.as_bytes())
        })
        .collect()
}

fn classify(data: &str) -> EventKind {
    if data == "[DONE]" {
        return EventKind::Done;
    }
    let Ok(chunk) = serde_json::from_str::<Value>(data) else {
        return EventKind::Corrupt;
    };
    if let Some(kind) = chunk["type"].as_str() {
        return classify_typed(kind);
    }
    match chunk["choices"].get(0) {
        None => EventKind::Usage,
        Some(choice) if choice["finish_reason"].is_string() => EventKind::Finish,
        Some(choice) if choice["delta"].get("role").is_some() => EventKind::Role,
        Some(_) => EventKind::Content,
    }
}

/// The Responses and Messages events, by their `type`: deltas are content, the events that
/// report the final usage come last, everything before the first delta opens the stream.
pub(crate) fn classify_typed(kind: &str) -> EventKind {
    match kind {
        "response.output_text.delta" | "content_block_delta" => EventKind::Content,
        "response.completed" | "response.incomplete" | "message_delta" | "message_stop" => {
            EventKind::Usage
        }
        "response.created"
        | "response.in_progress"
        | "response.output_item.added"
        | "response.content_part.added"
        | "message_start"
        | "content_block_start"
        | "ping" => EventKind::Role,
        _ => EventKind::Finish,
    }
}

fn content_positions(events: &[SseEvent]) -> impl Iterator<Item = usize> + '_ {
    events
        .iter()
        .enumerate()
        .filter(|(_, event)| event.kind == EventKind::Content)
        .map(|(index, _)| index)
}

/// Inserts a corrupted copy of the middle content chunk right after it.
pub(crate) fn insert_corrupt_event(events: &mut Vec<SseEvent>) {
    let positions: Vec<usize> = content_positions(events).collect();
    if let Some(&middle) = positions.get(positions.len() / 2) {
        let corrupt = events[middle].corrupted();
        events.insert(middle + 1, corrupt);
    }
}

/// Where the `stream_cut_rate` fault strikes: the index of the event that will never be sent,
/// right after a random number (at least one) of content chunks.
pub(crate) fn cut_point(events: &[SseEvent], rng: &mut fastrand::Rng) -> Option<usize> {
    let positions: Vec<usize> = content_positions(events).collect();
    if positions.is_empty() {
        return None;
    }
    let sent = rng.usize(1..=positions.len());
    Some(positions[sent - 1] + 1)
}

/// The cadence of a stream.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pacing {
    /// Before the first content chunk.
    pub(crate) first_token: Duration,
    /// Before every later chunk; the role chunk and `[DONE]` follow without delay.
    pub(crate) between_tokens: Duration,
}

impl Pacing {
    fn before(&self, kind: EventKind, seen_content: bool) -> Duration {
        match kind {
            EventKind::Role | EventKind::Done => Duration::ZERO,
            EventKind::Content if !seen_content => self.first_token,
            _ => self.between_tokens,
        }
    }
}

/// The least wait before a cut. Waiting (rather than failing at once) lets the server flush
/// what was already produced, headers included; otherwise a stream without pacing would be
/// dropped before a byte of it left, which is a different fault.
const CUT_FLUSH_DELAY: Duration = Duration::from_millis(5);

/// The error that ends a cut stream: actix then closes the connection without the terminating
/// chunk, so the client sees the body end abruptly.
#[derive(Debug, thiserror::Error)]
#[error("stream cut by the stream_cut_rate fault")]
pub(crate) struct StreamCut;

/// A response body playing a script of events.
#[derive(Debug)]
pub(crate) struct SseBody {
    events: Arc<[SseEvent]>,
    next: usize,
    cut_at: Option<usize>,
    pacing: Pacing,
    seen_content: bool,
    /// Reused for every delay; `waiting` says whether it is armed for the next event.
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    end: Option<StreamEnd>,
    in_flight: InFlight,
}

impl SseBody {
    pub(crate) fn new(
        events: Arc<[SseEvent]>,
        cut_at: Option<usize>,
        pacing: Pacing,
        in_flight: InFlight,
    ) -> Self {
        in_flight.stats().stream_started();
        Self {
            events,
            next: 0,
            cut_at,
            pacing,
            seen_content: false,
            sleep: None,
            waiting: false,
            end: None,
            in_flight,
        }
    }
}

impl Stream for SseBody {
    type Item = Result<Bytes, StreamCut>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.end.is_some() {
            return Poll::Ready(None);
        }
        let Some(kind) = this.events.get(this.next).map(SseEvent::kind) else {
            this.end = Some(StreamEnd::Completed);
            return Poll::Ready(None);
        };
        if !this.waiting {
            let mut delay = this.pacing.before(kind, this.seen_content);
            if this.cut_at == Some(this.next) {
                delay = delay.max(CUT_FLUSH_DELAY);
            }
            if !delay.is_zero() {
                let deadline = Instant::now() + delay;
                match &mut this.sleep {
                    Some(sleep) => sleep.as_mut().reset(deadline),
                    None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                this.waiting = true;
            }
        }
        if this.waiting {
            if let Some(sleep) = &mut this.sleep {
                ready!(sleep.as_mut().poll(cx));
            }
            this.waiting = false;
        }
        if this.cut_at == Some(this.next) {
            this.end = Some(StreamEnd::Cut);
            return Poll::Ready(Some(Err(StreamCut)));
        }
        let frame = this.events[this.next].frame.clone();
        this.next += 1;
        this.seen_content |= kind == EventKind::Content;
        Poll::Ready(Some(Ok(frame)))
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        let end = self.end.unwrap_or(if self.next >= self.events.len() {
            StreamEnd::Completed
        } else {
            StreamEnd::Cancelled
        });
        self.in_flight.stats().stream_ended(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn kinds(events: &[SseEvent]) -> Vec<EventKind> {
        events.iter().map(SseEvent::kind).collect()
    }

    #[test]
    fn the_chat_stream_fixture_splits_into_role_content_finish_usage_done() {
        use EventKind::*;
        let events = parse_events(fixtures::CHAT_COMPLETION_STREAM);
        assert_eq!(
            kinds(&events),
            [
                Role, Content, Content, Content, Content, Content, Content, Finish, Usage, Done
            ]
        );
        let rebuilt: Vec<u8> = events.iter().flat_map(|e| e.frame.to_vec()).collect();
        assert_eq!(rebuilt, fixtures::CHAT_COMPLETION_STREAM.as_bytes());
    }

    #[test]
    fn typed_stream_fixtures_keep_their_event_lines_and_bytes() {
        for fixture in [fixtures::RESPONSES_STREAM, fixtures::MESSAGES_STREAM] {
            let events = parse_events(fixture);
            let rebuilt: Vec<u8> = events.iter().flat_map(|e| e.frame.to_vec()).collect();
            assert_eq!(rebuilt, fixture.as_bytes());
            assert!(events.iter().any(|e| e.kind == EventKind::Content));
            let mut corrupt = events.clone();
            insert_corrupt_event(&mut corrupt);
            let bad = corrupt
                .iter()
                .find(|e| e.kind == EventKind::Corrupt)
                .unwrap();
            assert!(bad.frame.starts_with(b"event: "));
        }
    }

    #[test]
    fn a_corrupt_event_lands_after_the_middle_content_chunk_and_is_not_json() {
        let mut events = parse_events(fixtures::COMPLETION_STREAM);
        let before = events.len();
        insert_corrupt_event(&mut events);
        assert_eq!(events.len(), before + 1);
        let corrupt = events
            .iter()
            .position(|e| e.kind == EventKind::Corrupt)
            .unwrap();
        assert_eq!(events[corrupt - 1].kind, EventKind::Content);
        assert!(serde_json::from_slice::<Value>(events[corrupt].data()).is_err());
    }

    #[test]
    fn a_cut_always_follows_at_least_one_content_chunk_and_precedes_done() {
        let events = parse_events(fixtures::CHAT_COMPLETION_STREAM);
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..200 {
            let cut = cut_point(&events, &mut rng).unwrap();
            assert_eq!(events[cut - 1].kind, EventKind::Content);
            assert!(matches!(
                events[cut].kind,
                EventKind::Content | EventKind::Finish
            ));
        }
    }
}
