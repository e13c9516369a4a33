//! The fixture texts: real OpenAI response shapes, served verbatim in fixed mode and used as
//! the shape template in generated mode. The gateway's tests include them too, so one set of
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
/// The body of an upstream 500.
pub const ERROR: &str = include_str!("../fixtures/error.json");

/// The single user message whose prompt estimate is the chat fixtures' `prompt_tokens`.
pub const CHAT_PROMPT: &str = "Say something about the mock upstream.";
/// The prompt whose estimate is the completions fixtures' `prompt_tokens`.
pub const COMPLETION_PROMPT: &str = "Say this is a test";
/// The input whose estimate is the embedding fixture's `prompt_tokens`.
pub const EMBEDDING_INPUT: &str = "The food was delicious and the waiter";
