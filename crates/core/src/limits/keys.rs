//! Client keys: who may use the gateway. A key is known by the SHA-256 digest of its secret;
//! the secret itself is never kept. Only a key's configured `name` ever becomes a label or
//! a log field.
//!
//! A presented key is hashed and looked up by its digest. The map's timing can only depend on
//! the digest, which says nothing usable about the secret (finding a secret with a given
//! digest prefix is a preimage search); the digest of the entry found is then compared with
//! the presented one in constant time, so no comparison of secret-derived bytes
//! short-circuits either.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Index of a key in the table; also its label index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(u16);

impl KeyId {
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The id of the `index`-th configured key.
    pub fn from_index(index: usize) -> Self {
        Self(u16::try_from(index).expect("bounded by KeyTable::MAX_KEYS"))
    }
}

/// A SHA-256 digest.
pub type KeyDigest = [u8; 32];

/// The digest of a secret, as stored.
pub fn digest(secret: &str) -> KeyDigest {
    Sha256::digest(secret.as_bytes()).into()
}

/// A digest written as 64 hexadecimal digits (what `sha256sum` prints).
pub fn parse_digest(hex_digest: &str) -> Option<KeyDigest> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digest.trim(), &mut out).ok()?;
    Some(out)
}

/// The configured keys.
#[derive(Debug, Clone, Default)]
pub struct KeyTable {
    names: Vec<String>,
    digests: Vec<KeyDigest>,
    by_digest: HashMap<KeyDigest, KeyId>,
}

/// A key table that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("keys[{0}]: the same secret as an earlier key")]
    DuplicateSecret(usize),
    #[error("keys[{0}].name `{1}` is used by an earlier key")]
    DuplicateName(usize, String),
    #[error("at most {0} keys can be configured")]
    TooMany(usize),
}

impl KeyTable {
    pub const MAX_KEYS: usize = 10_000;

    /// Keys by name and digest, in configuration order.
    pub fn new(keys: Vec<(String, KeyDigest)>) -> Result<Self, KeyError> {
        if keys.len() > Self::MAX_KEYS {
            return Err(KeyError::TooMany(Self::MAX_KEYS));
        }
        let mut table = Self::default();
        for (i, (name, digest)) in keys.into_iter().enumerate() {
            if table.names.contains(&name) {
                return Err(KeyError::DuplicateName(i, name));
            }
            let id = KeyId(u16::try_from(i).expect("bounded by MAX_KEYS"));
            if table.by_digest.insert(digest, id).is_some() {
                return Err(KeyError::DuplicateSecret(i));
            }
            table.names.push(name);
            table.digests.push(digest);
        }
        Ok(table)
    }

    /// Whether any key is configured (otherwise the gateway is open).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn name(&self, id: KeyId) -> &str {
        &self.names[id.index()]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The key a client presented, if it is one of ours.
    pub fn authenticate(&self, presented: &str) -> Option<KeyId> {
        let presented = digest(presented);
        let id = *self.by_digest.get(&presented)?;
        bool::from(self.digests[id.index()].ct_eq(&presented)).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_found_by_its_secret_and_nothing_else() {
        let table = KeyTable::new(vec![
            ("team-a".into(), digest("sk-team-a-0001")),
            (
                "team-b".into(),
                parse_digest(&hex::encode(digest("sk-team-b-0002"))).unwrap(),
            ),
        ])
        .unwrap();
        let a = table.authenticate("sk-team-a-0001").unwrap();
        assert_eq!(table.name(a), "team-a");
        assert_eq!(
            table.name(table.authenticate("sk-team-b-0002").unwrap()),
            "team-b"
        );
        assert_eq!(table.authenticate("sk-team-a-0002"), None);
        assert_eq!(table.authenticate(""), None);
        assert_eq!(
            table.authenticate(&hex::encode(digest("sk-team-a-0001"))),
            None
        );
    }

    #[test]
    fn duplicates_and_bad_digests_are_refused() {
        let d = digest("x");
        assert_eq!(
            KeyTable::new(vec![("a".into(), d), ("b".into(), d)]).unwrap_err(),
            KeyError::DuplicateSecret(1)
        );
        assert_eq!(
            KeyTable::new(vec![("a".into(), d), ("a".into(), digest("y"))]).unwrap_err(),
            KeyError::DuplicateName(1, "a".into())
        );
        assert_eq!(parse_digest("abc"), None);
        assert_eq!(parse_digest(&"g".repeat(64)), None);
        // sha256sum's output for "x".
        assert_eq!(
            parse_digest("2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"),
            Some(d)
        );
    }
}
