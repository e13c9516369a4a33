//! What the streaming relay reads in each event, per wire format: the content that starts the
//! time to first token, the usage, an error the upstream reports, and whether the stream
//! ended as its API says a complete stream ends.
//!
//! - OpenAI (chat completions, completions): `data:` chunks, usage in the last one (which the
//!   gateway may have asked for and then removes), `[DONE]`; an error chunk ends the relay.
//! - Responses: typed events, usage in the terminal `response.completed`,
//!   `response.incomplete` or `response.failed`, which must arrive.
//! - Anthropic Messages: typed events, input usage in `message_start`, cumulative output in
//!   `message_delta`, `message_stop` last; an `error` event (`overloaded_error`...) ends it.
//!
//! The events are relayed unchanged whatever they say; only a stream that breaks gets an
//! event of the gateway's own, in the API's error shape.

use mcp_core::anthropic::{self, StreamError, StreamUsage};
use mcp_core::openai::{self, ErrorBody};
use mcp_core::responses::{self, Terminal};
use mcp_core::sse::DONE;
use mcp_core::upstream::Outcome;
use mcp_core::usage::Usage;
use mcp_core::{ErrorType, Protocol};

/// One stream's wire format and what its events said so far.
#[derive(Debug)]
pub(super) enum Wire {
    OpenAi {
        /// The gateway asked for the usage chunk; the client did not.
        strip_usage: bool,
    },
    Responses {
        terminal: Option<Terminal>,
        error: bool,
        last_sequence: Option<u64>,
    },
    Anthropic {
        usage: StreamUsage,
        stopped: bool,
        error: Option<StreamError>,
    },
}

/// What one event means for the relay.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Generated output: time to first token, inter-token latency.
    pub(super) content: bool,
    /// The usage so far, when this event changed it.
    pub(super) usage: Option<Usage>,
    /// Pass the event on (false only for the usage chunk the gateway asked for itself).
    pub(super) keep: bool,
    /// The upstream reported an error and the relay ends here (OpenAI's chunks).
    pub(super) stop_with_error: bool,
}

/// How a stream whose body ended (without a broken event) came to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Complete,
    /// The upstream said it failed, in its own event, which the client has.
    UpstreamError(Outcome),
    /// Its last event never came.
    Truncated,
}

impl Wire {
    pub(super) fn new(protocol: Protocol, strip_usage: bool) -> Self {
        match protocol {
            Protocol::OpenAi => Wire::OpenAi { strip_usage },
            Protocol::Responses => Wire::Responses {
                terminal: None,
                error: false,
                last_sequence: None,
            },
            Protocol::Anthropic => Wire::Anthropic {
                usage: StreamUsage::default(),
                stopped: false,
                error: None,
            },
        }
    }

    /// Reads one event's `data`; an error when it is not the JSON the API sends.
    pub(super) fn read(&mut self, data: &[u8]) -> Result<Seen, serde_json::Error> {
        match self {
            Wire::OpenAi { strip_usage } => {
                if data == DONE {
                    return Ok(Seen {
                        keep: true,
                        ..Seen::default()
                    });
                }
                let summary = openai::summarize_chunk(data)?;
                Ok(Seen {
                    content: summary.has_content,
                    usage: summary.usage,
                    keep: !(*strip_usage && summary.no_choices && summary.usage.is_some()),
                    stop_with_error: summary.is_error,
                })
            }
            Wire::Responses {
                terminal,
                error,
                last_sequence,
            } => {
                let event = responses::summarize_event(data)?;
                *last_sequence = event.sequence_number.or(*last_sequence);
                *error |= event.error;
                if event.terminal.is_some() {
                    *terminal = event.terminal;
                }
                Ok(Seen {
                    content: event.output,
                    usage: event.usage,
                    keep: true,
                    stop_with_error: false,
                })
            }
            Wire::Anthropic {
                usage,
                stopped,
                error,
            } => {
                let event = anthropic::summarize_event(data)?;
                *stopped |= event.stop;
                if event.error.is_some() {
                    *error = event.error;
                }
                let changed = usage.absorb(&event);
                Ok(Seen {
                    content: event.content,
                    usage: if changed { usage.usage() } else { None },
                    keep: true,
                    stop_with_error: false,
                })
            }
        }
    }

    /// How the stream ended, once the upstream's body is over.
    pub(super) fn end(&self) -> End {
        match self {
            // An OpenAI-compatible server may end without `[DONE]`; what it sent is whole.
            Wire::OpenAi { .. } => End::Complete,
            Wire::Responses {
                terminal, error, ..
            } => match terminal {
                Some(Terminal::Completed | Terminal::Incomplete) => End::Complete,
                Some(Terminal::Failed) => End::UpstreamError(Outcome::StreamInterrupted),
                None if *error => End::UpstreamError(Outcome::StreamInterrupted),
                None => End::Truncated,
            },
            Wire::Anthropic { stopped, error, .. } => match (error, stopped) {
                (Some(StreamError::Overloaded), _) => End::UpstreamError(Outcome::Overloaded),
                (Some(StreamError::Other), _) => End::UpstreamError(Outcome::StreamInterrupted),
                (None, true) => End::Complete,
                (None, false) => End::Truncated,
            },
        }
    }

    /// The event the gateway ends a broken stream with, in the API's error shape.
    pub(super) fn error_event(&self, message: &str) -> String {
        let kind = ErrorType::StreamInterrupted;
        match self {
            Wire::OpenAi { .. } => {
                let body = ErrorBody::new(message, kind.openai_type(), None, kind.as_str());
                format!("data: {}\n\n", body.to_json())
            }
            Wire::Responses { last_sequence, .. } => {
                let next = last_sequence.map_or(0, |n| n + 1);
                responses::error_event(kind.as_str(), message, next)
            }
            Wire::Anthropic { .. } => anthropic::error_event(kind.anthropic_type(), message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_responses_stream_is_whole_only_with_its_terminal_event() {
        let mut wire = Wire::new(Protocol::Responses, false);
        let delta = br#"{"type":"response.output_text.delta","delta":"Hi","sequence_number":3}"#;
        assert!(wire.read(delta).unwrap().content);
        assert_eq!(wire.end(), End::Truncated);
        let event = wire.error_event("cut");
        assert!(event.contains(r#""sequence_number":4"#), "{event}");
        wire.read(br#"{"type":"response.failed","response":{"usage":{"input_tokens":2,"output_tokens":1}}}"#)
            .unwrap();
        assert_eq!(wire.end(), End::UpstreamError(Outcome::StreamInterrupted));
    }

    #[test]
    fn an_anthropic_stream_ends_with_message_stop_or_the_error_it_reports() {
        let mut wire = Wire::new(Protocol::Anthropic, false);
        let seen = wire
            .read(br#"{"type":"message_start","message":{"usage":{"input_tokens":3,"output_tokens":1}}}"#)
            .unwrap();
        assert_eq!(seen.usage.unwrap().prompt(), 3);
        assert_eq!(wire.end(), End::Truncated);
        wire.read(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .unwrap();
        assert_eq!(wire.end(), End::UpstreamError(Outcome::Overloaded));
        let event = wire.error_event("cut");
        assert!(
            event.starts_with("event: error\ndata: {\"error\":")
                || event.contains(r#""type":"error""#)
        );
    }

    #[test]
    fn openai_chunks_keep_their_rules() {
        let mut wire = Wire::new(Protocol::OpenAi, true);
        assert!(wire.read(DONE).unwrap().keep);
        let usage = wire
            .read(br#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#)
            .unwrap();
        assert!(!usage.keep);
        assert!(
            wire.read(br#"{"error":{"message":"x"}}"#)
                .unwrap()
                .stop_with_error
        );
        assert!(wire.read(b"{").is_err());
    }
}
