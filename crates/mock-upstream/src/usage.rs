//! Token accounting for generated answers. The rules are simple on purpose, so that a test can
//! recompute every `usage` field from what it sent and what it got back:
//! - a text of `c` characters is `ceil(c / 4)` prompt tokens;
//! - chat: the characters of every message's content together (a string, or the `text` of each
//!   part of an array), plus 3 per message, plus 3 for the reply's priming;
//! - completions prompts and embeddings inputs: a string is its text estimate, an array of
//!   strings the sum of theirs, a token array its length, an array of token arrays the sum;
//! - one generated word is one completion token.

use serde_json::Value;

/// Completion tokens drawn when the request sets no `max_tokens`.
pub(crate) const DEFAULT_COMPLETION_RANGE: std::ops::RangeInclusive<u64> = 16..=128;

/// Tokens of overhead per chat message (role and separators), as OpenAI's own estimate.
const TOKENS_PER_MESSAGE: u64 = 3;
/// Tokens that prime the assistant's reply.
const REPLY_PRIMING_TOKENS: u64 = 3;

/// `ceil(characters / 4)`.
pub(crate) fn text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// The prompt estimate of a chat request's `messages`.
pub(crate) fn chat_prompt_tokens(messages: &[Value]) -> u64 {
    let characters: u64 = messages
        .iter()
        .map(|message| content_characters(message.get("content")))
        .sum();
    characters.div_ceil(4) + TOKENS_PER_MESSAGE * messages.len() as u64 + REPLY_PRIMING_TOKENS
}

pub(crate) fn content_characters(content: Option<&Value>) -> u64 {
    match content {
        Some(Value::String(text)) => text.chars().count() as u64,
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .map(|text| text.chars().count() as u64)
            .sum(),
        _ => 0,
    }
}

/// The prompt estimate of a completions `prompt` or an embeddings `input`.
pub(crate) fn input_tokens(input: &Value) -> u64 {
    match input {
        Value::String(text) => text_tokens(text),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text_tokens(text),
                Value::Array(tokens) => tokens.len() as u64,
                Value::Number(_) => 1,
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// How many embeddings an `input` asks for: one per string or token array.
pub(crate) fn input_count(input: &Value) -> usize {
    match input {
        Value::Array(items) if items.iter().all(Value::is_number) => 1,
        Value::Array(items) => items.len(),
        _ => 1,
    }
}

/// The number of completion tokens to generate and the matching `finish_reason`: with a cap,
/// uniform in `[max(1, cap / 2), cap]` and "length" when the cap is reached; without one,
/// uniform in [`DEFAULT_COMPLETION_RANGE`].
pub(crate) fn completion_length(
    max_tokens: Option<u64>,
    rng: &mut fastrand::Rng,
) -> (u64, &'static str) {
    match max_tokens {
        Some(cap) => {
            let cap = cap.max(1);
            let tokens = rng.u64((cap / 2).max(1)..=cap);
            (tokens, if tokens == cap { "length" } else { "stop" })
        }
        None => (rng.u64(DEFAULT_COMPLETION_RANGE), "stop"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_text_costs_a_token_per_four_characters_rounded_up() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("abcd"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        // Characters, not bytes: four two-byte letters are one token.
        assert_eq!(text_tokens("éééé"), 1);
    }

    #[test]
    fn chat_prompts_add_three_per_message_and_three_for_the_reply() {
        let messages = [
            json!({"role": "system", "content": "abcdef"}),
            json!({"role": "user", "content": [
                {"type": "text", "text": "ab"},
                {"type": "image_url", "image_url": {"url": "https://example.test/x.png"}}
            ]}),
            json!({"role": "assistant", "content": null, "tool_calls": []}),
        ];
        // 8 characters -> 2 tokens, 3 messages -> 9, priming -> 3.
        assert_eq!(chat_prompt_tokens(&messages), 14);
    }

    #[test]
    fn the_chat_fixture_prompt_matches_the_fixture_usage() {
        let messages = [json!({"role": "user", "content": crate::fixtures::CHAT_PROMPT})];
        assert_eq!(chat_prompt_tokens(&messages), 16);
    }

    #[test]
    fn prompts_and_inputs_count_strings_and_token_arrays() {
        assert_eq!(input_tokens(&json!("Say this is a test")), 5);
        assert_eq!(input_tokens(&json!(["abcd", "abcde"])), 3);
        assert_eq!(input_tokens(&json!([1, 2, 3])), 3);
        assert_eq!(input_tokens(&json!([[1, 2], [3, 4, 5]])), 5);
        assert_eq!(input_tokens(&json!(42)), 0);
    }

    #[test]
    fn embeddings_are_one_per_string_or_token_array() {
        assert_eq!(input_count(&json!("one")), 1);
        assert_eq!(input_count(&json!(["a", "b", "c"])), 3);
        assert_eq!(input_count(&json!([1, 2, 3])), 1);
        assert_eq!(input_count(&json!([[1], [2]])), 2);
    }

    #[test]
    fn a_capped_length_stays_in_the_upper_half_and_says_length_at_the_cap() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut reached_cap = false;
        for _ in 0..500 {
            let (tokens, finish) = completion_length(Some(10), &mut rng);
            assert!((5..=10).contains(&tokens), "{tokens}");
            assert_eq!(finish == "length", tokens == 10);
            reached_cap |= tokens == 10;
        }
        assert!(reached_cap);
        assert_eq!(completion_length(Some(1), &mut rng), (1, "length"));
    }

    #[test]
    fn an_uncapped_length_is_between_16_and_128() {
        let mut rng = fastrand::Rng::with_seed(4);
        for _ in 0..500 {
            let (tokens, finish) = completion_length(None, &mut rng);
            assert!(DEFAULT_COMPLETION_RANGE.contains(&tokens));
            assert_eq!(finish, "stop");
        }
    }
}
