//! The fixture texts: real OpenAI response shapes, served verbatim in fixed mode and used as
//! the shape template in generated mode (the Responses and Messages fixtures carry cached and
//! reasoning tokens, which generated answers only have when the request earns them). The gateway's tests include them too, so one set of
//! stubs describes the upstream everywhere.
//!
//! Their `usage` numbers follow the mock's own token rules (one word is one completion token;
//! a text of `c` characters is `ceil(c / 4)` prompt tokens, plus 3 per chat message and 3 for
//! the reply), for these requests:
//! - chat: one user message, [`CHAT_PROMPT`];
//! - completions: the prompt [`COMPLETION_PROMPT`];
//! - embeddings: the input [`EMBEDDING_INPUT`].

/// `POST /v1/chat/completions` without streaming.
pub const CHAT_COMPLETION: &str = include_str!("../fixtures/chat_completion.json");
/// `POST /v1/completions` without streaming.
pub const COMPLETION: &str = include_str!("../fixtures/completion.json");
/// `POST /v1/embeddings`, with a short (8-dimension) vector.
pub const EMBEDDING: &str = include_str!("../fixtures/embedding.json");
/// `GET /v1/models`.
pub const MODELS: &str = include_str!("../fixtures/models.json");
/// A complete chat SSE body with `stream_options.include_usage`: role chunk, one chunk per
/// word, the finish chunk, the usage chunk (`"choices":[]`) and `data: [DONE]`.
pub const CHAT_COMPLETION_STREAM: &str = include_str!("../fixtures/chat_completion_stream.txt");
/// A complete completions SSE body, shaped like [`CHAT_COMPLETION_STREAM`] with `choices[].text`.
pub const COMPLETION_STREAM: &str = include_str!("../fixtures/completion_stream.txt");
/// `POST /v1/responses` without streaming: a reasoning model's answer to a repeated long
/// prompt, so its usage has cached input (1920 of 2006 input tokens) and reasoning output (287
/// of 300 output tokens: 13 words of text).
pub const RESPONSES: &str = include_str!("../fixtures/responses.json");
/// A complete Responses stream: typed events, four output text deltas, and
/// `response.completed` with its usage (1920 of 2006 input tokens cached, 96 of 100 output
/// tokens reasoning); no `[DONE]`.
pub const RESPONSES_STREAM: &str = include_str!("../fixtures/responses_stream.txt");
/// `POST /v1/messages` without streaming: Anthropic's usage, whose `input_tokens` (50) leaves
/// out the cache reads (1800) and writes (248).
pub const MESSAGES: &str = include_str!("../fixtures/messages.json");
/// A complete Messages stream: `message_start` with the input side of the usage (as
/// [`MESSAGES`]), four text deltas, `message_delta` with the output (4), `message_stop`.
pub const MESSAGES_STREAM: &str = include_str!("../fixtures/messages_stream.txt");
/// `POST /v1/messages/count_tokens`.
pub const COUNT_TOKENS: &str = include_str!("../fixtures/count_tokens.json");
/// The body of an upstream 500.
pub const ERROR: &str = include_str!("../fixtures/error.json");

/// The single user message whose prompt estimate is the chat fixtures' `prompt_tokens`.
pub const CHAT_PROMPT: &str = "Say something about the mock upstream.";
/// The prompt whose estimate is the completions fixtures' `prompt_tokens`.
pub const COMPLETION_PROMPT: &str = "Say this is a test";
/// The input whose estimate is the embedding fixture's `prompt_tokens`.
pub const EMBEDDING_INPUT: &str = "The food was delicious and the waiter";
