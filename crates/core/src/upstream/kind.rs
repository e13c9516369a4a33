//! Which API an upstream speaks, and how it is told who the gateway is.
//!
//! An OpenAI-kind upstream serves chat completions, completions, embeddings and responses and
//! takes its key as `Authorization: Bearer`; an Anthropic-kind upstream serves the Messages API
//! and takes its key as `x-api-key`, with the `anthropic-version` it is asked to speak.

use http::HeaderName;
use serde::Deserialize;

/// The API an upstream speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    /// OpenAI's API, or a compatible server (vLLM, Ollama, Azure's compatible endpoint, ...).
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

impl UpstreamKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::OpenAi => "openai",
            UpstreamKind::Anthropic => "anthropic",
        }
    }

    /// The API's name as a client knows it, for messages.
    pub const fn api_name(self) -> &'static str {
        match self {
            UpstreamKind::OpenAi => "OpenAI",
            UpstreamKind::Anthropic => "Anthropic",
        }
    }
}

/// The version of Anthropic's API a request asks for.
pub const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
/// Anthropic's opt-in features for a request.
pub const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");
/// Where an Anthropic-kind upstream takes its key.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// The `anthropic-version` sent when neither the client nor the settings name one: the one
/// every Messages feature is documented against.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_from_settings_by_their_lowercase_names() {
        let kinds: Vec<UpstreamKind> = serde_json::from_str(r#"["openai", "anthropic"]"#).unwrap();
        assert_eq!(kinds, [UpstreamKind::OpenAi, UpstreamKind::Anthropic]);
        assert!(serde_json::from_str::<UpstreamKind>(r#""OpenAI""#).is_err());
        assert_eq!(UpstreamKind::default().as_str(), "openai");
    }
}
