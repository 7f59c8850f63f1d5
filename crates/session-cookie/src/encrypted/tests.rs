//! Known-answer vectors: `tests/data/encrypted-vectors.json` was made by
//! `tests/data/encrypted_vectors.py`, an implementation of the format in Python over the
//! `cryptography` package (with its own HChaCha20, checked against the XChaCha draft's vectors),
//! so these tests compare two independent implementations of the same bytes.

use super::*;
use serde_json::Value;

const VECTORS: &str = include_str!("../../tests/data/encrypted-vectors.json");

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn keys(v: &Value) -> Vec<Secret> {
    v["keys_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| Secret::new(hex(k.as_str().unwrap())))
        .collect()
}

#[test]
fn the_format_constants_are_the_vectors() {
    let v = vectors();
    assert_eq!(v["format"], "v1");
    assert_eq!(ENCRYPTED_PREFIX, "v1.");
    assert_eq!(v["hkdf_info"].as_str().unwrap().as_bytes(), HKDF_INFO);
    assert_eq!(hex(v["aad_prefix_hex"].as_str().unwrap()), AAD_PREFIX);
}

#[test]
fn subkeys_match_hkdf_of_the_vectors() {
    let v = vectors();
    let subkeys = v["subkeys"].as_array().unwrap();
    assert!(subkeys.len() >= 3);
    for s in subkeys {
        let secret = hex(s["secret_hex"].as_str().unwrap());
        assert_eq!(
            subkey(&secret).to_vec(),
            hex(s["subkey_hex"].as_str().unwrap())
        );
    }
}

#[test]
fn vectors_seal_to_the_same_bytes_and_open() {
    let v = vectors();
    let list = v["vectors"].as_array().unwrap();
    assert!(list.len() >= 7);
    for case in list {
        let name = case["name"].as_str().unwrap();
        let keys = keys(case);
        let sealed_with = usize::try_from(case["sealed_with"].as_u64().unwrap()).unwrap();
        let cookie = case["cookie_name"].as_str().unwrap();
        let nonce: [u8; NONCE_LEN] = hex(case["nonce_hex"].as_str().unwrap()).try_into().unwrap();
        let plaintext = case["plaintext"].as_str().unwrap().as_bytes();
        let value = case["value"].as_str().unwrap();

        // Sealing: the key that made it, as the newest of its list then.
        let sealer = EncryptedCodec::new(cookie, &keys[sealed_with..]).unwrap();
        assert_eq!(sealer.seal(plaintext, &nonce).unwrap(), value, "{name}");
        assert_eq!(encrypted_len(plaintext.len()), value.len(), "{name}");

        // Our encoder writes exactly the vector's plaintext for its record.
        let record = Record::from_koa_json(plaintext, MaxAge::Session).unwrap();
        assert_eq!(record.to_koa_json(), plaintext, "{name}");

        // Opening under the whole list, with the key it names.
        let codec = EncryptedCodec::new(cookie, &keys).unwrap();
        let opened = codec.decode_with_key(value, MaxAge::Session).unwrap();
        assert_eq!(opened.record, record, "{name}");
        assert_eq!(opened.key.index(), sealed_with, "{name}");
        assert_eq!(opened.key == KeyMatch::Newest, sealed_with == 0, "{name}");
    }
}

#[test]
fn rejects_open_to_nothing() {
    let v = vectors();
    let list = v["rejects"].as_array().unwrap();
    assert!(list.len() >= 6);
    for case in list {
        let codec =
            EncryptedCodec::new(case["cookie_name"].as_str().unwrap(), &keys(case)).unwrap();
        let value = case["value"].as_str().unwrap();
        assert!(
            codec.open(value).is_none(),
            "{} opened: {}",
            case["name"],
            case["why"]
        );
    }
}

#[test]
fn debug_shows_no_key() {
    let codec = EncryptedCodec::new("sid", &[Secret::new(vec![7u8; 32])]).unwrap();
    // Exactly this: a field added later must be redacted on purpose.
    assert_eq!(
        format!("{codec:?}"),
        r#"EncryptedCodec { keys: <1 redacted>, aad: "session-cookie v1\0sid" }"#
    );
}

#[test]
fn weak_keys_are_refused_even_where_signing_would_take_them() {
    assert!(matches!(
        EncryptedCodec::new("sid", &[Secret::new(b"short".to_vec())]),
        Err(ConfigError::KeyTooShort { .. })
    ));
    assert!(matches!(
        EncryptedCodec::new("sid", &[]),
        Err(ConfigError::NoKeys)
    ));
    let unsigned = Config::builder().unsigned().build().unwrap();
    assert!(EncryptedCodec::from_config(&unsigned).is_err());
}

#[test]
fn nonces_differ_per_write() {
    let codec = EncryptedCodec::new("sid", &[Secret::new(vec![9u8; 32])]).unwrap();
    let record = Record::from_koa_json(br#"{"a":1,"_session":true}"#, MaxAge::Session).unwrap();
    let values: std::collections::HashSet<String> =
        (0..1000).map(|_| codec.encode(&record).unwrap()).collect();
    assert_eq!(values.len(), 1000);
}
