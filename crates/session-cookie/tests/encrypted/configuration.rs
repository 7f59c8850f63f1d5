//! Configuration of the encrypted mode, fixed garbage, and the plaintext check itself.

use super::*;

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
