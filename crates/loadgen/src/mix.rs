//! The request mix: what each scheduled request is. A weighted draw picks the kind (so that
//! every dashboard panel gets data: two chat models, legacy completions, embeddings, the
//! Responses API, Anthropic's Messages API, and a thin steady stream of client errors, a wrong
//! client key among them when keys are configured), then the prompt length, `max_tokens` and
//! whether the answer is streamed, so latency and token panels show a spread rather than one
//! value. A share of the Responses and Messages requests shares one long system prompt (marked
//! for caching on the Messages API) and some ask for reasoning, so that the cache-hit and
//! reasoning panels have something to show. Each request also gets the client key it presents
//! ([`Credential`]): the configured keys in turn.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::keys::{Credential, KeyTurns};
use crate::words::{WORDS, shared_system_prompt};

/// The cheap chat model, most of the traffic.
pub const CHAT_SMALL_MODEL: &str = "gpt-4o-mini";
/// The expensive chat model, so cost by model has two visibly different lines.
pub const CHAT_LARGE_MODEL: &str = "gpt-4o";
/// The legacy completions model.
pub const COMPLETION_MODEL: &str = "gpt-3.5-turbo-instruct";
/// The embeddings model.
pub const EMBEDDING_MODEL: &str = "text-embedding-3-small";
/// The Anthropic model, on the Messages API.
pub const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
/// A model no gateway configuration lists: the gateway answers 404 `model_not_found`.
pub const UNKNOWN_MODEL: &str = "loadgen-no-such-model";

/// The gateway endpoints the mix sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Messages,
}

impl Endpoint {
    /// Every endpoint, in report order.
    pub const ALL: [Self; 5] = [
        Self::ChatCompletions,
        Self::Completions,
        Self::Embeddings,
        Self::Responses,
        Self::Messages,
    ];

    /// The path below the target URL; also the gateway's `endpoint` label.
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Responses => "/v1/responses",
            Self::Messages => "/v1/messages",
        }
    }

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a request is meant to exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Chat completion on [`CHAT_SMALL_MODEL`].
    ChatSmall,
    /// Chat completion on [`CHAT_LARGE_MODEL`].
    ChatLarge,
    /// Legacy completion on [`COMPLETION_MODEL`].
    Completion,
    /// Embeddings on [`EMBEDDING_MODEL`].
    Embedding,
    /// The Responses API on [`CHAT_SMALL_MODEL`].
    Responses,
    /// Anthropic's Messages API on [`ANTHROPIC_MODEL`].
    Messages,
    /// A chat request for [`UNKNOWN_MODEL`] (404 from the gateway).
    UnknownModel,
    /// A chat request whose body is cut-off JSON (400).
    MalformedBody,
    /// A chat request on [`CHAT_SMALL_MODEL`] that presents
    /// [`WRONG_KEY`](crate::keys::WRONG_KEY) (401 `invalid_api_key`); drawn as
    /// [`Self::ChatSmall`] when no keys are configured, since there is no key to get wrong.
    WrongKey,
}

impl RequestKind {
    /// Every kind, in the order of [`Weights`].
    pub const ALL: [Self; 9] = [
        Self::ChatSmall,
        Self::ChatLarge,
        Self::Completion,
        Self::Embedding,
        Self::Responses,
        Self::Messages,
        Self::UnknownModel,
        Self::MalformedBody,
        Self::WrongKey,
    ];

    /// Where this kind of request goes.
    pub fn endpoint(self) -> Endpoint {
        match self {
            Self::Completion => Endpoint::Completions,
            Self::Embedding => Endpoint::Embeddings,
            Self::Responses => Endpoint::Responses,
            Self::Messages => Endpoint::Messages,
            Self::ChatSmall
            | Self::ChatLarge
            | Self::UnknownModel
            | Self::MalformedBody
            | Self::WrongKey => Endpoint::ChatCompletions,
        }
    }

    /// Whether the answer may be streamed (chat and completions that are meant to succeed).
    pub fn streamable(self) -> bool {
        matches!(
            self,
            Self::ChatSmall | Self::ChatLarge | Self::Completion | Self::Responses | Self::Messages
        )
    }

    /// Whether this request is a deliberate client error.
    pub fn is_client_error(self) -> bool {
        matches!(
            self,
            Self::UnknownModel | Self::MalformedBody | Self::WrongKey
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Relative weights of the request kinds, in parts per thousand for [`Weights::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights([u32; RequestKind::ALL.len()]);

impl Weights {
    /// The demo mix: 32.5% small chat, 12% large chat, 12% completions, 19% embeddings, 11%
    /// Responses, 12% Messages, 0.5% unknown model, 0.5% malformed body and 0.5% wrong key
    /// (1.5% client errors in all). Without keys the wrong-key share is sent as small chat:
    /// then the mix is 33% small chat and 1% client errors.
    pub const DEFAULT: Self = Self([325, 120, 120, 190, 110, 120, 5, 5, 5]);

    /// Only one kind of request.
    pub fn only(kind: RequestKind) -> Self {
        let mut weights = [0; RequestKind::ALL.len()];
        weights[kind.index()] = 1;
        Self(weights)
    }

    /// The weight of one kind.
    pub fn weight(&self, kind: RequestKind) -> u32 {
        self.0[kind.index()]
    }

    /// The sum of all weights.
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }

    /// The share (0..=1) of requests of this kind.
    pub fn share(&self, kind: RequestKind) -> f64 {
        f64::from(self.weight(kind)) / f64::from(self.total())
    }
}

impl Default for Weights {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One request, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRequest {
    pub kind: RequestKind,
    pub endpoint: Endpoint,
    /// Whether the body asks for a streamed answer.
    pub stream: bool,
    /// The client key it presents.
    pub credential: Credential,
    /// The JSON body (not valid JSON for [`RequestKind::MalformedBody`]).
    pub body: Bytes,
}

/// Draws requests: the weighted kind, then its shape.
#[derive(Debug)]
pub struct RequestMix {
    weights: Weights,
    stream_share: f64,
    rng: fastrand::Rng,
    keys: KeyTurns,
}

impl RequestMix {
    /// A mix with these weights, streaming `stream_share` (clamped to 0..=1) of the streamable
    /// requests; a seed makes the sequence of requests reproducible.
    pub fn new(weights: Weights, stream_share: f64, seed: Option<u64>) -> Self {
        // Weights cannot all be zero: `DEFAULT` and `only` are the only constructors.
        let stream_share = if stream_share.is_nan() {
            0.0
        } else {
            stream_share.clamp(0.0, 1.0)
        };
        Self {
            weights,
            stream_share,
            rng: seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            keys: KeyTurns::default(),
        }
    }

    /// The same mix, presenting `count` client keys in turn (none: no key at all).
    pub fn with_keys(mut self, count: usize) -> Self {
        self.keys = KeyTurns::new(count);
        self
    }

    /// The next request.
    pub fn draw(&mut self) -> PlannedRequest {
        let mut kind = self.draw_kind();
        if kind == RequestKind::WrongKey && !self.keys.any() {
            // Its share was taken from the small chats: giving it back keeps the mix without
            // keys what it was before keys existed.
            kind = RequestKind::ChatSmall;
        }
        // The deliberate 404s and 400s present a good key too, so that the gateway gets past
        // the key to the error they are meant to show.
        let credential = match kind {
            RequestKind::WrongKey => Credential::Wrong,
            _ => self.keys.next_credential(),
        };
        let stream = kind.streamable() && self.rng.f64() < self.stream_share;
        let body = match kind {
            RequestKind::ChatSmall => self.chat_body(CHAT_SMALL_MODEL, stream),
            RequestKind::ChatLarge => self.chat_body(CHAT_LARGE_MODEL, stream),
            RequestKind::Completion => self.completion_body(stream),
            RequestKind::Embedding => self.embedding_body(),
            RequestKind::Responses => self.responses_body(stream),
            RequestKind::Messages => self.messages_body(stream),
            RequestKind::UnknownModel => self.chat_body(UNKNOWN_MODEL, false),
            // The gateway refuses it before reading the body; a well-formed one leaves the key
            // as the only thing wrong.
            RequestKind::WrongKey => self.chat_body(CHAT_SMALL_MODEL, false),
            RequestKind::MalformedBody => {
                let cut =
                    br#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "cut sh"#;
                return PlannedRequest {
                    kind,
                    endpoint: kind.endpoint(),
                    stream: false,
                    credential,
                    body: Bytes::from_static(cut),
                };
            }
        };
        PlannedRequest {
            kind,
            endpoint: kind.endpoint(),
            stream,
            credential,
            body: Bytes::from(body.to_string()),
        }
    }

    fn draw_kind(&mut self) -> RequestKind {
        let mut ticket = self.rng.u32(0..self.weights.total());
        for kind in RequestKind::ALL {
            let weight = self.weights.weight(kind);
            if ticket < weight {
                return kind;
            }
            ticket -= weight;
        }
        unreachable!("the ticket is below the total of the weights")
    }

    fn chat_body(&mut self, model: &str, stream: bool) -> Value {
        let mut messages = Vec::with_capacity(2);
        if self.rng.f64() < 0.3 {
            messages.push(json!({"role": "system", "content": "You are a concise assistant."}));
        }
        messages.push(json!({"role": "user", "content": self.prompt()}));
        let mut body = json!({
            "model": model,
            "messages": messages,
            "max_tokens": self.max_tokens(),
        });
        if stream {
            body["stream"] = Value::Bool(true);
            // Half of the streamed chats ask for usage themselves; for the other half the
            // gateway asks on their behalf and strips the usage chunk, and both paths count.
            if self.rng.bool() {
                body["stream_options"] = json!({"include_usage": true});
            }
        }
        body
    }

    fn completion_body(&mut self, stream: bool) -> Value {
        let mut body = json!({
            "model": COMPLETION_MODEL,
            "prompt": self.prompt(),
            "max_tokens": self.max_tokens(),
        });
        if stream {
            body["stream"] = Value::Bool(true);
        }
        body
    }

    fn responses_body(&mut self, stream: bool) -> Value {
        let mut body = json!({
            "model": CHAT_SMALL_MODEL,
            "input": self.prompt(),
            "max_output_tokens": self.max_tokens(),
        });
        if self.rng.f64() < SHARED_PROMPT_SHARE {
            body["instructions"] = Value::String(shared_system_prompt());
        }
        if self.rng.bool() {
            body["reasoning"] = json!({"effort": "low"});
        }
        if stream {
            body["stream"] = Value::Bool(true);
        }
        body
    }

    fn messages_body(&mut self, stream: bool) -> Value {
        let mut body = json!({
            "model": ANTHROPIC_MODEL,
            "max_tokens": self.max_tokens(),
            "messages": [{"role": "user", "content": self.prompt()}],
        });
        if self.rng.f64() < SHARED_PROMPT_SHARE {
            body["system"] = json!([{
                "type": "text",
                "text": shared_system_prompt(),
                "cache_control": {"type": "ephemeral"},
            }]);
        }
        if stream {
            body["stream"] = Value::Bool(true);
        }
        body
    }

    fn embedding_body(&mut self) -> Value {
        let input = if self.rng.f64() < 0.7 {
            Value::String(self.prompt())
        } else {
            let count = self.rng.usize(2..=8);
            Value::Array((0..count).map(|_| Value::String(self.prompt())).collect())
        };
        let mut body = json!({"model": EMBEDDING_MODEL, "input": input});
        if self.rng.bool() {
            body["dimensions"] = json!(256);
        }
        body
    }

    /// Mostly short prompts, some paragraphs, a few long documents.
    fn prompt(&mut self) -> String {
        let words = match self.rng.u32(0..10) {
            0..6 => self.rng.usize(4..=20),
            6..9 => self.rng.usize(40..=200),
            _ => self.rng.usize(400..=1200),
        };
        let mut prompt = String::with_capacity(words * 8);
        for position in 0..words {
            if position > 0 {
                prompt.push(' ');
            }
            prompt.push_str(WORDS[self.rng.usize(..WORDS.len())]);
        }
        prompt
    }

    fn max_tokens(&mut self) -> u64 {
        const CAPS: [u64; 6] = [16, 32, 64, 128, 256, 512];
        CAPS[self.rng.usize(..CAPS.len())]
    }
}

/// Share of the Responses and Messages requests that carry the shared system prompt.
const SHARED_PROMPT_SHARE: f64 = 0.4;

#[cfg(test)]
#[path = "mix_tests.rs"]
mod tests;
