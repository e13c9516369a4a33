//! OpenAI's Responses API, generated: `POST /v1/responses` (plain or a stream of typed
//! events) and the store behind `GET`/`DELETE /v1/responses/{id}` and
//! `GET /v1/responses/{id}/input_items`.
//!
//! Token rules, on top of the chat rules (`usage.rs`): the prompt is `instructions` and every
//! input item (a string input is one user message), `ceil(characters / 4)` plus 3 per item
//! and 3; a `previous_response_id` adds that response's input and output tokens. The part a
//! prompt cache can hold is everything before the last item (with the previous response),
//! cached by the rules of `prompt_cache.rs`. `reasoning.effort` adds reasoning tokens: 1, 2 or
//! 4 per word of text for `low`, `medium`, `high`. A response is stored unless `store` is
//! false, and a `previous_response_id` this instance does not hold is refused as OpenAI
//! refuses it (400 `previous_response_not_found`).

use serde_json::{Map, Value, json};

pub(crate) use crate::response_store::ResponseStore;

use crate::api_error::ApiError;
use crate::generate::{draw_words, random_id, unix_now};
use crate::prompt_cache::{PromptCache, openai_cached};
use crate::request::{model, optional_bool, optional_count, parse_object};
use crate::sse::{SseEvent, classify_typed};
use crate::usage::content_characters;

/// A validated `POST /v1/responses`.
#[derive(Debug)]
pub(crate) struct ResponsesRequest {
    pub(crate) model: String,
    pub(crate) stream: bool,
    max_output_tokens: Option<u64>,
    previous_response_id: Option<String>,
    effort: Option<(&'static str, u64)>,
    store: bool,
    instructions: Option<String>,
    items: Vec<Value>,
    prompt_tokens: u64,
    /// The cacheable part: its estimate and its text.
    prefix: (u64, String),
}

pub(crate) fn parse(body: &[u8], store: &ResponseStore) -> Result<ResponsesRequest, ApiError> {
    let object = parse_object(body)?;
    let model = model(&object)?;
    let stream = optional_bool(&object, "stream")?.unwrap_or(false);
    let max_output_tokens = optional_count(&object, "max_output_tokens", 131_072)?;
    let items = match object.get("input") {
        None | Some(Value::Null) => return Err(ApiError::missing_param("input")),
        Some(Value::String(text)) if !text.is_empty() => vec![json!({
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })],
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_object) => {
            items.clone()
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                "input",
                "a non-empty string or array of input items",
            ));
        }
    };
    let instructions = match object.get("instructions") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => return Err(ApiError::invalid_param("instructions", "a string")),
    };
    let effort = reasoning_effort(&object)?;
    let previous_response_id = match object.get("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err(ApiError::invalid_param("previous_response_id", "a string")),
    };
    let previous_tokens = match &previous_response_id {
        None => 0,
        Some(id) => store
            .tokens(id)
            .ok_or_else(|| ApiError::previous_response_not_found(id))?,
    };
    let characters = |items: &[Value]| -> u64 {
        items.iter().map(item_characters).sum::<u64>()
            + instructions
                .as_deref()
                .map_or(0, |t| t.chars().count() as u64)
    };
    let earlier = &items[..items.len() - 1];
    let prompt_tokens =
        previous_tokens + characters(&items).div_ceil(4) + 3 * items.len() as u64 + 3;
    let prefix_tokens =
        previous_tokens + characters(earlier).div_ceil(4) + 3 * earlier.len() as u64;
    let prefix_text = format!(
        "{}\u{0}{}\u{0}{}",
        previous_response_id.as_deref().unwrap_or(""),
        instructions.as_deref().unwrap_or(""),
        Value::Array(earlier.to_vec())
    );
    Ok(ResponsesRequest {
        model,
        stream,
        max_output_tokens,
        previous_response_id,
        effort,
        store: optional_bool(&object, "store")?.unwrap_or(true),
        instructions,
        items,
        prompt_tokens,
        prefix: (prefix_tokens, prefix_text),
    })
}

fn item_characters(item: &Value) -> u64 {
    match item.get("content") {
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(|t| t.chars().count() as u64)
            .sum(),
        content => content_characters(content),
    }
}

fn reasoning_effort(object: &Map<String, Value>) -> Result<Option<(&'static str, u64)>, ApiError> {
    let effort = match object.get("reasoning") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(reasoning)) => reasoning.get("effort").and_then(Value::as_str),
        Some(_) => return Err(ApiError::invalid_param("reasoning", "an object")),
    };
    Ok(match effort {
        None => None,
        Some("minimal") => Some(("minimal", 0)),
        Some("low") => Some(("low", 1)),
        Some("medium") => Some(("medium", 2)),
        Some("high") => Some(("high", 4)),
        Some(_) => {
            return Err(ApiError::invalid_param(
                "reasoning.effort",
                "one of 'minimal', 'low', 'medium', 'high'",
            ));
        }
    })
}

/// One generated response.
#[derive(Debug)]
pub(crate) struct Generated {
    /// The final response object, as a plain answer or in its terminal event.
    pub(crate) body: Value,
    pub(crate) total_tokens: u64,
    words: Vec<&'static str>,
}

pub(crate) fn generate(
    request: &ResponsesRequest,
    cache: &PromptCache,
    store: &ResponseStore,
    rng: &mut fastrand::Rng,
) -> Generated {
    let (words, finish) = draw_words(request.max_output_tokens, rng);
    let reasoning = words.len() as u64 * request.effort.map_or(0, |(_, per_word)| per_word);
    let (prefix_tokens, prefix_text) = &request.prefix;
    let cached = openai_cached(
        cache
            .lookup(&request.model, prefix_text, *prefix_tokens)
            .read,
    );
    let output_tokens = words.len() as u64 + reasoning;
    let id = random_id("resp_", rng);
    let message_id = random_id("msg_", rng);
    let mut output = Vec::new();
    if request.effort.is_some() {
        output.push(json!({"id": random_id("rs_", rng), "type": "reasoning", "summary": []}));
    }
    output.push(json!({
        "id": message_id, "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": words.join(" "), "annotations": []}],
    }));
    let incomplete = finish == "length";
    let body = json!({
        "id": id,
        "object": "response",
        "created_at": unix_now(),
        "status": if incomplete { "incomplete" } else { "completed" },
        "error": null,
        "incomplete_details": if incomplete { json!({"reason": "max_output_tokens"}) } else { Value::Null },
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": request.effort.map(|(name, _)| name), "summary": null},
        "store": request.store,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": request.prompt_tokens,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": request.prompt_tokens + output_tokens,
        },
        "user": null,
        "metadata": {},
    });
    if request.store {
        store.insert(&body, &request.items);
    }
    Generated {
        total_tokens: request.prompt_tokens + output_tokens,
        body,
        words,
    }
}

impl Generated {
    /// The stream: `response.created`, `response.in_progress`, the message item and its text
    /// part opening, one `response.output_text.delta` per word, their closing events, and
    /// `response.completed` (or `response.incomplete`) with the usage.
    pub(crate) fn events(&self) -> Vec<SseEvent> {
        let mut opening = self.body.clone();
        opening["status"] = json!("in_progress");
        opening["output"] = json!([]);
        opening["usage"] = Value::Null;
        let output = self.body["output"].as_array().cloned().unwrap_or_default();
        let index = output.len().saturating_sub(1);
        let message = output.last().cloned().unwrap_or(Value::Null);
        let item_id = message["id"].clone();
        let text = message["content"][0]["text"].clone();
        let mut pending = message.clone();
        pending["status"] = json!("in_progress");
        pending["content"] = json!([]);
        let part = |text: &Value| json!({"type": "output_text", "text": text, "annotations": []});
        let mut events = vec![
            json!({"type": "response.created", "response": opening}),
            json!({"type": "response.in_progress", "response": opening}),
            json!({"type": "response.output_item.added", "output_index": index, "item": pending}),
            json!({"type": "response.content_part.added", "item_id": item_id,
                   "output_index": index, "content_index": 0, "part": part(&json!(""))}),
        ];
        let count = self.words.len();
        for (i, word) in self.words.iter().enumerate() {
            let delta = if i + 1 < count {
                format!("{word} ")
            } else {
                (*word).to_owned()
            };
            events.push(
                json!({"type": "response.output_text.delta", "item_id": item_id,
                "output_index": index, "content_index": 0, "delta": delta, "logprobs": []}),
            );
        }
        events.push(
            json!({"type": "response.output_text.done", "item_id": item_id,
            "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
        );
        events.push(
            json!({"type": "response.content_part.done", "item_id": item_id,
            "output_index": index, "content_index": 0, "part": part(&text)}),
        );
        events.push(
            json!({"type": "response.output_item.done", "output_index": index,
            "item": message}),
        );
        let terminal = if self.body["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        events.push(json!({"type": terminal, "response": self.body}));
        events
            .into_iter()
            .enumerate()
            .map(|(sequence, mut event)| {
                event["sequence_number"] = json!(sequence);
                let kind = classify_typed(event["type"].as_str().unwrap_or(""));
                SseEvent::typed(kind, &event)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::EventKind;

    fn is_content(event: &SseEvent) -> bool {
        event.kind() == EventKind::Content
    }

    fn request(body: &str, store: &ResponseStore) -> ResponsesRequest {
        parse(body.as_bytes(), store).unwrap()
    }

    #[test]
    fn a_repeated_long_prefix_is_cached_in_blocks_and_effort_adds_reasoning() {
        let store = ResponseStore::default();
        let cache = PromptCache::default();
        let long = "abcd".repeat(1100);
        let body = format!(
            r#"{{"model":"m","instructions":"{long}","input":"hi","reasoning":{{"effort":"medium"}},"max_output_tokens":10}}"#
        );
        let mut rng = fastrand::Rng::with_seed(1);
        let first = generate(&request(&body, &store), &cache, &store, &mut rng);
        let usage = &first.body["usage"];
        // 4400 + 2 characters: 1101 tokens, plus 3 for the item and 3.
        assert_eq!(usage["input_tokens"], 1107);
        assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);
        let words = first.words.len() as u64;
        assert_eq!(
            usage["output_tokens_details"]["reasoning_tokens"],
            2 * words
        );
        assert_eq!(usage["output_tokens"], 3 * words);
        let second = generate(&request(&body, &store), &cache, &store, &mut rng);
        // The prefix (the instructions, 1100 tokens) is read in whole blocks of 128.
        assert_eq!(
            second.body["usage"]["input_tokens_details"]["cached_tokens"],
            1024
        );
        let events = second.events();
        assert_eq!(
            events.iter().filter(|e| is_content(e)).count() as u64,
            second.words.len() as u64
        );
    }

    #[test]
    fn a_continuation_needs_a_stored_response_and_carries_its_tokens() {
        let store = ResponseStore::default();
        let cache = PromptCache::default();
        let mut rng = fastrand::Rng::with_seed(2);
        let first = generate(
            &request(r#"{"model":"m","input":"abcd"}"#, &store),
            &cache,
            &store,
            &mut rng,
        );
        let id = first.body["id"].as_str().unwrap();
        let total = first.total_tokens;
        let next = request(
            &format!(r#"{{"model":"m","input":"abcd","previous_response_id":"{id}"}}"#),
            &store,
        );
        assert_eq!(next.prompt_tokens, total + 1 + 3 + 3);
        let error = parse(
            br#"{"model":"m","input":"x","previous_response_id":"resp_none"}"#,
            &store,
        )
        .unwrap_err();
        assert!(error.to_string().contains("resp_none"));
        assert!(store.input_items(id).is_some());
        assert!(store.delete(id) && store.get(id).is_none());
    }
}
