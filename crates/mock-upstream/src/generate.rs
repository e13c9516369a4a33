//! Generated answers: the fixtures' shapes, filled per request. Each answer has a fresh id, the
//! current time, the request's model, and as many words from a small vocabulary as it has
//! completion tokens, so a test can check `usage` against the content it received.
//! Embeddings are in [`crate::embeddings`].

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::sse::{EventKind, SseEvent};
use crate::usage;

/// The words answers are made of; one word is one completion token.
const VOCABULARY: [&str; 32] = [
    "the",
    "a",
    "mock",
    "upstream",
    "answers",
    "every",
    "request",
    "with",
    "plain",
    "words",
    "from",
    "small",
    "vocabulary",
    "so",
    "each",
    "token",
    "is",
    "one",
    "word",
    "and",
    "usage",
    "counts",
    "stay",
    "exact",
    "while",
    "latency",
    "faults",
    "streams",
    "arrive",
    "on",
    "time",
    "gateway",
];

/// The same backend fingerprint as the fixtures.
const SYSTEM_FINGERPRINT: &str = "fp_5a1b2c3d4e";

/// Which text endpoint an answer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextKind {
    Chat,
    Completion,
}

/// One generated text answer, before it is shaped as a body or a stream.
#[derive(Debug)]
pub(crate) struct Generation {
    kind: TextKind,
    id: String,
    created: u64,
    model: String,
    words: Vec<&'static str>,
    finish_reason: &'static str,
    prompt_tokens: u64,
    /// Of `prompt_tokens`, those read from the prompt cache.
    pub(crate) cached_tokens: u64,
}

impl Generation {
    pub(crate) fn new(
        kind: TextKind,
        model: String,
        prompt_tokens: u64,
        max_tokens: Option<u64>,
        rng: &mut fastrand::Rng,
    ) -> Self {
        let (words, finish_reason) = draw_words(max_tokens, rng);
        let prefix = match kind {
            TextKind::Chat => "chatcmpl-",
            TextKind::Completion => "cmpl-",
        };
        Self {
            kind,
            id: random_id(prefix, rng),
            created: unix_now(),
            model,
            words,
            finish_reason,
            prompt_tokens,
            cached_tokens: 0,
        }
    }

    pub(crate) fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.words.len() as u64
    }

    fn usage(&self) -> Value {
        usage_json(
            self.prompt_tokens,
            self.cached_tokens,
            self.words.len() as u64,
        )
    }

    /// The non-streaming body.
    pub(crate) fn body(&self) -> Value {
        let text = self.words.join(" ");
        match self.kind {
            TextKind::Chat => json!({
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": null,
                        "annotations": [],
                    },
                    "logprobs": null,
                    "finish_reason": self.finish_reason,
                }],
                "usage": self.usage(),
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
            }),
            TextKind::Completion => json!({
                "id": self.id,
                "object": "text_completion",
                "created": self.created,
                "model": self.model,
                "choices": [{
                    "text": text,
                    "index": 0,
                    "logprobs": null,
                    "finish_reason": self.finish_reason,
                }],
                "usage": self.usage(),
                "system_fingerprint": SYSTEM_FINGERPRINT,
            }),
        }
    }

    /// The stream's events: (chat only) the role chunk, a chunk per word, the finish chunk,
    /// with `include_usage` the usage chunk, then `[DONE]`.
    pub(crate) fn events(&self, include_usage: bool) -> Vec<SseEvent> {
        let mut events = Vec::with_capacity(self.words.len() + 4);
        if self.kind == TextKind::Chat {
            let delta = json!({"role": "assistant", "content": "", "refusal": null});
            events.push(self.chunk(EventKind::Role, delta, None, include_usage));
        }
        for word in &self.words {
            let piece = format!("{word} ");
            let delta = match self.kind {
                TextKind::Chat => json!({"content": piece}),
                TextKind::Completion => Value::String(piece),
            };
            events.push(self.chunk(EventKind::Content, delta, None, include_usage));
        }
        let last = match self.kind {
            TextKind::Chat => json!({}),
            TextKind::Completion => Value::String(String::new()),
        };
        events.push(self.chunk(
            EventKind::Finish,
            last,
            Some(self.finish_reason),
            include_usage,
        ));
        if include_usage {
            let mut chunk = self.chunk_frame(json!([]));
            chunk["usage"] = self.usage();
            events.push(SseEvent::json(EventKind::Usage, &chunk));
        }
        events.push(SseEvent::done());
        events
    }

    /// One chunk with one choice; `delta` is the chat delta or the completion's text.
    fn chunk(
        &self,
        kind: EventKind,
        delta: Value,
        finish_reason: Option<&str>,
        include_usage: bool,
    ) -> SseEvent {
        let choice = match self.kind {
            TextKind::Chat => json!({
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }),
            TextKind::Completion => json!({
                "text": delta,
                "index": 0,
                "logprobs": null,
                "finish_reason": finish_reason,
            }),
        };
        let mut chunk = self.chunk_frame(json!([choice]));
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        SseEvent::json(kind, &chunk)
    }

    fn chunk_frame(&self, choices: Value) -> Value {
        let object = match self.kind {
            TextKind::Chat => "chat.completion.chunk",
            TextKind::Completion => "text_completion",
        };
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        })
    }
}

/// The words of an answer and its finish reason (`stop`, or `length` at the cap): one word
/// per completion token.
pub(crate) fn draw_words(
    max_tokens: Option<u64>,
    rng: &mut fastrand::Rng,
) -> (Vec<&'static str>, &'static str) {
    let (length, finish_reason) = usage::completion_length(max_tokens, rng);
    let words = (0..length)
        .map(|_| VOCABULARY[rng.usize(..VOCABULARY.len())])
        .collect();
    (words, finish_reason)
}

/// OpenAI's usage object, with the detail objects newer models report.
fn usage_json(prompt_tokens: u64, cached_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    })
}

pub(crate) fn random_id(prefix: &str, rng: &mut fastrand::Rng) -> String {
    let mut id = String::with_capacity(prefix.len() + 29);
    id.push_str(prefix);
    (0..29).for_each(|_| id.push(rng.alphanumeric()));
    id
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_chat_body_counts_its_words_as_completion_tokens() {
        let mut rng = fastrand::Rng::with_seed(5);
        let generation = Generation::new(TextKind::Chat, "m".into(), 12, None, &mut rng);
        let body = generation.body();
        let words = body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count() as u64;
        assert_eq!(body["usage"]["completion_tokens"], words);
        assert_eq!(body["usage"]["total_tokens"], words + 12);
    }
}
