//! The cookie-mode payload: koa's base64 of the session JSON, and a trait for bringing another
//! encoding (koa's `encode`/`decode` options).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use session_core::MaxAge;
use session_core::store::Record;

use crate::keygrip::KeyMatch;

/// An encoding failure (a custom codec's; koa's encoding can't fail).
#[derive(Debug, thiserror::Error)]
#[error("session payload could not be encoded: {0}")]
pub struct CodecError(pub String);

/// Turns a session record into a cookie value and back.
///
/// `decode` must never panic and returns `None` for anything it can't read: the session then
/// starts over. A codec that does not [authenticate](Codec::authenticates) its values sees, in
/// a signed configuration, only values whose signature already verified; one that does sees
/// whatever the client sent.
pub trait Codec: Send + Sync + 'static {
    /// The cookie value for `record`. Must consist of cookie-octets (RFC 6265), or writing the
    /// cookie fails with an error.
    fn encode(&self, record: &Record) -> Result<String, CodecError>;
    /// The record in `value`; `default_max_age` applies when the payload carries none.
    fn decode(&self, value: &str, default_max_age: MaxAge) -> Option<Record>;

    /// [`Codec::decode`], also saying which of the codec's keys opened the value. A value
    /// opened with an older key is written again (under the newest) on that response, as a
    /// cookie signed with an older key is re-signed: key rotation without logging anyone out.
    ///
    /// The default is for codecs without keys of their own: the record of
    /// [`Codec::decode`], opened with the "newest" key.
    fn decode_with_key(&self, value: &str, default_max_age: MaxAge) -> Option<Decoded> {
        self.decode(value, default_max_age).map(|record| Decoded {
            record,
            key: KeyMatch::Newest,
        })
    }

    /// Whether the codec authenticates its own values (an AEAD, like [`EncryptedCodec`]): the
    /// session cookie then goes without a `.sig` cookie, and `decode` sees whatever the client
    /// sent. Default `false`: the middleware signs the value. `session-hyper` takes an
    /// authenticating codec only in `CookieMode::Encrypted`, and requires one there.
    ///
    /// [`EncryptedCodec`]: crate::EncryptedCodec
    fn authenticates(&self) -> bool {
        false
    }
}

/// A record read from a cookie value, and the key that opened it ([`Codec::decode_with_key`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The session record.
    pub record: Record,
    /// The key that opened it: an older one means the value must be written again.
    pub key: KeyMatch,
}

/// koa-session's codec: standard base64 (with `+/` and `=` padding) of the UTF-8 JSON, keys in
/// insertion order then `_expire`/`_maxAge` (or `_session`); decoded as leniently as Node's
/// `Buffer.from(value, 'base64')`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KoaCodec;

impl Codec for KoaCodec {
    fn encode(&self, record: &Record) -> Result<String, CodecError> {
        Ok(STANDARD.encode(record.to_koa_json()))
    }

    fn decode(&self, value: &str, default_max_age: MaxAge) -> Option<Record> {
        let json = node_base64_decode(value.as_bytes());
        Record::from_koa_json(&json, default_max_age)
    }
}

/// Node's lenient base64 decoding: both alphabets (`+/` and `-_`), characters outside them
/// skipped, decoding stops at the first `=`, missing padding is fine, and a lone trailing
/// character is dropped.
pub fn node_base64_decode(input: &[u8]) -> Vec<u8> {
    // What koa writes is canonical padded base64: the base64 crate decodes it several times
    // faster, to the same bytes. Anything else takes Node's lenient path.
    if let Ok(v) = STANDARD.decode(input) {
        return v;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The fast path and the lenient loop agree on every canonical input.
        #[test]
        fn fast_path_matches_lenient_decoding(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let encoded = STANDARD.encode(&bytes);
            proptest::prop_assert_eq!(node_base64_decode(encoded.as_bytes()), bytes.clone());
            proptest::prop_assert_eq!(lenient(encoded.as_bytes()), bytes);
        }
    }

    /// The lenient loop alone (the input below is never canonical, so it is what ran there).
    fn lenient(input: &[u8]) -> Vec<u8> {
        let mut with_junk = b"!".to_vec();
        with_junk.extend_from_slice(input);
        node_base64_decode(&with_junk)
    }

    #[test]
    fn node_decoding_quirks() {
        assert_eq!(node_base64_decode(b"eyJhIjoxfQ"), br#"{"a":1}"#);
        assert_eq!(node_base64_decode(b"eyJh IjoxfQ"), br#"{"a":1}"#);
        assert_eq!(node_base64_decode(b"eyJh!!IjoxfQ"), br#"{"a":1}"#);
        assert_eq!(node_base64_decode(b"eyJhIjoxfQ==garbage"), br#"{"a":1}"#);
        // Both alphabets.
        assert_eq!(node_base64_decode(b"-_-_"), node_base64_decode(b"+/+/"));
        // A lone trailing character carries no full byte.
        assert_eq!(node_base64_decode(b"QQ"), b"A");
        assert_eq!(node_base64_decode(b"QQx"), b"A\x0c");
        assert_eq!(node_base64_decode(b"Q"), b"");
        assert_eq!(node_base64_decode(b""), b"");
    }

    #[test]
    fn garbage_gives_none_not_panic() {
        for v in ["", "=", "e30", "!!!!", "bnVsbA", "WzFd", "eyJh"] {
            let r = KoaCodec.decode(v, MaxAge::Session);
            if v == "e30" {
                assert!(r.is_some(), "{{}} is a valid empty session");
            } else {
                assert!(r.is_none(), "{v:?} decoded to {r:?}");
            }
        }
    }
}
