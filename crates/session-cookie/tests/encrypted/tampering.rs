//! Exhaustive tampering on a fixed value, the exact prefix and padding, neighbouring cookie
//! names, rotation with fixed keys.

use super::*;

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
