//! Fixed mode's answers, built once at start-up: the fixture bytes as `Bytes` (a request only
//! bumps a reference count) and the stream fixtures split into events, with and without the
//! malformed event. This is the benchmark upstream, so nothing here is built per request.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::fixtures;
use crate::generate::TextKind;
use crate::sse::{self, SseEvent};

/// A fixture body and the tokens its `usage` reports.
#[derive(Debug, Clone)]
pub(crate) struct FixedBody {
    pub(crate) bytes: Bytes,
    pub(crate) tokens: u64,
}

/// A stream fixture's events, plain and with one corrupt event.
#[derive(Debug, Clone)]
pub(crate) struct FixedStream {
    pub(crate) events: Arc<[SseEvent]>,
    pub(crate) corrupt: Arc<[SseEvent]>,
    pub(crate) tokens: u64,
}

/// Every fixed answer.
#[derive(Debug)]
pub(crate) struct FixedReplies {
    pub(crate) chat: FixedBody,
    pub(crate) completion: FixedBody,
    pub(crate) embedding: FixedBody,
    pub(crate) chat_stream: FixedStream,
    pub(crate) completion_stream: FixedStream,
    pub(crate) responses: FixedBody,
    pub(crate) responses_stream: FixedStream,
    pub(crate) messages: FixedBody,
    pub(crate) messages_stream: FixedStream,
    pub(crate) count_tokens: FixedBody,
}

impl FixedReplies {
    pub(crate) fn new() -> Self {
        Self {
            chat: body(fixtures::CHAT_COMPLETION),
            completion: body(fixtures::COMPLETION),
            embedding: body(fixtures::EMBEDDING),
            chat_stream: stream(fixtures::CHAT_COMPLETION_STREAM),
            completion_stream: stream(fixtures::COMPLETION_STREAM),
            responses: body(fixtures::RESPONSES),
            responses_stream: stream(fixtures::RESPONSES_STREAM),
            messages: body(fixtures::MESSAGES),
            messages_stream: stream(fixtures::MESSAGES_STREAM),
            count_tokens: body(fixtures::COUNT_TOKENS),
        }
    }

    pub(crate) fn text(&self, kind: TextKind) -> &FixedBody {
        match kind {
            TextKind::Chat => &self.chat,
            TextKind::Completion => &self.completion,
        }
    }

    pub(crate) fn stream(&self, kind: TextKind) -> &FixedStream {
        match kind {
            TextKind::Chat => &self.chat_stream,
            TextKind::Completion => &self.completion_stream,
        }
    }
}

fn body(fixture: &'static str) -> FixedBody {
    FixedBody {
        bytes: Bytes::from_static(fixture.as_bytes()),
        tokens: serde_json::from_str::<Value>(fixture)
            .ok()
            .and_then(|body| total_tokens(&body))
            .unwrap_or(0),
    }
}

fn stream(fixture: &'static str) -> FixedStream {
    let events = sse::parse_events(fixture);
    let tokens = fixture
        .split("\n\n")
        .filter_map(|event| event.lines().find_map(|line| line.strip_prefix("data: ")))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find_map(|chunk| total_tokens(&chunk).or_else(|| total_tokens(&chunk["response"])))
        .unwrap_or(0);
    let mut corrupt = events.clone();
    sse::insert_corrupt_event(&mut corrupt);
    FixedStream {
        events: events.into(),
        corrupt: corrupt.into(),
        tokens,
    }
}

fn total_tokens(body: &Value) -> Option<u64> {
    let usage = body.get("usage")?;
    usage
        .get("total_tokens")
        .and_then(Value::as_u64)
        .or_else(|| {
            // Anthropic reports no total: its parts, cache included.
            let part = |key: &str| usage.get(key).and_then(Value::as_u64);
            let parts = [
                "input_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
                "output_tokens",
            ];
            parts
                .iter()
                .map(|k| part(k))
                .sum::<Option<u64>>()
                .or(part("output_tokens"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_usage_totals_are_read_at_start_up() {
        let replies = FixedReplies::new();
        assert_eq!(replies.chat.tokens, 31);
        assert_eq!(replies.completion.tokens, 12);
        assert_eq!(replies.embedding.tokens, 10);
        assert_eq!(replies.chat_stream.tokens, 22);
        assert_eq!(replies.completion_stream.tokens, 13);
        assert_eq!(replies.responses.tokens, 2306);
        assert_eq!(replies.responses_stream.tokens, 2106);
        assert_eq!(replies.messages.tokens, 2111);
        assert_eq!(
            replies.chat_stream.corrupt.len(),
            replies.chat_stream.events.len() + 1
        );
    }
}
