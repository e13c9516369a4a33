//! Reading a request body the way OpenAI does: malformed JSON, a body that is not an object, a
//! missing `model` or a wrongly typed parameter is a 400 naming the parameter. Generated mode
//! reads everything an answer depends on; fixed mode only checks the body and reads `stream`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api_error::ApiError;
use crate::generate::TextKind;
use crate::usage;

/// The largest `max_tokens` accepted, like a model's output limit.
pub(crate) const MAX_COMPLETION_TOKENS: u64 = 131_072;
/// The largest `dimensions` accepted for embeddings.
pub(crate) const MAX_DIMENSIONS: u64 = 8_192;
/// Embedding size when the request names none, as `text-embedding-3-small`.
pub(crate) const DEFAULT_DIMENSIONS: usize = 1_536;

/// A chat or completions request, as far as the answer depends on it.
#[derive(Debug, PartialEq)]
pub(crate) struct TextRequest {
    pub(crate) model: String,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    pub(crate) max_tokens: Option<u64>,
    pub(crate) prompt_tokens: u64,
    /// Chat: every message but the last, the part a prompt cache can hold: its estimate and
    /// its text.
    pub(crate) prefix: Option<(u64, String)>,
}

/// An embeddings request, as far as the answer depends on it.
#[derive(Debug, PartialEq)]
pub(crate) struct EmbeddingsRequest {
    pub(crate) model: String,
    pub(crate) prompt_tokens: u64,
    pub(crate) count: usize,
    pub(crate) dimensions: usize,
    pub(crate) base64: bool,
}

pub(crate) fn parse_text(kind: TextKind, body: &[u8]) -> Result<TextRequest, ApiError> {
    let object = parse_object(body)?;
    let model = model(&object)?;
    let stream = optional_bool(&object, "stream")?.unwrap_or(false);
    let include_usage = match object.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(_) if !stream => {
            return Err(ApiError::invalid_request(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                Some("stream_options"),
            ));
        }
        Some(Value::Object(options)) => optional_bool(options, "include_usage")?.unwrap_or(false),
        Some(_) => return Err(ApiError::invalid_param("stream_options", "an object")),
    };
    let max_tokens = match optional_count(&object, "max_completion_tokens", MAX_COMPLETION_TOKENS)?
    {
        Some(cap) => Some(cap),
        None => optional_count(&object, "max_tokens", MAX_COMPLETION_TOKENS)?,
    };
    let mut prefix = None;
    let prompt_tokens = match kind {
        TextKind::Chat => match object.get("messages") {
            None | Some(Value::Null) => return Err(ApiError::missing_param("messages")),
            Some(Value::Array(messages))
                if !messages.is_empty() && messages.iter().all(Value::is_object) =>
            {
                let earlier = &messages[..messages.len() - 1];
                prefix = Some((
                    usage::chat_prompt_tokens(earlier).saturating_sub(3),
                    Value::Array(earlier.to_vec()).to_string(),
                ));
                usage::chat_prompt_tokens(messages)
            }
            Some(_) => {
                return Err(ApiError::invalid_param(
                    "messages",
                    "a non-empty array of objects",
                ));
            }
        },
        TextKind::Completion => usage::input_tokens(text_input(&object, "prompt")?),
    };
    Ok(TextRequest {
        model,
        stream,
        include_usage,
        max_tokens,
        prompt_tokens,
        prefix,
    })
}

pub(crate) fn parse_embeddings(body: &[u8]) -> Result<EmbeddingsRequest, ApiError> {
    let object = parse_object(body)?;
    let model = model(&object)?;
    let input = text_input(&object, "input")?;
    let dimensions = optional_count(&object, "dimensions", MAX_DIMENSIONS)?;
    let base64 = match object.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(format)) if format == "float" => false,
        Some(Value::String(format)) if format == "base64" => true,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "encoding_format",
                "'float' or 'base64'",
            ));
        }
    };
    Ok(EmbeddingsRequest {
        model,
        prompt_tokens: usage::input_tokens(input),
        count: usage::input_count(input),
        // `optional_count` caps the value far below usize::MAX.
        dimensions: dimensions.map_or(DEFAULT_DIMENSIONS, |d| d as usize),
        base64,
    })
}

/// Fixed mode's whole reading of a body: it must be a JSON object with a string `model`; the
/// answer is whether it asks for a stream. Other fields are skipped without being built.
pub(crate) fn probe_stream(body: &[u8]) -> Result<bool, ApiError> {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        model: Option<Cow<'a, str>>,
        #[serde(default)]
        stream: Option<bool>,
    }
    // A derived struct also accepts a JSON array, which OpenAI would refuse.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(parse_object(body).err().unwrap_or_else(not_an_object));
    }
    let probe: Probe<'_> = serde_json::from_slice(body).map_err(|error| {
        ApiError::invalid_request(format!("Invalid request body: {error}."), None)
    })?;
    match probe.model {
        Some(model) if !model.is_empty() => Ok(probe.stream.unwrap_or(false)),
        _ => Err(ApiError::missing_param("model")),
    }
}

pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(not_an_object()),
        Err(_) => Err(ApiError::invalid_request(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON \
             payload, but what was sent was not valid JSON.",
            None,
        )),
    }
}

pub(crate) fn not_an_object() -> ApiError {
    ApiError::invalid_request("Invalid type for request body: expected an object.", None)
}

pub(crate) fn model(object: &Map<String, Value>) -> Result<String, ApiError> {
    match object.get("model") {
        None | Some(Value::Null) => Err(ApiError::missing_param("model")),
        Some(Value::String(model)) if model.is_empty() => Err(ApiError::missing_param("model")),
        Some(Value::String(model)) => Ok(model.clone()),
        Some(_) => Err(ApiError::invalid_param("model", "a string")),
    }
}

pub(crate) fn optional_bool(
    object: &Map<String, Value>,
    name: &str,
) -> Result<Option<bool>, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(_) => Err(ApiError::invalid_param(name, "a boolean")),
    }
}

/// A positive integer parameter no larger than `max`.
pub(crate) fn optional_count(
    object: &Map<String, Value>,
    name: &str,
    max: u64,
) -> Result<Option<u64>, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_u64() {
            Some(count) if (1..=max).contains(&count) => Ok(Some(count)),
            _ => Err(ApiError::invalid_param(
                name,
                &format!("an integer from 1 to {max}"),
            )),
        },
    }
}

/// A `prompt` or `input`: a non-empty string, or a non-empty array of strings, tokens or
/// token arrays.
fn text_input<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a Value, ApiError> {
    let valid_item = |item: &Value| match item {
        Value::String(_) => true,
        Value::Number(number) => number.is_u64(),
        Value::Array(tokens) => !tokens.is_empty() && tokens.iter().all(Value::is_u64),
        _ => false,
    };
    match object.get(name) {
        None | Some(Value::Null) => Err(ApiError::missing_param(name)),
        Some(input @ Value::String(text)) if !text.is_empty() => Ok(input),
        Some(input @ Value::Array(items)) if !items.is_empty() && items.iter().all(valid_item) => {
            Ok(input)
        }
        Some(_) => Err(ApiError::invalid_param(
            name,
            "a non-empty string or array of strings or token arrays",
        )),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;

    use super::*;

    #[test]
    fn malformed_json_and_non_objects_are_bad_requests() {
        for body in [&b"{\"model\": "[..], b"[1, 2]", b"", b"null"] {
            let error = parse_text(TextKind::Chat, body).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST);
            assert_eq!(
                probe_stream(body).unwrap_err().status(),
                StatusCode::BAD_REQUEST
            );
        }
    }

    #[test]
    fn a_missing_model_is_refused_in_both_modes() {
        let body = br#"{"messages": [{"role": "user", "content": "hi"}]}"#;
        assert!(
            parse_text(TextKind::Chat, body)
                .unwrap_err()
                .to_string()
                .contains("'model'")
        );
        assert!(
            probe_stream(body)
                .unwrap_err()
                .to_string()
                .contains("'model'")
        );
    }

    #[test]
    fn the_probe_reads_stream_and_ignores_everything_else() {
        let body = br#"{"model": "m", "messages": [{"x": [1, {"y": null}]}], "stream": true}"#;
        assert!(probe_stream(body).unwrap());
        assert!(!probe_stream(br#" {"model": "m\u00e9"}"#).unwrap());
        assert!(probe_stream(br#"{"model": "m", "stream": "yes"}"#).is_err());
    }

    #[test]
    fn a_chat_request_yields_its_prompt_estimate_and_stream_options() {
        let body = br#"{"model": "gpt", "stream": true, "stream_options": {"include_usage": true},
            "max_tokens": 9, "messages": [{"role": "user", "content": "abcdefgh"}]}"#;
        let request = parse_text(TextKind::Chat, body).unwrap();
        assert_eq!(
            request,
            TextRequest {
                model: "gpt".into(),
                stream: true,
                include_usage: true,
                max_tokens: Some(9),
                prompt_tokens: 2 + 3 + 3,
                prefix: Some((0, "[]".into())),
            }
        );
    }

    #[test]
    fn max_completion_tokens_wins_and_zero_is_refused() {
        let body = br#"{"model": "m", "prompt": "x", "max_tokens": 9, "max_completion_tokens": 4}"#;
        assert_eq!(
            parse_text(TextKind::Completion, body).unwrap().max_tokens,
            Some(4)
        );
        let zero = br#"{"model": "m", "prompt": "x", "max_tokens": 0}"#;
        assert!(
            parse_text(TextKind::Completion, zero)
                .unwrap_err()
                .to_string()
                .contains("max_tokens")
        );
    }

    #[test]
    fn stream_options_without_stream_is_refused() {
        let body = br#"{"model": "m", "prompt": "x", "stream_options": {"include_usage": true}}"#;
        let error = parse_text(TextKind::Completion, body).unwrap_err();
        assert!(error.to_string().contains("stream_options"));
    }

    #[test]
    fn embeddings_read_dimensions_format_and_token_inputs() {
        let body = br#"{"model": "e", "input": [[1, 2, 3], [4]], "dimensions": 8,
            "encoding_format": "base64"}"#;
        let request = parse_embeddings(body).unwrap();
        assert_eq!(
            (request.count, request.dimensions, request.prompt_tokens),
            (2, 8, 4)
        );
        assert!(request.base64);
        let plain = parse_embeddings(br#"{"model": "e", "input": "abcd"}"#).unwrap();
        assert_eq!(
            (plain.dimensions, plain.prompt_tokens),
            (DEFAULT_DIMENSIONS, 1)
        );
        assert!(parse_embeddings(br#"{"model": "e", "input": ""}"#).is_err());
        assert!(parse_embeddings(br#"{"model": "e", "input": [{"a": 1}]}"#).is_err());
    }
}
