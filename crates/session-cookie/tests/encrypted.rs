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

mod support;

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

// ---------------------------------------------------------------------------------------------
// Properties over random records.

proptest! {
    /// decode(encode(r)) == r for any JSON session data and any meta, with the newest key, and
    /// the JSON comes back byte for byte (key order kept).
    #[test]
    fn round_trip(record in record(), keys in distinct_keys(1..=4), name in "(?s).{0,24}") {
        let codec = codec(&name, &secrets(&keys));
        let value = codec.encode(&record).unwrap();
        prop_assert!(value.starts_with(ENCRYPTED_PREFIX));
        prop_assert!(session_cookie::parse::is_cookie_value(value.as_bytes()), "{}", value);
        let Decoded { record: got, key } = codec.decode_with_key(&value, MaxAge::Ms(1)).unwrap();
        prop_assert_eq!(key, KeyMatch::Newest);
        prop_assert_eq!(got.to_koa_json(), record.to_koa_json());
        prop_assert_eq!(&got, &record);
        // The meta is carried: the default lifetime is never used.
        prop_assert_eq!(codec.decode(&value, MaxAge::Session), Some(record));
    }

    /// write → browser → read → decode gives the record back, among other cookies.
    #[test]
    fn round_trip_through_the_cookie_header(record in record(), other in "[a-z]{1,8}=[A-Za-z0-9]{0,20}",
                                            before: bool) {
        let codec = codec(NAME, &[secret(1), secret(2)]);
        let jar = jar(NAME);
        let value = codec.encode(&record).unwrap();
        let set = jar.write(&value, record.meta.expire, NOW, true).unwrap();
        prop_assert!(set.sig.is_none());
        let pair = set.value.split(';').next().unwrap();
        let header = if before { format!("{other}; {pair}") } else { format!("{pair}; {other}") };
        let incoming = jar.read([header.as_bytes()]);
        let Incoming::Valid { value: read, resign: false, signature: None } = incoming else {
            return Err(TestCaseError::fail(format!("not valid: {incoming:?}")));
        };
        prop_assert_eq!(read, value.as_str());
        prop_assert_eq!(codec.decode(read, MaxAge::Session), Some(record));
    }

    /// A single-byte change anywhere, to any other byte, opens to nothing.
    #[test]
    fn any_byte_change_is_rejected(record in record(), pos in any::<prop::sample::Index>(), byte: u8) {
        let codec = codec(NAME, &[secret(1), secret(2)]);
        let value = codec.encode(&record).unwrap();
        let mut bytes = value.clone().into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        assert_rejected(&codec, &jar(NAME), &value, &bytes);
    }

    /// Every truncation opens to nothing.
    #[test]
    fn any_truncation_is_rejected(record in record(), cut in any::<prop::sample::Index>()) {
        let codec = codec(NAME, &[secret(1), secret(2)]);
        let value = codec.encode(&record).unwrap();
        let len = cut.index(value.len());
        assert_rejected(&codec, &jar(NAME), &value, &value.as_bytes()[..len]);
    }

    /// Any extension by 1 to 8 bytes opens to nothing.
    #[test]
    fn any_extension_is_rejected(record in record(), tail in prop::collection::vec(any::<u8>(), 1..=8)) {
        let codec = codec(NAME, &[secret(1), secret(2)]);
        let value = codec.encode(&record).unwrap();
        let mut bytes = value.clone().into_bytes();
        bytes.extend_from_slice(&tail);
        assert_rejected(&codec, &jar(NAME), &value, &bytes);
    }

    /// A value made for one cookie name opens to nothing under any other, even with the same
    /// keys.
    #[test]
    fn bound_to_the_cookie_name(record in record(), name in "(?s).{0,24}", other in "(?s).{0,24}",
                                keys in distinct_keys(1..=4)) {
        prop_assume!(name != other);
        let keys = secrets(&keys);
        let value = codec(&name, &keys).encode(&record).unwrap();
        prop_assert_eq!(codec(&other, &keys).decode_with_key(&value, MaxAge::Session), None);
    }

    /// The same through cookies: a value copied to a cookie of another name is rejected.
    #[test]
    fn moved_cookie_is_rejected(record in record(), a in "[A-Za-z0-9._-]{1,16}", b in "[A-Za-z0-9._-]{1,16}") {
        prop_assume!(a != b);
        let keys = [secret(1)];
        let value = codec(&a, &keys).encode(&record).unwrap();
        let header = format!("{b}={value}");
        for v in candidates(&jar(&b).read([header.as_bytes()])) {
            prop_assert_eq!(codec(&b, &keys).decode(v, MaxAge::Session), None);
        }
    }

    /// Made under `[k1]`: opens under `[k2, k1]` as an older key; written again under that
    /// list it opens under `[k2]` alone as the newest, where the original no longer opens.
    #[test]
    fn rotation(record in record(), keys in distinct_keys(2..=2)) {
        let (k1, k2) = (Secret::new(keys[0].clone()), Secret::new(keys[1].clone()));
        let old = codec(NAME, std::slice::from_ref(&k1));
        let rotated = codec(NAME, &[k2.clone(), k1.clone()]);
        let new_only = codec(NAME, std::slice::from_ref(&k2));

        let value = old.encode(&record).unwrap();
        let opened = rotated.decode_with_key(&value, MaxAge::Session).unwrap();
        prop_assert_eq!(opened.key, KeyMatch::Older(1));
        prop_assert_eq!(&opened.record, &record);

        let again = rotated.encode(&opened.record).unwrap();
        let reopened = new_only.decode_with_key(&again, MaxAge::Session).unwrap();
        prop_assert_eq!(reopened.key, KeyMatch::Newest);
        prop_assert_eq!(&reopened.record, &record);
        prop_assert_eq!(rotated.decode_with_key(&again, MaxAge::Session).map(|d| d.key), Some(KeyMatch::Newest));

        prop_assert_eq!(new_only.decode_with_key(&value, MaxAge::Session), None);
    }

    /// Made under any key of a list of four: the whole list opens it and names that key's
    /// index; the list without that key does not.
    #[test]
    fn rotation_over_four_keys(record in record(), keys in distinct_keys(4..=4), pick in 0usize..4) {
        let keys = secrets(&keys);
        let value = codec(NAME, &keys[pick..]).encode(&record).unwrap();
        let opened = codec(NAME, &keys).decode_with_key(&value, MaxAge::Session).unwrap();
        let expected = if pick == 0 { KeyMatch::Newest } else { KeyMatch::Older(pick) };
        prop_assert_eq!(opened.key, expected);
        prop_assert_eq!(opened.record, record);
        let mut without = keys.clone();
        without.remove(pick);
        prop_assert_eq!(codec(NAME, &without).decode_with_key(&value, MaxAge::Session), None);
    }

    /// Neither the value nor the whole `Set-Cookie` line carries any of the session's strings,
    /// its key names or their base64.
    #[test]
    fn no_plaintext_in_the_cookie(
        strings in prop::collection::vec("[A-Za-z][A-Za-z0-9]{5,23}", 1..4),
        names in prop::collection::vec("[A-Za-z][A-Za-z0-9]{5,15}", 1..4),
        meta in meta(),
    ) {
        let mut data = Map::new();
        for (i, name) in names.iter().enumerate() {
            let s = strings[i % strings.len()].clone();
            let v = match i % 3 {
                0 => Value::String(s),
                1 => json!([1, s, {"k": true}]),
                _ => Value::Object(Map::from_iter([(s.clone(), Value::String(s))])),
            };
            data.insert(name.clone(), v);
        }
        let record = Record { data, meta };
        let config = Config::builder()
            .cookie_mode(CookieMode::Encrypted)
            .key(vec![0x5a; 32])
            .build()
            .unwrap();
        let codec = EncryptedCodec::from_config(&config).unwrap();
        let value = codec.encode(&record).unwrap();
        let set = SessionCookies::new(config.cookie().clone(), None)
            .write(&value, record.meta.expire, NOW, true)
            .unwrap();
        prop_assert!(set.sig.is_none());
        let needles = strings.iter().chain(&names).map(String::as_str)
            .chain(["_expire", "_maxAge", "_session", "_created"]);
        for needle in needles {
            assert_hidden(&value, needle, "value")?;
            assert_hidden(&set.value, needle, "Set-Cookie")?;
        }
        // And it still opens.
        prop_assert_eq!(codec.decode(&value, MaxAge::Session), Some(record));
    }

    /// The value's length is `encrypted_len` of the JSON's.
    #[test]
    fn length_is_encrypted_len(record in record()) {
        let value = codec(NAME, &[secret(3)]).encode(&record).unwrap();
        prop_assert_eq!(encrypted_len(record.to_koa_json().len()), value.len());
    }

    /// Arbitrary text never panics and opens to nothing, also behind the version prefix.
    #[test]
    fn garbage_opens_to_nothing(s in "(?s).{0,300}") {
        let codec = codec(NAME, &[secret(1), secret(2)]);
        prop_assert_eq!(codec.decode_with_key(&s, MaxAge::Session), None);
        prop_assert_eq!(codec.decode_with_key(&format!("{ENCRYPTED_PREFIX}{s}"), MaxAge::Session), None);
    }

    /// Well-formed base64url of random bytes (so decryption is really tried) opens to nothing.
    #[test]
    fn random_base64_opens_to_nothing(s in "[A-Za-z0-9_-]{0,400}", raw in prop::collection::vec(any::<u8>(), 0..300)) {
        let codec = codec(NAME, &[secret(1), secret(2)]);
        prop_assert_eq!(codec.decode_with_key(&format!("{ENCRYPTED_PREFIX}{s}"), MaxAge::Session), None);
        let forged = format!("{ENCRYPTED_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw));
        prop_assert_eq!(codec.decode_with_key(&forged, MaxAge::Session), None);
    }

    /// Arbitrary header bytes read as the middleware does never give a value that opens.
    #[test]
    fn garbage_headers_open_to_nothing(headers in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..4),
                                       prefix: bool) {
        let codec = codec(NAME, &[secret(1), secret(2)]);
        let headers: Vec<Vec<u8>> = headers.into_iter().map(|h| {
            if prefix { [format!("{NAME}=v1.").as_bytes(), &h].concat() } else { h }
        }).collect();
        let incoming = jar(NAME).read(headers.iter().map(Vec::as_slice));
        for v in candidates(&incoming) {
            prop_assert_eq!(codec.decode_with_key(v, MaxAge::Session), None);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Exhaustive tampering on a fixed value.

#[test]
fn every_single_byte_change_of_a_fixed_value_is_rejected() {
    let codec = codec(NAME, &[secret(1), secret(2)]);
    let jar = jar(NAME);
    let value = codec.encode(&fixed_record()).unwrap();
    assert_eq!(codec.decode(&value, MaxAge::Session), Some(fixed_record()));
    let mut tried = 0;
    for i in 0..value.len() {
        for byte in 0..=u8::MAX {
            if value.as_bytes()[i] == byte {
                continue;
            }
            let mut bytes = value.clone().into_bytes();
            bytes[i] = byte;
            assert_rejected(&codec, &jar, &value, &bytes);
            tried += 1;
        }
    }
    assert_eq!(tried, value.len() * 255);
}

#[test]
fn every_truncation_of_a_fixed_value_is_rejected() {
    let codec = codec(NAME, &[secret(1), secret(2)]);
    let jar = jar(NAME);
    let value = codec.encode(&fixed_record()).unwrap();
    for len in 0..value.len() {
        assert_rejected(&codec, &jar, &value, &value.as_bytes()[..len]);
    }
}

#[test]
fn every_extension_of_a_fixed_value_is_rejected() {
    let codec = codec(NAME, &[secret(1), secret(2)]);
    let jar = jar(NAME);
    let value = codec.encode(&fixed_record()).unwrap();
    // Every single byte, then every base64url character repeated up to 8 times (the tails most
    // likely to still parse), then padding.
    for byte in 0..=u8::MAX {
        let mut bytes = value.clone().into_bytes();
        bytes.push(byte);
        assert_rejected(&codec, &jar, &value, &bytes);
    }
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=";
    for &c in alphabet {
        for n in 2..=8 {
            let mut bytes = value.clone().into_bytes();
            bytes.extend(std::iter::repeat_n(c, n));
            assert_rejected(&codec, &jar, &value, &bytes);
        }
    }
}

#[test]
fn the_prefix_and_padding_are_exact() {
    let codec = codec(NAME, &[secret(1)]);
    let value = codec.encode(&fixed_record()).unwrap();
    let body = value.strip_prefix(ENCRYPTED_PREFIX).unwrap();
    for bad in [
        body.to_owned(),
        format!("v2.{body}"),
        format!("V1.{body}"),
        format!("v1{body}"),
        format!("v1..{body}"),
        format!(" {value}"),
        format!("{value} "),
        format!("\"{value}\""),
        format!("{value}="),
        format!("{value}=="),
        value.replace('-', "+").replace('_', "/"),
    ] {
        if bad != value {
            assert_eq!(codec.decode(&bad, MaxAge::Session), None, "{bad:?}");
        }
    }
}

#[test]
fn neighbouring_cookie_names_are_other_names() {
    let keys = [secret(1), secret(2)];
    let value = codec("sid", &keys).encode(&fixed_record()).unwrap();
    assert!(
        codec("sid", &keys)
            .decode(&value, MaxAge::Session)
            .is_some()
    );
    for other in [
        "", "si", "sid ", " sid", "sidx", "SID", "sid\0", "sid.sig", "koa.sess",
    ] {
        assert_eq!(
            codec(other, &keys).decode(&value, MaxAge::Session),
            None,
            "{other:?}"
        );
    }
}

#[test]
fn rotation_with_fixed_keys() {
    let (k1, k2, k3, k4) = (secret(1), secret(2), secret(3), secret(4));
    let record = fixed_record();
    let value = codec(NAME, std::slice::from_ref(&k1))
        .encode(&record)
        .unwrap();
    let rotated = codec(NAME, &[k2.clone(), k1.clone()]);
    assert_eq!(
        rotated.decode_with_key(&value, MaxAge::Session),
        Some(Decoded {
            record: record.clone(),
            key: KeyMatch::Older(1)
        })
    );
    let again = rotated.encode(&record).unwrap();
    assert_eq!(
        codec(NAME, std::slice::from_ref(&k2)).decode_with_key(&again, MaxAge::Session),
        Some(Decoded {
            record: record.clone(),
            key: KeyMatch::Newest
        })
    );
    assert_eq!(
        codec(NAME, std::slice::from_ref(&k2)).decode_with_key(&value, MaxAge::Session),
        None
    );

    // A list of four, the value made under the last (index 3).
    let four = [k4.clone(), k3.clone(), k2.clone(), k1.clone()];
    let opened = codec(NAME, &four)
        .decode_with_key(&value, MaxAge::Session)
        .unwrap();
    assert_eq!(opened.key, KeyMatch::Older(3));
    assert_eq!(opened.key.index(), 3);
    assert_eq!(opened.record, record);
    assert_eq!(
        codec(NAME, &[k4, k3, k2]).decode_with_key(&value, MaxAge::Session),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Sizes.

#[test]
fn encrypted_len_matches_every_small_length() {
    let codec = codec(NAME, &[secret(1)]);
    for len in 28..600 {
        let record = record_of_json_len(len);
        assert_eq!(
            codec.encode(&record).unwrap().len(),
            encrypted_len(len),
            "{len}"
        );
    }
    // Monotonic, and 4 characters per 3 bytes.
    for n in 0..5000 {
        assert!(encrypted_len(n + 1) > encrypted_len(n));
        assert_eq!(encrypted_len(n + 3), encrypted_len(n) + 4);
    }
}

#[test]
fn too_large_a_session_is_a_write_error() {
    for name in ["koa.sess", "s", &"n".repeat(1000)] {
        let config = Config::builder()
            .cookie_mode(CookieMode::Encrypted)
            .cookie_name(name)
            .key(vec![0x42; 32])
            .build()
            .unwrap();
        let codec = EncryptedCodec::from_config(&config).unwrap();
        let jar = SessionCookies::new(config.cookie().clone(), None);

        // The longest JSON that fits, then one byte more.
        let fits = (0..MAX_COOKIE_BYTES)
            .rev()
            .find(|&n| name.len() + encrypted_len(n) <= MAX_COOKIE_BYTES)
            .unwrap();
        let value = codec.encode(&record_of_json_len(fits)).unwrap();
        assert!(name.len() + value.len() <= MAX_COOKIE_BYTES);
        let set = jar.write(&value, None, NOW, true).unwrap();
        assert!(set.value.starts_with(&format!("{name}={value};")));
        // The jar reads it back and it opens.
        let header = format!("{name}={value}");
        assert_eq!(candidates(&jar.read([header.as_bytes()])), [value.as_str()]);

        let big = codec.encode(&record_of_json_len(fits + 1)).unwrap();
        assert!(name.len() + big.len() > MAX_COOKIE_BYTES);
        let err = jar.write(&big, None, NOW, true).unwrap_err();
        assert!(
            matches!(&err, CookieError::TooLarge { name: n, size, limit: MAX_COOKIE_BYTES }
                if n == name && *size == name.len() + big.len()),
            "{err:?}"
        );
        // An oversized value that arrives anyway is never even tried.
        let header = format!("{name}={big}");
        assert!(candidates(&jar.read([header.as_bytes()])).is_empty());
        // Far too large.
        let huge = codec.encode(&record_of_json_len(10_000)).unwrap();
        assert!(matches!(
            jar.write(&huge, None, NOW, true),
            Err(CookieError::TooLarge { .. })
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration.

#[test]
fn encrypted_mode_configuration() {
    let encrypted = || Config::builder().cookie_mode(CookieMode::Encrypted);

    let err = encrypted().unsigned().build().unwrap_err();
    assert!(matches!(err, ConfigError::Encryption(_)), "{err:?}");
    let err = encrypted()
        .key(vec![0x42; 32])
        .koa_compat(true)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Encryption(_)), "{err:?}");

    // A short key is refused even where signing takes it (legacy keys).
    let err = encrypted()
        .key(vec![0x42; 16])
        .legacy_keys(true)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::KeyTooShort {
                index: 0,
                len: 16,
                min: 32
            }
        ),
        "{err:?}"
    );
    let err = encrypted()
        .keys([vec![0x42; 32], vec![0x43; 16]])
        .legacy_keys(true)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::KeyTooShort { index: 1, .. }),
        "{err:?}"
    );
    assert!(
        Config::builder()
            .key(vec![0x42; 16])
            .legacy_keys(true)
            .build()
            .is_ok(),
        "signing takes a legacy key"
    );
    let err = encrypted().build().unwrap_err();
    assert!(matches!(err, ConfigError::NoKeys), "{err:?}");

    let config = encrypted().key(vec![0x42; 32]).build().unwrap();
    assert_eq!(config.cookie_mode(), CookieMode::Encrypted);
    assert!(config.signed());
    let from_config = EncryptedCodec::from_config(&config).unwrap();
    let value = from_config.encode(&fixed_record()).unwrap();
    assert_eq!(
        from_config.decode_with_key(&value, MaxAge::Session),
        Some(Decoded {
            record: fixed_record(),
            key: KeyMatch::Newest
        })
    );
    // The configuration's key is the codec's key.
    assert!(
        codec(NAME, &[Secret::new(vec![0x42; 32])])
            .decode(&value, MaxAge::Session)
            .is_some()
    );
    assert!(
        codec(NAME, &[Secret::new(vec![0x43; 32])])
            .decode(&value, MaxAge::Session)
            .is_none()
    );
    assert_eq!(
        Config::builder()
            .key(vec![0x42; 32])
            .build()
            .unwrap()
            .cookie_mode(),
        CookieMode::Signed
    );
}

#[test]
fn garbage_fixed_cases() {
    let codec = codec(NAME, &[secret(1), secret(2)]);
    let zeros = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0u8; 40]);
    for v in [
        "",
        "v1.",
        "v1.A",
        "v1.AA",
        "v1.AAA",
        "v1.====",
        "v1.\u{0}",
        "v1.é",
        "v1.😀😀😀😀",
        &format!("v1.{zeros}"),
        &format!("v1.{}", "A".repeat(53)),
        &format!("v1.{}", "A".repeat(54)),
        &format!("v1.{}", "_".repeat(10_000)),
        "eyJhIjoxfQ",
        "e30",
    ] {
        assert_eq!(codec.decode_with_key(v, MaxAge::Session), None, "{v:?}");
    }
}

/// The plaintext check finds what it looks for: koa's readable codec fails it at every
/// alignment, in both base64 alphabets.
#[test]
fn the_plaintext_check_catches_a_readable_codec() {
    use session_cookie::KoaCodec;
    for pad in ["", "a", "ab", "abc"] {
        for needle in ["Secret7", "zzTopSecretzz", "Q1w2e3r4t5"] {
            let mut data = Map::new();
            data.insert("k".into(), Value::String(format!("{pad}{needle}")));
            let record = Record {
                data,
                meta: fixed_record().meta,
            };
            let koa = KoaCodec.encode(&record).unwrap();
            assert!(assert_hidden(&koa, needle, "koa").is_err(), "{pad}{needle}");
            let url_safe = koa.replace('+', "-").replace('/', "_");
            assert!(
                assert_hidden(&url_safe, needle, "koa").is_err(),
                "{pad}{needle}"
            );
        }
    }
    assert!(assert_hidden("{\"user\":1}", "user", "json").is_err());
}
