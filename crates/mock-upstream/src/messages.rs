//! Anthropic's Messages API, generated: `POST /v1/messages` (plain or a stream of typed
//! events) and `POST /v1/messages/count_tokens`.
//!
//! Token rules: the prompt is the `system` text and every message's text,
//! `ceil(characters / 4)` plus 3 per message and 3 (what `count_tokens` answers). The part a
//! prompt cache can hold is every block up to and including the last one marked
//! `cache_control`, `ceil(its characters / 4)` tokens: written to the cache the first time,
//! read from it afterwards (`prompt_cache.rs`), and reported apart from `input_tokens`, as
//! Anthropic does. One word of text is one output token.

use serde_json::{Map, Value, json};

use crate::api_error::ApiError;
use crate::generate::{draw_words, random_id};
use crate::prompt_cache::PromptCache;
use crate::request::{model, optional_bool, optional_count, parse_object};
use crate::sse::{EventKind, SseEvent};

/// The largest `max_tokens` accepted.
const MAX_TOKENS: u64 = 131_072;

/// A validated Messages request.
#[derive(Debug)]
pub(crate) struct MessagesRequest {
    pub(crate) model: String,
    pub(crate) stream: bool,
    max_tokens: u64,
    /// Every input token, cache included: what `count_tokens` answers.
    pub(crate) input_tokens: u64,
    /// The cacheable prefix: its estimate and its text.
    prefix: Option<(u64, String)>,
}

/// Reads a Messages (or, with `count_only`, a count_tokens) request; errors are in
/// Anthropic's shape.
pub(crate) fn parse(body: &[u8], count_only: bool) -> Result<MessagesRequest, ApiError> {
    parse_request(body, count_only).map_err(ApiError::anthropic)
}

fn parse_request(body: &[u8], count_only: bool) -> Result<MessagesRequest, ApiError> {
    let object = parse_object(body)?;
    let model = model(&object)?;
    let max_tokens = match optional_count(&object, "max_tokens", MAX_TOKENS)? {
        Some(max) => max,
        None if count_only => 1,
        None => return Err(ApiError::missing_param("max_tokens")),
    };
    let stream = optional_bool(&object, "stream")?.unwrap_or(false);
    let messages = match object.get("messages") {
        Some(Value::Array(messages))
            if !messages.is_empty() && messages.iter().all(Value::is_object) =>
        {
            messages
        }
        None | Some(Value::Null) => return Err(ApiError::missing_param("messages")),
        Some(_) => {
            return Err(ApiError::invalid_param(
                "messages",
                "a non-empty array of objects",
            ));
        }
    };
    let blocks = blocks(&object, messages)?;
    let characters: u64 = blocks
        .iter()
        .map(|(text, _)| text.chars().count() as u64)
        .sum();
    let last_marked = blocks.iter().rposition(|(_, marked)| *marked);
    let prefix = last_marked.map(|last| {
        let text: String = blocks[..=last].iter().map(|(t, _)| *t).collect();
        ((text.chars().count() as u64).div_ceil(4), text)
    });
    Ok(MessagesRequest {
        model,
        stream,
        max_tokens,
        input_tokens: characters.div_ceil(4) + 3 * messages.len() as u64 + 3,
        prefix,
    })
}

/// The text blocks in order, system first, each with whether it carries `cache_control`.
fn blocks<'a>(
    object: &'a Map<String, Value>,
    messages: &'a [Value],
) -> Result<Vec<(&'a str, bool)>, ApiError> {
    let mut out = Vec::new();
    let mut push = |content: Option<&'a Value>, param: &str| -> Result<(), ApiError> {
        match content {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(text)) => {
                out.push((text.as_str(), false));
                Ok(())
            }
            Some(Value::Array(parts)) => {
                for part in parts {
                    let text = part.get("text").and_then(Value::as_str).unwrap_or("");
                    out.push((
                        text,
                        part.get("cache_control").is_some_and(|c| !c.is_null()),
                    ));
                }
                Ok(())
            }
            Some(_) => Err(ApiError::invalid_param(
                param,
                "a string or an array of blocks",
            )),
        }
    };
    push(object.get("system"), "system")?;
    for message in messages {
        push(message.get("content"), "messages.content")?;
    }
    Ok(out)
}

/// One generated message.
#[derive(Debug)]
pub(crate) struct Generated {
    pub(crate) body: Value,
    pub(crate) total_tokens: u64,
    words: Vec<&'static str>,
}

pub(crate) fn generate(
    request: &MessagesRequest,
    cache: &PromptCache,
    rng: &mut fastrand::Rng,
) -> Generated {
    let (words, finish) = draw_words(Some(request.max_tokens), rng);
    let cached = match &request.prefix {
        Some((tokens, text)) => cache.lookup(&request.model, text, *tokens),
        None => Default::default(),
    };
    let input = request
        .input_tokens
        .saturating_sub(cached.read + cached.written);
    let output = words.len() as u64;
    let body = json!({
        "id": random_id("msg_01", rng),
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": [{"type": "text", "text": words.join(" ")}],
        "stop_reason": if finish == "length" { "max_tokens" } else { "end_turn" },
        "stop_sequence": null,
        "usage": {
            "input_tokens": input,
            "cache_creation_input_tokens": cached.written,
            "cache_read_input_tokens": cached.read,
            "output_tokens": output,
            "service_tier": "standard",
        },
    });
    Generated {
        body,
        total_tokens: request.input_tokens + output,
        words,
    }
}

impl Generated {
    /// The stream: `message_start` (the input side of the usage, output 1), the text block
    /// opening, a `ping`, one `content_block_delta` per word, the block closing,
    /// `message_delta` (the stop reason and the output count) and `message_stop`.
    pub(crate) fn events(&self) -> Vec<SseEvent> {
        let mut start = self.body.clone();
        start["content"] = json!([]);
        start["stop_reason"] = Value::Null;
        start["usage"]["output_tokens"] = json!(1);
        let mut events = vec![
            (
                EventKind::Role,
                json!({"type": "message_start", "message": start}),
            ),
            (
                EventKind::Role,
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}),
            ),
            (EventKind::Role, json!({"type": "ping"})),
        ];
        let count = self.words.len();
        for (i, word) in self.words.iter().enumerate() {
            let text = if i + 1 < count {
                format!("{word} ")
            } else {
                (*word).to_owned()
            };
            events.push((
                EventKind::Content,
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        events.push((
            EventKind::Finish,
            json!({"type": "content_block_stop", "index": 0}),
        ));
        events.push((
            EventKind::Usage,
            json!({"type": "message_delta",
                   "delta": {"stop_reason": self.body["stop_reason"], "stop_sequence": null},
                   "usage": {"output_tokens": self.body["usage"]["output_tokens"]}}),
        ));
        events.push((EventKind::Usage, json!({"type": "message_stop"})));
        events
            .into_iter()
            .map(|(kind, event)| SseEvent::typed(kind, &event))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_prefix_is_written_then_read_and_kept_out_of_input_tokens() {
        let system = "abcd".repeat(1200);
        let body = format!(
            r#"{{"model":"claude","max_tokens":8,"system":[{{"type":"text","text":"{system}","cache_control":{{"type":"ephemeral"}}}}],
               "messages":[{{"role":"user","content":"abcdefgh"}}]}}"#
        );
        let request = parse(body.as_bytes(), false).unwrap();
        // 4808 characters: 1202 tokens, plus 3 for the message and 3.
        assert_eq!(request.input_tokens, 1208);
        let cache = PromptCache::default();
        let mut rng = fastrand::Rng::with_seed(3);
        let first = generate(&request, &cache, &mut rng);
        assert_eq!(first.body["usage"]["cache_creation_input_tokens"], 1200);
        assert_eq!(first.body["usage"]["input_tokens"], 8);
        let second = generate(&request, &cache, &mut rng);
        assert_eq!(second.body["usage"]["cache_read_input_tokens"], 1200);
        assert_eq!(second.body["usage"]["cache_creation_input_tokens"], 0);
        let words = second.words.len();
        let events = second.events();
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind() == EventKind::Content)
                .count(),
            words
        );
    }

    #[test]
    fn a_request_without_max_tokens_is_refused_in_anthropics_words() {
        let error = parse(
            br#"{"model":"c","messages":[{"role":"user","content":"x"}]}"#,
            false,
        )
        .unwrap_err();
        assert!(error.to_string().contains("max_tokens"));
        assert!(
            parse(
                br#"{"model":"c","messages":[{"role":"user","content":"x"}]}"#,
                true
            )
            .is_ok()
        );
    }
}
