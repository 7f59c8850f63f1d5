//! Sizes: the encrypted length of every small length, and a session too large for a cookie.

use super::*;

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
