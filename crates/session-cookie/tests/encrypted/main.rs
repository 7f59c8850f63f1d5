//! Property tests of the encrypted cookie codec over the public API: round trips, tampering,
//! the cookie name binding, key rotation, confidentiality, sizes, configuration and garbage.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use session_cookie::{
    Codec, CookieError, Decoded, ENCRYPTED_PREFIX, EncryptedCodec, Incoming, KeyMatch,
    MAX_COOKIE_BYTES, SessionCookies, encrypted_len,
};
use session_core::driver::Secret;
use session_core::store::{Meta, Record};
use session_core::{Config, ConfigError, CookieMode, CookieOptions, MaxAge};

#[path = "../support/mod.rs"]
mod support;

mod configuration;
mod properties;
mod sizes;
mod tampering;

use support::*;

const NAME: &str = "koa.sess";
const NOW: u64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// Helpers and strategies.

fn secret(fill: u8) -> Secret {
    Secret::new(vec![fill; 32])
}

fn codec(name: &str, keys: &[Secret]) -> EncryptedCodec {
    EncryptedCodec::new(name, keys).unwrap()
}

/// An unsigned jar, as the middleware reads cookies in encrypted mode.
fn jar(name: &str) -> SessionCookies {
    let options = CookieOptions {
        name: name.to_owned(),
        ..CookieOptions::default()
    };
    SessionCookies::new(options, None)
}

/// Every value the jar hands on to the codec.
fn candidates<'a>(incoming: &Incoming<'a>) -> Vec<&'a str> {
    match incoming {
        Incoming::Valid { value, .. } => vec![*value],
        Incoming::Candidates { verified, .. } => verified.iter().map(|v| v.value).collect(),
        _ => Vec::new(),
    }
}

fn meta() -> impl Strategy<Value = Meta> {
    (
        proptest::option::of(any::<u64>()),
        prop_oneof![
            Just(MaxAge::Session),
            (1u64..=u64::MAX).prop_map(MaxAge::Ms),
            (1u64..100_000_000_000).prop_map(MaxAge::Ms),
        ],
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(expire, max_age, created)| Meta {
            expire,
            max_age,
            created,
        })
}

fn record() -> impl Strategy<Value = Record> {
    (user_data(), meta()).prop_map(|(data, meta)| Record { data, meta })
}

/// A fixed record with a bit of everything, for the exhaustive tests.
fn fixed_record() -> Record {
    let Value::Object(data) = json!({
        "user": "ada",
        "n": 42,
        "f": 0.5,
        "nested": {"list": [1, "two", null, true], "é": "ü😀"},
    }) else {
        unreachable!()
    };
    Record {
        data,
        meta: Meta {
            expire: Some(NOW + 86_400_000),
            max_age: MaxAge::Ms(86_400_000),
            created: None,
        },
    }
}

/// `bytes` (a value tampered with) opens to nothing: given to the codec directly when it is
/// text at all, and through the `Cookie` header path the middleware takes. There, the cookie
/// grammar may turn it back into the original value (trailing whitespace trimmed, a `;` that
/// starts another pair): that one is no tampering and may decode.
fn assert_rejected(codec: &EncryptedCodec, jar: &SessionCookies, original: &str, bytes: &[u8]) {
    if let Ok(s) = std::str::from_utf8(bytes) {
        let got = codec.decode_with_key(s, MaxAge::Session);
        assert!(got.is_none(), "tampered value {s:?} decoded: {got:?}");
    }
    let mut header = format!("{}=", jar.options().name).into_bytes();
    header.extend_from_slice(bytes);
    let incoming = jar.read([header.as_slice()]);
    for v in candidates(&incoming) {
        if v != original {
            let got = codec.decode(v, MaxAge::Session);
            assert!(
                got.is_none(),
                "tampered cookie {v:?} (from {bytes:?}) decoded: {got:?}"
            );
        }
    }
}

/// The base64 forms of `s` wherever it sits in a longer encoded message: for each of the
/// three alignments, the characters that depend on `s`'s bytes alone.
fn base64_fragments(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for engine in [&STANDARD, &URL_SAFE] {
        for pad in 0..3usize {
            let mut bytes = vec![0u8; pad];
            bytes.extend_from_slice(s.as_bytes());
            let encoded = engine.encode(&bytes);
            let start = (pad * 8).div_ceil(6);
            let end = bytes.len() * 8 / 6;
            if end > start {
                out.push(encoded[start..end].to_owned());
            }
        }
    }
    out
}

/// `haystack` holds no trace of `needle`: neither its text nor any of its base64 forms.
fn assert_hidden(haystack: &str, needle: &str, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !haystack.contains(needle),
        "{what} holds {needle:?}: {haystack}"
    );
    for fragment in base64_fragments(needle) {
        prop_assert!(
            !haystack.contains(&fragment),
            "{what} holds {fragment:?}, base64 of {needle:?}: {haystack}"
        );
    }
    Ok(())
}

/// A record whose koa JSON is exactly `len` bytes (`len` ≥ 28).
fn record_of_json_len(len: usize) -> Record {
    let make = |n: usize| {
        let mut data = Map::new();
        data.insert("x".into(), Value::String("a".repeat(n)));
        Record {
            data,
            meta: Meta {
                expire: None,
                max_age: MaxAge::Session,
                created: None,
            },
        }
    };
    let overhead = make(0).to_koa_json().len();
    let r = make(len - overhead);
    assert_eq!(r.to_koa_json().len(), len);
    r
}
