//! The text the mix's prompts are made of: a small vocabulary about the gateway itself, and
//! the one long system prompt that the cacheable requests share.

/// One long system prompt (about 1500 tokens, past the 1024 a provider caches), the same for
/// every request that carries it: what a prompt cache is for.
pub(crate) fn shared_system_prompt() -> String {
    "You are the demo assistant of the MCP Server gateway; answer briefly and plainly. ".repeat(75)
}

/// The words prompts are drawn from.
pub(crate) const WORDS: [&str; 32] = [
    "gateway",
    "latency",
    "token",
    "stream",
    "upstream",
    "model",
    "request",
    "answer",
    "summary",
    "explain",
    "the",
    "a",
    "of",
    "and",
    "why",
    "how",
    "metrics",
    "dashboard",
    "alert",
    "budget",
    "error",
    "rate",
    "percentile",
    "cost",
    "prompt",
    "completion",
    "embedding",
    "vector",
    "search",
    "document",
    "quickly",
    "briefly",
];
