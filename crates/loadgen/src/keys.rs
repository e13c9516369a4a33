//! Client keys: the secrets the loadgen presents to a gateway that asks for them, as
//! `Authorization: Bearer <key>`. A key is a secret, so it goes into that header (marked
//! sensitive) and nowhere else: its `Debug` form is redacted, and an error about a key names it
//! by its position, never by its text.
//!
//! Each request of the mix presents a [`Credential`]: no key when none is configured, the
//! configured keys in turn (so that each gets an even share of the traffic), or, for the mix's
//! wrong-key requests, [`WRONG_KEY`].

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use reqwest::header::HeaderValue;

/// What the mix's wrong-key requests present: obviously made up, so that no gateway holds it
/// and whoever reads the gateway's 401s can tell where they came from.
pub const WRONG_KEY: &str = "sk-mcp-loadgen-wrong-key";

/// One client key. Surrounding whitespace is dropped (`LOADGEN_API_KEYS="a, b"`).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        Self(secret.trim().to_owned())
    }

    /// An empty key, as an empty `LOADGEN_API_KEYS` or a stray comma gives: no key at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Parsing never fails: a parser that could refuse a key would have the command line's error
/// message quote it. A key that cannot be sent is refused later, by position ([`Credentials`]).
impl FromStr for ApiKey {
    type Err = Infallible;

    fn from_str(secret: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(secret))
    }
}

/// The key one request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// No `Authorization` header (no keys are configured).
    None,
    /// The configured key at this position.
    Key(usize),
    /// [`WRONG_KEY`].
    Wrong,
}

/// Hands out the configured keys in turn.
#[derive(Debug, Clone, Default)]
pub struct KeyTurns {
    count: usize,
    next: usize,
}

impl KeyTurns {
    /// Turns over `count` keys; with none, every request goes without a key.
    pub fn new(count: usize) -> Self {
        Self { count, next: 0 }
    }

    /// Whether there is any key to present (or to get wrong).
    pub fn any(&self) -> bool {
        self.count > 0
    }

    /// The key the next request presents.
    pub fn next_credential(&mut self) -> Credential {
        if self.count == 0 {
            return Credential::None;
        }
        let key = self.next;
        self.next = (key + 1) % self.count;
        Credential::Key(key)
    }
}

/// The `Authorization` values, built once for the whole run.
#[derive(Clone)]
pub struct Credentials {
    keys: Arc<[HeaderValue]>,
    wrong: HeaderValue,
}

impl Credentials {
    /// The headers for these keys; an error, naming the key by its position, if one cannot be
    /// sent in a header (a control character or a line break in it).
    pub fn new(keys: &[ApiKey]) -> anyhow::Result<Self> {
        let keys = keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                bearer(&key.0).ok_or_else(|| {
                    anyhow::anyhow!(
                        "client key #{} cannot be sent in a header: it holds a control character",
                        index + 1
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let wrong = bearer(WRONG_KEY).expect("the wrong key is plain ASCII");
        Ok(Self { keys, wrong })
    }

    /// The `Authorization` value for `credential`; `None` for no header (and for a position
    /// beyond the keys, which the mix never draws).
    pub fn header(&self, credential: Credential) -> Option<&HeaderValue> {
        match credential {
            Credential::None => None,
            Credential::Key(index) => self.keys.get(index),
            Credential::Wrong => Some(&self.wrong),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// `Bearer <key>`, marked sensitive so that the HTTP stack neither shows nor indexes it.
fn bearer(key: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {key}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_taken_in_turn_and_none_without_keys() {
        let mut turns = KeyTurns::new(3);
        let drawn: Vec<_> = (0..7).map(|_| turns.next_credential()).collect();
        let expected = [0, 1, 2, 0, 1, 2, 0].map(Credential::Key);
        assert_eq!(drawn, expected);
        let mut none = KeyTurns::new(0);
        assert!(!none.any());
        assert_eq!(none.next_credential(), Credential::None);
    }

    #[test]
    fn each_credential_maps_to_its_header() {
        let keys = [ApiKey::new(" sk-first "), ApiKey::new("sk-second")];
        let credentials = Credentials::new(&keys).unwrap();
        let header = |c| {
            credentials
                .header(c)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header(Credential::None), None);
        assert_eq!(header(Credential::Key(0)).unwrap(), "Bearer sk-first");
        assert_eq!(header(Credential::Key(1)).unwrap(), "Bearer sk-second");
        assert_eq!(header(Credential::Key(2)), None);
        assert_eq!(
            header(Credential::Wrong).unwrap(),
            format!("Bearer {WRONG_KEY}")
        );
        assert!(
            credentials
                .header(Credential::Key(0))
                .unwrap()
                .is_sensitive()
        );
    }

    #[test]
    fn no_debug_form_or_error_shows_a_key() {
        let secret = "sk-do-not-show-4f9a";
        let keys = [ApiKey::new(secret), ApiKey::new("sk-bad\nkey-4f9a")];
        assert!(!format!("{:?}", keys[0]).contains("4f9a"));
        let credentials = Credentials::new(&keys[..1]).unwrap();
        let shown = format!(
            "{credentials:?} {:?}",
            credentials.header(Credential::Key(0))
        );
        assert!(!shown.contains("4f9a"), "{shown}");
        let error = format!("{:#}", Credentials::new(&keys).unwrap_err());
        assert!(error.contains("client key #2"), "{error}");
        assert!(!error.contains("4f9a"), "{error}");
    }

    #[test]
    fn blank_keys_are_empty_and_parsing_never_fails() {
        assert!(ApiKey::new("  ").is_empty());
        assert_eq!("sk-a ".parse::<ApiKey>(), Ok(ApiKey::new("sk-a")));
    }
}
