//! The proxied endpoints: a closed set, so that each one can be a metric label value and an
//! index into pre-resolved metric handles. Each endpoint speaks one wire format
//! ([`Protocol`]) and is served by one kind of upstream ([`UpstreamKind`]).

use crate::upstream::UpstreamKind;

/// An endpoint the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/messages` (Anthropic).
    Messages,
    /// `POST /v1/messages/count_tokens` (Anthropic).
    MessagesCountTokens,
    /// `GET` and `DELETE /v1/responses/{id}`: passed through to the upstream that holds it.
    ResponseById,
    /// `GET /v1/responses/{id}/input_items`: passed through like [`Endpoint::ResponseById`].
    ResponseInputItems,
}

/// The wire format of an endpoint's bodies, streams and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Chat completions, completions, embeddings: `usage.prompt_tokens`, `data:` chunks
    /// ending in `[DONE]`.
    OpenAi,
    /// OpenAI's Responses API: `usage.input_tokens`, typed events ending in
    /// `response.completed`, `response.incomplete` or `response.failed`.
    Responses,
    /// Anthropic's Messages API: `usage.input_tokens` without the cached tokens, typed
    /// events ending in `message_stop`, errors as `{"type":"error","error":{..}}`.
    Anthropic,
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Responses,
        Endpoint::Messages,
        Endpoint::MessagesCountTokens,
        Endpoint::ResponseById,
        Endpoint::ResponseInputItems,
    ];

    /// The route template the gateway serves, which is also the `endpoint` label value.
    pub const fn route(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Responses => "/v1/responses",
            Endpoint::Messages => "/v1/messages",
            Endpoint::MessagesCountTokens => "/v1/messages/count_tokens",
            Endpoint::ResponseById => "/v1/responses/{id}",
            Endpoint::ResponseInputItems => "/v1/responses/{id}/input_items",
        }
    }

    /// The path below the upstream's base URL (which ends in `/v1` by convention) of the
    /// endpoints routed by model; `None` for the pass-throughs, whose path holds an id.
    pub const fn upstream_path(self) -> Option<&'static str> {
        match self {
            Endpoint::ChatCompletions => Some("chat/completions"),
            Endpoint::Completions => Some("completions"),
            Endpoint::Embeddings => Some("embeddings"),
            Endpoint::Responses => Some("responses"),
            Endpoint::Messages => Some("messages"),
            Endpoint::MessagesCountTokens => Some("messages/count_tokens"),
            Endpoint::ResponseById | Endpoint::ResponseInputItems => None,
        }
    }

    pub const fn protocol(self) -> Protocol {
        match self {
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Embeddings => {
                Protocol::OpenAi
            }
            Endpoint::Responses | Endpoint::ResponseById | Endpoint::ResponseInputItems => {
                Protocol::Responses
            }
            Endpoint::Messages | Endpoint::MessagesCountTokens => Protocol::Anthropic,
        }
    }

    /// The kind of upstream that serves the endpoint.
    pub const fn kind(self) -> UpstreamKind {
        match self.protocol() {
            Protocol::OpenAi | Protocol::Responses => UpstreamKind::OpenAi,
            Protocol::Anthropic => UpstreamKind::Anthropic,
        }
    }

    /// Whether the endpoint can answer with a Server-Sent Events stream when asked to.
    pub const fn can_stream(self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions
                | Endpoint::Completions
                | Endpoint::Responses
                | Endpoint::Messages
        )
    }

    /// Whether an answer reports tokens that were used (and billed). Counting tokens and
    /// reading back a stored response use none.
    pub const fn counts_usage(self) -> bool {
        !matches!(
            self,
            Endpoint::MessagesCountTokens | Endpoint::ResponseById | Endpoint::ResponseInputItems
        )
    }

    /// Position in [`Endpoint::ALL`], used to index pre-resolved metric handles.
    pub const fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_position_in_all() {
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }

    #[test]
    fn routes_end_with_the_upstream_path() {
        for e in Endpoint::ALL {
            if let Some(path) = e.upstream_path() {
                assert!(e.route().ends_with(path), "{e:?}");
            }
        }
    }

    #[test]
    fn the_anthropic_endpoints_are_served_by_anthropic_upstreams_only() {
        for e in Endpoint::ALL {
            let anthropic = e.route().starts_with("/v1/messages");
            assert_eq!(e.kind() == UpstreamKind::Anthropic, anthropic, "{e:?}");
        }
    }
}
