//! One usage record for every provider: what a request consumed, normalised.
//!
//! Providers count differently. OpenAI (chat completions, completions, embeddings and the
//! Responses API) reports the cached prompt tokens *inside* the prompt count
//! (`prompt_tokens_details.cached_tokens`, `input_tokens_details.cached_tokens`) and the
//! reasoning tokens inside the completion count. Anthropic reports `input_tokens` *without*
//! the tokens read from or written to its prompt cache (`cache_read_input_tokens`,
//! `cache_creation_input_tokens`), and its thinking tokens inside `output_tokens` without a
//! separate count. [`Usage`] is the one convention the metrics and the price table use:
//! input includes every cached token, output includes every reasoning token, and the
//! details are subsets of those totals. Reading a wire object allocates nothing.
//!
//! Reading is lenient: a count that is not a non-negative integer (a float, a string, a
//! negative number, an object) or a usage object that is not an object reads as "not
//! reported" instead of failing the answer that carries it. The answer is the client's and
//! still reaches it; only the gateway's accounting of it is incomplete, and counted as such
//! (`usage_missing_total` when neither input nor output could be read).

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::openai::Lenient;

/// What one request consumed, in the gateway's convention.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Every input (prompt) token, cache reads and cache writes included; `None` when the
    /// upstream did not say.
    pub input: Option<u64>,
    /// Every output (completion) token, reasoning included; `None` when the upstream did not
    /// say (embeddings report none).
    pub output: Option<u64>,
    /// Of `input`, the tokens read from the provider's prompt cache.
    pub cache_read: u64,
    /// Of `input`, the tokens written to the provider's prompt cache (Anthropic bills them
    /// at a premium; OpenAI does not report them).
    pub cache_write: u64,
    /// Of `output`, the reasoning (thinking) tokens the provider reported separately.
    pub reasoning: u64,
}

impl Usage {
    /// All input tokens, 0 when unreported.
    pub fn prompt(&self) -> u64 {
        self.input.unwrap_or(0)
    }

    /// All output tokens, 0 when unreported.
    pub fn completion(&self) -> u64 {
        self.output.unwrap_or(0)
    }

    /// Input tokens billed at the plain input price: neither read from nor written to a
    /// cache. Saturating, so that an inconsistent report cannot go below zero.
    pub fn uncached_input(&self) -> u64 {
        self.prompt()
            .saturating_sub(self.cache_read)
            .saturating_sub(self.cache_write)
    }

    /// Whether the upstream reported (readably) its input or its output.
    pub fn is_reported(&self) -> bool {
        self.input.is_some() || self.output.is_some()
    }
}

/// Reads a token count: a non-negative integer, or `None` for whatever else stands there
/// (read like a request's `max_tokens`). For `#[serde(default, deserialize_with = "count")]`
/// on an `Option<u64>`.
pub(crate) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Lenient::deserialize(d).map(|Lenient(count)| count)
}

/// Reads a usage object (or one of its details objects): `None` for `null`, the object's
/// readable fields for an object (or an array, which serde reads by position), and nothing
/// readable (`T::default()`) for a scalar where the object should be.
/// For `#[serde(default, deserialize_with = "object")]` on an `Option<T>`.
pub(crate) fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    d.deserialize_any(ObjectVisitor(PhantomData))
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<T> ObjectVisitor<T> {
    fn unreadable<E>(self) -> Result<Option<T>, E>
    where
        T: Default,
    {
        Ok(Some(T::default()))
    }
}

impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for ObjectVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a usage object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::deserialize(SeqAccessDeserializer::new(seq)).map(Some)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        object(d)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        self.unreadable()
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        self.unreadable()
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        self.unreadable()
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        self.unreadable()
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        self.unreadable()
    }
}

/// `cached_tokens` of OpenAI's prompt (or input) token details.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct CachedDetails {
    #[serde(default, deserialize_with = "count")]
    pub cached_tokens: Option<u64>,
}

/// `reasoning_tokens` of OpenAI's completion (or output) token details.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct ReasoningDetails {
    #[serde(default, deserialize_with = "count")]
    pub reasoning_tokens: Option<u64>,
}

/// `usage` of chat completions, completions and embeddings.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct OpenAiUsage {
    #[serde(default, deserialize_with = "count")]
    pub prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "object")]
    pub prompt_tokens_details: Option<CachedDetails>,
    #[serde(default, deserialize_with = "object")]
    pub completion_tokens_details: Option<ReasoningDetails>,
}

impl From<OpenAiUsage> for Usage {
    /// Cached and reasoning tokens are already inside the totals.
    fn from(u: OpenAiUsage) -> Self {
        Usage {
            input: u.prompt_tokens,
            output: u.completion_tokens,
            cache_read: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write: 0,
            reasoning: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// `usage` of the Responses API.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct ResponsesUsage {
    #[serde(default, deserialize_with = "count")]
    pub input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "object")]
    pub input_tokens_details: Option<CachedDetails>,
    #[serde(default, deserialize_with = "object")]
    pub output_tokens_details: Option<ReasoningDetails>,
}

impl From<ResponsesUsage> for Usage {
    /// The same convention as chat completions, under other names.
    fn from(u: ResponsesUsage) -> Self {
        Usage {
            input: u.input_tokens,
            output: u.output_tokens,
            cache_read: u
                .input_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write: 0,
            reasoning: u
                .output_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// `usage` of Anthropic's Messages API.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct AnthropicUsage {
    /// The input tokens that were neither read from nor written to the cache.
    #[serde(default, deserialize_with = "count")]
    pub input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub cache_creation_input_tokens: Option<u64>,
}

impl From<AnthropicUsage> for Usage {
    /// The cache's tokens are added to the input: Anthropic counts them apart.
    fn from(u: AnthropicUsage) -> Self {
        let cache_read = u.cache_read_input_tokens.unwrap_or(0);
        let cache_write = u.cache_creation_input_tokens.unwrap_or(0);
        let reported = u.input_tokens.is_some()
            || u.cache_read_input_tokens.is_some()
            || u.cache_creation_input_tokens.is_some();
        Usage {
            input: reported.then(|| {
                u.input_tokens
                    .unwrap_or(0)
                    .saturating_add(cache_read)
                    .saturating_add(cache_write)
            }),
            output: u.output_tokens,
            cache_read,
            cache_write,
            // Thinking tokens are inside `output_tokens`; Anthropic does not count them apart.
            reasoning: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked examples of docs/metrics.md.
    #[test]
    fn openai_counts_cached_and_reasoning_tokens_inside_the_totals() {
        let chat: OpenAiUsage = serde_json::from_str(
            r#"{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,
                "prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":192,"audio_tokens":0}}"#,
        )
        .unwrap();
        let u = Usage::from(chat);
        assert_eq!((u.input, u.output), (Some(2006), Some(300)));
        assert_eq!((u.cache_read, u.cache_write, u.reasoning), (1920, 0, 192));
        assert_eq!(u.uncached_input(), 86);
        let responses: ResponsesUsage = serde_json::from_str(
            r#"{"input_tokens":2006,"input_tokens_details":{"cached_tokens":1920},
                "output_tokens":300,"output_tokens_details":{"reasoning_tokens":192},
                "total_tokens":2306}"#,
        )
        .unwrap();
        assert_eq!(Usage::from(responses), u);
    }

    #[test]
    fn anthropic_input_gains_the_cache_reads_and_writes_it_reports_apart() {
        let wire: AnthropicUsage = serde_json::from_str(
            r#"{"input_tokens":50,"cache_creation_input_tokens":248,
                "cache_read_input_tokens":1800,"output_tokens":120,
                "cache_creation":{"ephemeral_5m_input_tokens":248},"service_tier":"standard"}"#,
        )
        .unwrap();
        let u = Usage::from(wire);
        assert_eq!((u.input, u.output), (Some(2098), Some(120)));
        assert_eq!((u.cache_read, u.cache_write, u.reasoning), (1800, 248, 0));
        assert_eq!(u.uncached_input(), 50);
    }

    #[test]
    fn missing_details_and_nulls_read_as_zero_and_unreported_totals_as_none() {
        let u = Usage::from(
            serde_json::from_str::<OpenAiUsage>(
                r#"{"prompt_tokens":5,"total_tokens":5,"prompt_tokens_details":null}"#,
            )
            .unwrap(),
        );
        assert_eq!((u.input, u.output, u.cache_read), (Some(5), None, 0));
        let only_output =
            Usage::from(serde_json::from_str::<AnthropicUsage>(r#"{"output_tokens":15}"#).unwrap());
        assert_eq!((only_output.input, only_output.output), (None, Some(15)));
    }

    #[test]
    fn an_inconsistent_report_never_gives_negative_uncached_input() {
        let u = Usage {
            input: Some(10),
            cache_read: 20,
            ..Usage::default()
        };
        assert_eq!(u.uncached_input(), 0);
    }

    #[test]
    fn a_count_that_is_not_a_non_negative_integer_reads_as_unreported() {
        let read = |json: &str| Usage::from(serde_json::from_str::<OpenAiUsage>(json).unwrap());
        for odd in [
            "-1",
            "2.5",
            "1e3",
            "\"12\"",
            "true",
            "null",
            "[]",
            "[1]",
            "{}",
            "{\"n\":1}",
            "18446744073709551616",
        ] {
            let u = read(&format!(
                r#"{{"prompt_tokens":{odd},"completion_tokens":3,
                    "completion_tokens_details":{{"reasoning_tokens":{odd}}}}}"#
            ));
            assert_eq!(
                (u.input, u.output, u.reasoning),
                (None, Some(3), 0),
                "{odd}"
            );
            assert!(u.is_reported());
        }
        let u = read(r#"{"prompt_tokens":"1","completion_tokens":-3}"#);
        assert!(!u.is_reported());
    }

    #[test]
    fn a_usage_or_details_value_that_is_not_an_object_reads_as_nothing_reported() {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default, deserialize_with = "object")]
            usage: Option<AnthropicUsage>,
        }
        let read = |json: &str| serde_json::from_str::<Answer>(json).unwrap().usage;
        for scalar in ["0", "-4", "0.5", "\"none\"", "false"] {
            let usage = read(&format!(r#"{{"usage":{scalar}}}"#)).expect(scalar);
            assert!(!Usage::from(usage).is_reported(), "{scalar}");
        }
        assert_eq!(read(r#"{"usage":null}"#), None);
        assert_eq!(read("{}"), None);
        let usage = read(r#"{"usage":{"input_tokens":4,"output_tokens":{"n":5}}}"#).unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (Some(4), None));
        let details = serde_json::from_str::<OpenAiUsage>(
            r#"{"prompt_tokens":8,"prompt_tokens_details":"cached","completion_tokens_details":7}"#,
        )
        .unwrap();
        assert_eq!(Usage::from(details).cache_read, 0);
        // A body that is not JSON is still an error: only its usage is read leniently.
        assert!(serde_json::from_str::<Answer>(r#"{"usage":{"input_tokens":4"#).is_err());
    }
}
