//! What the property tests and the fuzz targets (fuzz/src/lib.rs includes this file) check the
//! gateway's readers against: the same rules read off a `serde_json::Value`, which a JSON
//! parser builds without knowing what the gateway looks for, or written out plainly.

use mcp_core::openai::{ChunkSummary, Usage};
use serde_json::{Map, Value};

/// A member of `v` as serde's derived `Deserialize` reads a struct: from an object by name,
/// and from an array by position (in the order the struct declares its fields). No upstream
/// writes the array form, but a reader that accepts it must agree with the parser there too.
pub fn field<'v>(v: &'v Value, name: &str, position: usize) -> Option<&'v Value> {
    match v {
        Value::Array(items) => items.get(position),
        _ => v.get(name),
    }
}

/// `usage` as a JSON parser reads it: a count is a non-negative integer or not reported.
pub fn usage_per_parser(usage: Option<&Value>) -> Option<Usage> {
    let usage = usage.filter(|u| !u.is_null())?;
    // Cached and reasoning tokens are read from the details objects, inside the totals.
    let detail = |name, position, inner| {
        field(usage, name, position)
            .and_then(|d| field(d, inner, 0))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Some(Usage {
        input: field(usage, "prompt_tokens", 0).and_then(Value::as_u64),
        output: field(usage, "completion_tokens", 1).and_then(Value::as_u64),
        cache_read: detail("prompt_tokens_details", 2, "cached_tokens"),
        cache_write: 0,
        reasoning: detail("completion_tokens_details", 3, "reasoning_tokens"),
    })
}

/// The summary of a chunk as a JSON parser reads it: the rules of `summarize_chunk`'s
/// documentation, written a second time over a generic tree.
pub fn summary_per_parser(chunk: &Map<String, Value>) -> ChunkSummary {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    let set = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
    let choices = chunk.get("choices").and_then(Value::as_array);
    let has_content = choices.into_iter().flatten().any(|c| {
        text(field(c, "text", 1))
            || field(c, "delta", 0).is_some_and(|d| {
                text(field(d, "content", 0))
                    || text(field(d, "refusal", 1))
                    || set(field(d, "tool_calls", 2))
                    || set(field(d, "function_call", 3))
            })
    });
    ChunkSummary {
        has_content,
        no_choices: choices.is_some_and(Vec::is_empty),
        usage: usage_per_parser(chunk.get("usage")),
        is_error: set(chunk.get("error")),
    }
}

/// Where the first SSE event in `buf` ends: just past the first blank line, a `\n` followed by
/// `\n` or `\r\n` (the module's framing, written out plainly here).
pub fn first_event_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| match &buf[i..] {
        [b'\n', b'\n', ..] => Some(i + 2),
        [b'\n', b'\r', b'\n', ..] => Some(i + 3),
        _ => None,
    })
}
