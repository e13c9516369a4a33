//! Request ids: every request gets one, kept from the client when it sends a usable
//! `x-request-id`, minted otherwise. The gateway answers it in `x-mcp-request-id`, writes it
//! in the access line and sends it upstream as `x-request-id`; the upstream's own id, which
//! OpenAI's SDKs expose and a provider's support asks for, stays in the answer's
//! `x-request-id`.

use bytes::Bytes;

/// The header a client may send its own id in, and the gateway sends it upstream in.
pub const CLIENT_HEADER: &str = "x-request-id";
/// The header the gateway answers the id in.
pub const GATEWAY_HEADER: &str = "x-mcp-request-id";

/// Longest client id kept.
const MAX_LEN: usize = 128;

/// One request's id: visible ASCII, so it is a valid header value and a safe log field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Bytes);

impl RequestId {
    /// The client's id when it is 1 to 128 of `A-Z a-z 0-9 - _ . :`; a new one otherwise.
    pub fn from_client(sent: Option<&[u8]>) -> Self {
        match sent {
            Some(id) if Self::usable(id) => Self(Bytes::copy_from_slice(id)),
            _ => Self::mint(),
        }
    }

    /// `req_` and 32 hexadecimal digits, as OpenAI's ids look.
    pub fn mint() -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut id = *b"req_00000000000000000000000000000000";
        let random = fastrand::u128(..);
        for (i, digit) in id[4..].iter_mut().enumerate() {
            *digit = DIGITS[(random >> (124 - 4 * i) & 0xf) as usize];
        }
        Self(Bytes::copy_from_slice(&id))
    }

    fn usable(id: &[u8]) -> bool {
        !id.is_empty()
            && id.len() <= MAX_LEN
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever kept (see `usable` and `mint`).
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_client_id_is_kept_and_anything_else_replaced() {
        let kept = RequestId::from_client(Some(b"trace-42.a:b_c"));
        assert_eq!(kept.as_str(), "trace-42.a:b_c");
        for bad in [
            &b""[..],
            b"has space",
            b"line\nbreak",
            &[b'a'; 129],
            "é".as_bytes(),
        ] {
            let minted = RequestId::from_client(Some(bad));
            assert!(minted.as_str().starts_with("req_"), "{bad:?}");
            assert_eq!(minted.as_str().len(), 36);
        }
        assert_ne!(RequestId::mint(), RequestId::mint());
        let minted = RequestId::mint();
        let digits = minted.as_str().strip_prefix("req_").unwrap();
        let value = u128::from_str_radix(digits, 16).unwrap();
        assert_eq!(format!("{value:032x}"), digits);
    }
}
