//! The parts of OpenAI's Responses API the gateway reads or writes: the usage of an answer,
//! what each streamed event means for accounting, and the error event that ends a stream the
//! gateway has to cut short.
//!
//! A Responses stream is a sequence of typed events (`event: <type>` and a JSON `data` whose
//! `type` repeats it) with no `[DONE]`: it ends with `response.completed`,
//! `response.incomplete` or `response.failed`, each carrying the whole response and its
//! `usage`. Time to first token starts at the first output delta of any kind (text, refusal,
//! function arguments, reasoning, audio, ...).

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

use crate::usage::{self, ResponsesUsage, Usage};

#[derive(Deserialize)]
struct UsagePeek<'a> {
    #[serde(default, deserialize_with = "usage::object")]
    usage: Option<ResponsesUsage>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
}

/// Validates a complete response body and returns its `usage`, if any.
pub fn read_usage(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    read_answer(body).map(|(usage, _)| usage)
}

/// Validates a complete response body and returns its `usage`, if any, and whether the
/// response is still pending (`queued` or `in_progress`: created with `background: true`),
/// so that its usage is not due yet.
pub fn read_answer(body: &[u8]) -> Result<(Option<Usage>, bool), serde_json::Error> {
    let peek = serde_json::from_slice::<UsagePeek<'_>>(body)?;
    let pending = matches!(peek.status.as_deref(), Some("queued" | "in_progress"));
    Ok((peek.usage.map(Usage::from), pending))
}

#[derive(Deserialize)]
struct ErrorPeek<'a> {
    #[serde(borrow, default)]
    error: Option<ErrorFields<'a>>,
}

#[derive(Deserialize)]
struct ErrorFields<'a> {
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    param: Option<Cow<'a, str>>,
}

/// Whether an upstream's 4xx says it does not hold the stored response (or conversation) a
/// request builds on: OpenAI answers 400 with `code: previous_response_not_found` (some
/// servers only name the `param`), or 404.
pub fn is_unknown_stored_context(status: u16, body: &[u8]) -> bool {
    match status {
        404 => true,
        400 => serde_json::from_slice::<ErrorPeek<'_>>(body)
            .ok()
            .and_then(|p| p.error)
            .is_some_and(|e| {
                e.code.as_deref() == Some("previous_response_not_found")
                    || matches!(
                        e.param.as_deref(),
                        Some("previous_response_id" | "conversation")
                    )
            }),
        _ => false,
    }
}

/// How a Responses stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    Completed,
    /// Stopped early (`max_output_tokens`, content filter): a normal end, like a chat
    /// completion's `finish_reason: length`.
    Incomplete,
    /// The upstream failed to produce the response; the event says why.
    Failed,
}

/// What one streamed event says, as far as accounting goes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EventSummary {
    /// An output delta of any kind.
    pub output: bool,
    /// The usage a terminal event reports.
    pub usage: Option<Usage>,
    pub terminal: Option<Terminal>,
    /// An `error` event.
    pub error: bool,
    pub sequence_number: Option<u64>,
}

#[derive(Deserialize)]
struct EventPeek<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    sequence_number: Option<u64>,
    #[serde(default)]
    response: Option<ResponsePeek>,
}

#[derive(Deserialize)]
struct ResponsePeek {
    #[serde(default, deserialize_with = "usage::object")]
    usage: Option<ResponsesUsage>,
    #[serde(default, rename = "error")]
    _error: Option<IgnoredAny>,
}

/// Reads one streamed event's JSON `data`.
pub fn summarize_event(data: &[u8]) -> Result<EventSummary, serde_json::Error> {
    let peek: EventPeek<'_> = serde_json::from_slice(data)?;
    let kind = peek.kind.as_deref().unwrap_or("");
    let terminal = match kind {
        "response.completed" => Some(Terminal::Completed),
        "response.incomplete" => Some(Terminal::Incomplete),
        "response.failed" => Some(Terminal::Failed),
        _ => None,
    };
    let usage = terminal
        .and(peek.response)
        .and_then(|r| r.usage)
        .map(Usage::from);
    Ok(EventSummary {
        output: kind.ends_with(".delta") || kind == "response.image_generation_call.partial_image",
        usage,
        terminal,
        error: kind == "error",
        sequence_number: peek.sequence_number,
    })
}

/// The `error` event the gateway ends a broken stream with, in the API's own shape
/// (`{"type":"error","code","message","param","sequence_number"}`), framed as an SSE event.
pub fn error_event(code: &str, message: &str, sequence_number: u64) -> String {
    let data = json!({
        "type": "error",
        "code": code,
        "message": message,
        "param": null,
        "sequence_number": sequence_number,
    });
    format!("event: error\ndata: {data}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_output_delta_counts_as_output_and_nothing_else_does() {
        for kind in [
            "response.output_text.delta",
            "response.refusal.delta",
            "response.function_call_arguments.delta",
            "response.reasoning_summary_text.delta",
            "response.audio.delta",
        ] {
            let data = format!(r#"{{"type":"{kind}","delta":"x","sequence_number":4}}"#);
            let e = summarize_event(data.as_bytes()).unwrap();
            assert!(e.output, "{kind}");
            assert_eq!(e.sequence_number, Some(4));
        }
        for kind in [
            "response.created",
            "response.output_text.done",
            "response.in_progress",
        ] {
            let data = format!(r#"{{"type":"{kind}","response":{{"usage":null}}}}"#);
            let e = summarize_event(data.as_bytes()).unwrap();
            assert!(
                !e.output && e.terminal.is_none() && e.usage.is_none(),
                "{kind}"
            );
        }
    }

    #[test]
    fn usage_is_read_from_whichever_terminal_event_arrives() {
        for (kind, terminal) in [
            ("response.completed", Terminal::Completed),
            ("response.incomplete", Terminal::Incomplete),
            ("response.failed", Terminal::Failed),
        ] {
            let data = format!(
                r#"{{"type":"{kind}","sequence_number":9,"response":{{"id":"resp_1","error":null,
                "output":[{{"type":"message","content":[{{"type":"output_text","text":"\"usage\""}}]}}],
                "usage":{{"input_tokens":12,"input_tokens_details":{{"cached_tokens":4}},
                "output_tokens":7,"output_tokens_details":{{"reasoning_tokens":3}}}}}}}}"#
            );
            let e = summarize_event(data.as_bytes()).unwrap();
            assert_eq!(e.terminal, Some(terminal));
            let u = e.usage.unwrap();
            assert_eq!(
                (u.prompt(), u.completion(), u.cache_read, u.reasoning),
                (12, 7, 4, 3)
            );
        }
    }

    #[test]
    fn a_plain_answer_gives_its_usage_and_a_truncated_one_is_an_error() {
        let body = br#"{"id":"resp_1","object":"response","status":"completed",
            "usage":{"input_tokens":3,"output_tokens":2,"total_tokens":5}}"#;
        assert_eq!(read_usage(body).unwrap().unwrap().completion(), 2);
        let background = br#"{"id":"resp_2","object":"response","status":"queued","usage":null}"#;
        assert_eq!(read_answer(background).unwrap(), (None, true));
        assert!(!read_answer(body).unwrap().1);
        assert!(read_usage(br#"{"id":"resp_1","usage":{"#).is_err());
    }

    #[test]
    fn an_unknown_previous_response_is_told_from_other_client_errors() {
        let missing = br#"{"error":{"message":"Previous response with id 'resp_1' not found.","type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}}"#;
        assert!(is_unknown_stored_context(400, missing));
        assert!(is_unknown_stored_context(404, b"not json"));
        let other = br#"{"error":{"message":"bad","type":"invalid_request_error","param":"input","code":null}}"#;
        assert!(!is_unknown_stored_context(400, other));
        assert!(!is_unknown_stored_context(401, missing));
    }

    #[test]
    fn the_error_event_is_the_apis_own_shape() {
        let event = error_event("stream_interrupted", "cut \"short\"", 5);
        let data = event
            .strip_prefix("event: error\ndata: ")
            .and_then(|d| d.strip_suffix("\n\n"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "stream_interrupted");
        assert_eq!(v["message"], "cut \"short\"");
        assert_eq!(v["sequence_number"], 5);
        assert!(summarize_event(data.as_bytes()).unwrap().error);
    }
}
