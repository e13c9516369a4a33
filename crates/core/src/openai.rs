//! The parts of OpenAI's wire format the gateway reads or writes.
//!
//! Request and response bodies are forwarded as bytes. The gateway only *peeks* at them: the
//! structs here name the few fields it needs and let serde skip the rest without building a
//! JSON tree, so reading `usage` from a body costs one validating scan and no allocation.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use crate::usage::Usage;
use crate::usage::{self, OpenAiUsage};

/// The fields of a client request the gateway routes on, in any of the APIs it serves
/// (each reads `model` and `stream`; the others are absent where an API has no such field).
#[derive(Debug, Default, Deserialize)]
pub struct RequestPeek<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptionsPeek>,
    /// Responses API: the stored response this one continues.
    #[serde(borrow, default)]
    pub previous_response_id: Option<Cow<'a, str>>,
    /// Responses API: the stored conversation this one adds to (an id, or `{"id": ..}`);
    /// kept raw, and read only when present.
    #[serde(borrow, default)]
    pub conversation: Option<&'a RawValue>,
    /// The most tokens the answer may take, if the client says (`max_completion_tokens` is
    /// the newer name). Read leniently: a value that is not a whole number is the
    /// upstream's to refuse, and reads as unset here.
    #[serde(default)]
    pub max_tokens: Lenient,
    #[serde(default)]
    pub max_completion_tokens: Lenient,
}

/// A whole number, or nothing when the value is anything else (the request is forwarded as
/// it is; the upstream says what is wrong with it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lenient(pub Option<u64>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Lenient;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Lenient, E> {
                Ok(Lenient(Some(v)))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E>(self) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_none<E>(self) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Lenient, D::Error> {
                d.deserialize_any(Visitor)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Lenient, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Lenient, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `stream_options` as far as usage reporting goes; other options are forwarded untouched.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptionsPeek {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ConversationRef {
    Id(String),
    Object { id: String },
}

impl RequestPeek<'_> {
    /// The stored state a Responses request builds on, which only the upstream that holds it
    /// can serve: its `previous_response_id`, else its `conversation`'s id.
    pub fn stored_context(&self) -> Option<String> {
        if let Some(id) = &self.previous_response_id {
            return Some(id.clone().into_owned());
        }
        let raw = self.conversation?;
        match serde_json::from_str::<ConversationRef>(raw.get()).ok()? {
            ConversationRef::Id(id) | ConversationRef::Object { id } => Some(id),
        }
    }

    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The most tokens the answer may take, if the client set a limit.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.0.or(self.max_tokens.0)
    }

    /// Whether the client asked for the usage chunk at the end of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

#[derive(Deserialize)]
struct ModelSpan<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
}

/// The request body with its top-level `model` value replaced by `model`: the bytes before
/// and after the value are kept as they are, so nothing else in the body is re-serialised.
/// `None` when the body has no `model` (intake refuses such a request first).
pub fn replace_model(body: &Bytes, model: &str) -> Result<Option<Bytes>, serde_json::Error> {
    let span: ModelSpan<'_> = serde_json::from_slice(body)?;
    let Some(raw) = span.model else {
        return Ok(None);
    };
    // The raw value borrows from `body`: its offset is the distance between the pointers.
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    let end = start + raw.get().len();
    let value = serde_json::to_string(model)?;
    let mut out = BytesMut::with_capacity(body.len() - (end - start) + value.len());
    out.extend_from_slice(&body[..start]);
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(&body[end..]);
    Ok(Some(out.freeze()))
}

#[derive(Deserialize)]
struct UsagePeek {
    #[serde(default, deserialize_with = "usage::object")]
    usage: Option<OpenAiUsage>,
}

/// Validates a complete JSON response body and returns its top-level `usage`, if any.
///
/// A body that is not JSON is an error: the upstream claimed success but sent something
/// the client could not read either.
pub fn read_usage(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    serde_json::from_slice::<UsagePeek>(body).map(|p| p.usage.map(Usage::from))
}

/// What one streamed chunk (`data:` payload) says, as far as accounting goes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSummary {
    /// The chunk carries generated output (text, content, a tool call, a refusal).
    pub has_content: bool,
    /// The chunk's `choices` array is present and empty: a usage-only chunk.
    pub no_choices: bool,
    pub usage: Option<Usage>,
    /// The upstream reported an error inside the stream.
    pub is_error: bool,
}

#[derive(Deserialize)]
struct ChunkPeek<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<ChoicePeek<'a>>>,
    #[serde(default, deserialize_with = "usage::object")]
    usage: Option<OpenAiUsage>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChoicePeek<'a> {
    #[serde(borrow, default)]
    delta: Option<DeltaPeek<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaPeek<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

/// Reads one streamed chunk's JSON payload.
pub fn summarize_chunk(data: &[u8]) -> Result<ChunkSummary, serde_json::Error> {
    let peek: ChunkPeek<'_> = serde_json::from_slice(data)?;
    let non_empty = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|s| !s.is_empty());
    let has_content = peek.choices.iter().flatten().any(|c| {
        non_empty(&c.text)
            || c.delta.as_ref().is_some_and(|d| {
                non_empty(&d.content)
                    || non_empty(&d.refusal)
                    || d.tool_calls.is_some()
                    || d.function_call.is_some()
            })
    });
    Ok(ChunkSummary {
        has_content,
        no_choices: peek.choices.as_ref().is_some_and(Vec::is_empty),
        usage: peek.usage.map(Usage::from),
        is_error: peek.error.is_some(),
    })
}

/// OpenAI's error envelope: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorObject<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorObject<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

impl<'a> ErrorBody<'a> {
    pub fn new(message: &'a str, kind: &'a str, param: Option<&'a str>, code: &'a str) -> Self {
        Self {
            error: ErrorObject {
                message,
                kind,
                param,
                code: Some(code),
            },
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings always serialises")
    }
}

/// `GET /v1/models`: OpenAI's list shape.
#[derive(Debug, Serialize)]
pub struct ModelList<'a> {
    pub object: &'static str,
    pub data: Vec<ModelObject<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ModelObject<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'a str,
}

impl<'a> ModelList<'a> {
    pub fn new(ids: impl IntoIterator<Item = &'a str>, owned_by: &'a str, created: u64) -> Self {
        Self {
            object: "list",
            data: ids
                .into_iter()
                .map(|id| ModelObject {
                    id,
                    object: "model",
                    created,
                    owned_by,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_peek_reads_model_and_stream_and_ignores_the_rest() {
        let body = br#"{"messages":[{"role":"user","content":"hi \"there\""}],"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true,"x":1}}"#;
        let p: RequestPeek<'_> = serde_json::from_slice(body).unwrap();
        assert_eq!(p.model.as_deref(), Some("gpt-4o-mini"));
        assert!(p.is_stream());
        assert!(p.wants_stream_usage());
    }

    #[test]
    fn a_responses_request_builds_on_its_previous_response_or_its_conversation() {
        let peek = |body: &'static str| serde_json::from_str::<RequestPeek<'_>>(body).unwrap();
        let both = peek(r#"{"model":"m","previous_response_id":"resp_1","conversation":"conv_1"}"#);
        assert_eq!(both.stored_context().as_deref(), Some("resp_1"));
        let named = peek(r#"{"model":"m","conversation":"conv_2"}"#);
        assert_eq!(named.stored_context().as_deref(), Some("conv_2"));
        let object = peek(r#"{"model":"m","conversation":{"id":"conv_3"}}"#);
        assert_eq!(object.stored_context().as_deref(), Some("conv_3"));
        assert_eq!(
            peek(r#"{"model":"m","conversation":null}"#).stored_context(),
            None
        );
        assert_eq!(peek(r#"{"model":"m"}"#).stored_context(), None);
    }

    #[test]
    fn request_peek_reads_the_output_limit_and_lets_odd_values_through() {
        let p: RequestPeek<'_> =
            serde_json::from_slice(br#"{"model":"m","max_tokens":64,"max_completion_tokens":128}"#)
                .unwrap();
        assert_eq!(p.max_output_tokens(), Some(128));
        for odd in [r#""64""#, "-1", "1.5", "null", "[1]", r#"{"a":1}"#, "true"] {
            let body = format!(r#"{{"model":"m","max_tokens":{odd}}}"#);
            let p: RequestPeek<'_> = serde_json::from_slice(body.as_bytes()).unwrap();
            assert_eq!(p.max_output_tokens(), None, "{odd}");
        }
    }

    #[test]
    fn request_peek_rejects_a_model_that_is_not_a_string() {
        let err = serde_json::from_slice::<RequestPeek<'_>>(br#"{"model":42}"#).unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
    }

    #[test]
    fn the_model_is_replaced_in_place_and_nothing_else_moves() {
        let body = Bytes::from_static(
            br#"{ "messages":[{"role":"user","content":"model \"x\""}], "model" : "mini\u0021" ,"n":1}"#,
        );
        let out = replace_model(&body, "gpt-4o-mini-2024-07-18")
            .unwrap()
            .unwrap();
        assert_eq!(
            &out[..],
            br#"{ "messages":[{"role":"user","content":"model \"x\""}], "model" : "gpt-4o-mini-2024-07-18" ,"n":1}"#
        );
        let odd = replace_model(&body, "a\"b").unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&odd).unwrap();
        assert_eq!(v["model"], "a\"b");
        assert_eq!(
            replace_model(&Bytes::from_static(b"{}"), "m").unwrap(),
            None
        );
    }

    #[test]
    fn usage_is_read_from_the_top_level_only() {
        let body = br#"{"choices":[{"message":{"content":"\"usage\": {\"prompt_tokens\": 99}"}}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":0}}}"#;
        let u = read_usage(body).unwrap().unwrap();
        assert_eq!((u.prompt(), u.completion()), (7, 3));
        assert_eq!(u.cache_read, 0);
    }

    #[test]
    fn embeddings_usage_has_no_completion_tokens() {
        let body = br#"{"object":"list","data":[{"embedding":[0.1,-2e-3]}],"usage":{"prompt_tokens":5,"total_tokens":5}}"#;
        let u = read_usage(body).unwrap().unwrap();
        assert_eq!((u.prompt(), u.completion()), (5, 0));
    }

    #[test]
    fn a_truncated_body_is_an_error_and_a_body_without_usage_is_none() {
        assert!(read_usage(br#"{"id":"chatcmpl-1","choices":[{"#).is_err());
        assert_eq!(read_usage(br#"{"id":"x","usage":null}"#).unwrap(), None);
    }

    #[test]
    fn chunk_summary_tells_content_from_role_only_and_usage_only_chunks() {
        let role = br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
        let text = br#"{"choices":[{"index":0,"delta":{"content":"Hel"}}],"usage":null}"#;
        let tool = br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}"#;
        let legacy = br#"{"choices":[{"text":"lo","index":0}]}"#;
        let usage = br#"{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}"#;
        assert!(!summarize_chunk(role).unwrap().has_content);
        assert!(summarize_chunk(text).unwrap().has_content);
        assert!(summarize_chunk(tool).unwrap().has_content);
        assert!(summarize_chunk(legacy).unwrap().has_content);
        let u = summarize_chunk(usage).unwrap();
        assert!(u.no_choices && !u.has_content);
        assert_eq!(u.usage.unwrap().completion(), 2);
    }

    #[test]
    fn error_body_has_openai_shape() {
        let json = ErrorBody::new("bad", "invalid_request_error", Some("model"), "x").to_json();
        assert_eq!(
            json,
            r#"{"error":{"message":"bad","type":"invalid_request_error","param":"model","code":"x"}}"#
        );
    }
}
