//! The proxied OpenAI endpoints: a closed set, so that each one can be a metric label value
//! and an index into pre-resolved metric handles.

/// An OpenAI endpoint the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    pub const ALL: [Endpoint; 3] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
    ];

    /// The route template the gateway serves, which is also the `endpoint` label value.
    pub const fn route(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
        }
    }

    /// The path below the upstream's base URL (which ends in `/v1` by convention).
    pub const fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat/completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }

    /// Whether the endpoint can answer with a Server-Sent Events stream.
    pub const fn can_stream(self) -> bool {
        !matches!(self, Endpoint::Embeddings)
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
            assert!(e.route().ends_with(e.upstream_path()));
        }
    }
}
