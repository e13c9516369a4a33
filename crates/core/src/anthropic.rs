//! The parts of Anthropic's Messages API the gateway reads or writes: the usage of an
//! answer, what each streamed event means for accounting, and the error shape
//! (`{"type":"error","error":{"type","message"}}`) of the errors the gateway answers on the
//! Messages endpoints and of the event that ends a stream it cuts short.
//!
//! A Messages stream reports its usage in two parts: `message_start` carries the input side
//! (`input_tokens` and the cache fields) and `message_delta` the cumulative output (newer API
//! versions repeat the input side there too). It ends with `message_stop`; an `error` event
//! (e.g. `overloaded_error`, the in-stream form of a 529) ends it early.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

use crate::usage::{self, AnthropicUsage, Usage};

#[derive(Deserialize)]
struct UsagePeek {
    #[serde(default, deserialize_with = "usage::object")]
    usage: Option<AnthropicUsage>,
}

/// Validates a complete answer body and returns its `usage`, if any.
pub fn read_usage(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    serde_json::from_slice::<UsagePeek>(body).map(|p| p.usage.map(Usage::from))
}

/// What one streamed event says, as far as accounting goes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EventSummary {
    /// A `content_block_delta`: generated text, thinking or tool input.
    pub content: bool,
    /// `message_start`'s usage.
    pub start_usage: Option<AnthropicUsage>,
    /// `message_delta`'s usage.
    pub delta_usage: Option<AnthropicUsage>,
    /// `message_stop`: the stream is complete.
    pub stop: bool,
    /// An `error` event, and whether it says the API is overloaded.
    pub error: Option<StreamError>,
}

/// An error reported inside a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// `overloaded_error`: what a 529 would have said before the stream began.
    Overloaded,
    Other,
}

#[derive(Deserialize)]
struct EventPeek<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    message: Option<MessagePeek>,
    #[serde(default, deserialize_with = "usage::object")]
    usage: Option<AnthropicUsage>,
    #[serde(borrow, default)]
    error: Option<ErrorPeek<'a>>,
}

#[derive(Deserialize)]
struct MessagePeek {
    #[serde(default, deserialize_with = "usage::object")]
    usage: Option<AnthropicUsage>,
    #[serde(default, rename = "content")]
    _content: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ErrorPeek<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

/// Reads one streamed event's JSON `data`.
pub fn summarize_event(data: &[u8]) -> Result<EventSummary, serde_json::Error> {
    let peek: EventPeek<'_> = serde_json::from_slice(data)?;
    let mut summary = EventSummary::default();
    match peek.kind.as_deref().unwrap_or("") {
        "message_start" => summary.start_usage = peek.message.and_then(|m| m.usage),
        "message_delta" => summary.delta_usage = peek.usage,
        "content_block_delta" => summary.content = true,
        "message_stop" => summary.stop = true,
        "error" => {
            let overloaded = peek
                .error
                .and_then(|e| e.kind)
                .is_some_and(|k| k == "overloaded_error");
            summary.error = Some(if overloaded {
                StreamError::Overloaded
            } else {
                StreamError::Other
            });
        }
        _ => {}
    }
    Ok(summary)
}

/// A stream's usage so far, from its two halves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamUsage {
    start: Option<AnthropicUsage>,
    delta: Option<AnthropicUsage>,
}

impl StreamUsage {
    /// Takes in an event's usage, if it has any; `true` when it did.
    pub fn absorb(&mut self, event: &EventSummary) -> bool {
        if let Some(start) = event.start_usage {
            self.start = Some(start);
        }
        if let Some(delta) = event.delta_usage {
            self.delta = Some(delta);
        }
        event.start_usage.is_some() || event.delta_usage.is_some()
    }

    /// The usage reported so far: the input side from `message_delta` when it repeats it,
    /// else from `message_start`; the output only from `message_delta` (`message_start`'s
    /// output count is a placeholder), so `None` until it arrives.
    pub fn usage(&self) -> Option<Usage> {
        let input = match (self.delta, self.start) {
            (Some(d), _) if d.input_tokens.is_some() => Some(d),
            (_, start) => start,
        };
        if input.is_none() && self.delta.is_none() {
            return None;
        }
        let input = input.unwrap_or_default();
        Some(Usage::from(AnthropicUsage {
            output_tokens: self.delta.and_then(|d| d.output_tokens),
            ..input
        }))
    }
}

/// Anthropic's error body: `{"type":"error","error":{"type":kind,"message":message}}`.
pub fn error_body(kind: &str, message: &str) -> String {
    json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
}

/// The same, as the `error` event that ends a stream.
pub fn error_event(kind: &str, message: &str) -> String {
    format!("event: error\ndata: {}\n\n", error_body(kind, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> EventSummary {
        summarize_event(data.as_bytes()).unwrap()
    }

    #[test]
    fn a_stream_reports_input_at_the_start_and_cumulative_output_at_the_end() {
        let mut usage = StreamUsage::default();
        assert!(usage.absorb(&event(
            r#"{"type":"message_start","message":{"id":"msg_1","content":[],"usage":{"input_tokens":25,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"output_tokens":1}}}"#
        )));
        let partial = usage.usage().unwrap();
        assert_eq!((partial.prompt(), partial.output), (1125, None));
        assert!(event(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#).content);
        assert!(!usage.absorb(&event(r#"{"type":"ping"}"#)));
        usage.absorb(&event(
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}"#,
        ));
        usage.absorb(&event(
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42}}"#,
        ));
        let u = usage.usage().unwrap();
        assert_eq!(
            (u.prompt(), u.completion()),
            (1125, 42),
            "cumulative, not added"
        );
        assert_eq!((u.cache_read, u.cache_write), (1000, 100));
        assert!(event(r#"{"type":"message_stop"}"#).stop);
    }

    #[test]
    fn a_message_delta_that_repeats_the_input_side_is_taken_whole() {
        let mut usage = StreamUsage::default();
        usage.absorb(&event(
            r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"output_tokens":1}}}"#,
        ));
        usage.absorb(&event(
            r#"{"type":"message_delta","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":8}}"#,
        ));
        let u = usage.usage().unwrap();
        assert_eq!((u.prompt(), u.cache_read, u.completion()), (15, 5, 8));
    }

    #[test]
    fn an_overloaded_error_event_is_told_from_other_errors() {
        let overloaded =
            event(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        assert_eq!(overloaded.error, Some(StreamError::Overloaded));
        let other = event(r#"{"type":"error","error":{"type":"api_error","message":"x"}}"#);
        assert_eq!(other.error, Some(StreamError::Other));
    }

    #[test]
    fn errors_have_anthropics_shape() {
        let body: serde_json::Value =
            serde_json::from_str(&error_body("not_found_error", "no \"such\" model")).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "not_found_error");
        assert_eq!(body["error"]["message"], "no \"such\" model");
        let event = error_event("api_error", "cut");
        assert!(event.starts_with("event: error\ndata: {") && event.ends_with("}\n\n"));
    }

    #[test]
    fn a_plain_answer_gives_its_usage_in_the_gateways_convention() {
        let body = br#"{"id":"msg_1","type":"message","content":[{"type":"text","text":"hi"}],
            "usage":{"input_tokens":3,"cache_read_input_tokens":2,"output_tokens":4}}"#;
        let u = read_usage(body).unwrap().unwrap();
        assert_eq!((u.prompt(), u.cache_read, u.completion()), (5, 2, 4));
    }
}
