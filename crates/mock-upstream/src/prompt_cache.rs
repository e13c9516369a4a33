//! The prompt cache the mock pretends to have, so that usage carries cached tokens the way
//! providers report them, by rules a test can recompute:
//! - a prefix is cacheable from [`MIN_CACHED_TOKENS`] tokens on;
//! - the first request with a prefix writes it to the cache, later ones (same model, same
//!   prefix, same instance) read it;
//! - OpenAI's cache reads come in whole blocks of [`BLOCK`] tokens; Anthropic's are the whole
//!   prefix, as are its writes.
//!
//! What the prefix is depends on the API: see `responses.rs`, `messages.rs` and `generate.rs`.
//! The set of seen prefixes is bounded: past [`CAPACITY`] it starts again empty, which a
//! provider's cache eviction would do too.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

/// The smallest prefix a provider caches.
pub(crate) const MIN_CACHED_TOKENS: u64 = 1024;
/// OpenAI reports cache hits in blocks of this many tokens.
pub(crate) const BLOCK: u64 = 128;
/// Prefixes remembered at most.
const CAPACITY: usize = 65_536;

/// What the cache did for a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CacheUse {
    pub(crate) read: u64,
    pub(crate) written: u64,
}

/// The prefixes seen, by hash.
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    seen: Mutex<HashSet<u64>>,
}

impl PromptCache {
    /// Looks up a prefix of `tokens` tokens whose content hashes as `key` (with the model);
    /// remembers it for next time.
    pub(crate) fn lookup(&self, model: &str, key: impl Hash, tokens: u64) -> CacheUse {
        if tokens < MIN_CACHED_TOKENS {
            return CacheUse::default();
        }
        let mut hasher = DefaultHasher::new();
        model.hash(&mut hasher);
        key.hash(&mut hasher);
        let hash = hasher.finish();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(&hash) {
            return CacheUse {
                read: tokens,
                written: 0,
            };
        }
        if seen.len() >= CAPACITY {
            seen.clear();
        }
        seen.insert(hash);
        CacheUse {
            read: 0,
            written: tokens,
        }
    }
}

/// OpenAI's cached tokens for a cache read: whole blocks only.
pub(crate) fn openai_cached(read: u64) -> u64 {
    read / BLOCK * BLOCK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_prefix_is_written_once_then_read_and_a_short_one_never_cached() {
        let cache = PromptCache::default();
        assert_eq!(cache.lookup("m", "p", 2000).written, 2000);
        assert_eq!(cache.lookup("m", "p", 2000).read, 2000);
        assert_eq!(cache.lookup("other", "p", 2000).written, 2000, "per model");
        assert_eq!(cache.lookup("m", "short", 1023), CacheUse::default());
        assert_eq!(cache.lookup("m", "short", 1023), CacheUse::default());
        assert_eq!(openai_cached(2000), 1920);
    }
}
