//! Properties over random records: round trips, tampering, the cookie name binding, key
//! rotation, confidentiality, lengths and garbage.

use super::*;

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
