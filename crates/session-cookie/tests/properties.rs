//! Property tests: signing, rotation, tampering, the codec and cookie round trips.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cookie::Cookie;
use proptest::prelude::*;
use session_cookie::{Codec, Incoming, Keygrip, KoaCodec, SessionCookies};
use session_core::store::{Meta, Record};
use session_core::{Algorithm, Config, CookieOptions, MaxAge, SameSite, SecurePolicy};

mod support;

use support::*;

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Sha1),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha512)
    ]
}

fn jar(name: &str, keys: &[Vec<u8>], alg: Algorithm) -> SessionCookies {
    let options = CookieOptions {
        name: name.to_owned(),
        ..CookieOptions::default()
    };
    SessionCookies::new(options, Some(Keygrip::new(&secrets(keys), alg).unwrap()))
}

fn cookie_header(set: &session_cookie::SetCookies) -> String {
    set.iter()
        .map(|h| h.split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn sign_then_verify(keys in distinct_keys(1..=4), alg in algorithm(), data in prop::collection::vec(any::<u8>(), 0..300)) {
        let g = Keygrip::new(&secrets(&keys), alg).unwrap();
        let sig = g.sign(&data);
        prop_assert_eq!(sig.as_str().len(), g.signature_len());
        prop_assert_eq!(g.verify(&data, sig.as_str()).map(|m| m.index()), Some(0));
    }

    /// Signed with any key of the list, it verifies and names that key; without that key in
    /// the list it fails.
    #[test]
    fn rotation(keys in distinct_keys(1..=4), alg in algorithm(), pick in any::<prop::sample::Index>(), data in ".{0,100}") {
        let i = pick.index(keys.len());
        let signer = Keygrip::new(&secrets(&keys[i..=i]), alg).unwrap();
        let sig = signer.sign(data.as_bytes());
        let all = Keygrip::new(&secrets(&keys), alg).unwrap();
        prop_assert_eq!(all.verify(data.as_bytes(), sig.as_str()).map(|m| m.index()), Some(i));
        let mut without = keys.clone();
        without.remove(i);
        if !without.is_empty() {
            let rest = Keygrip::new(&secrets(&without), alg).unwrap();
            prop_assert_eq!(rest.verify(data.as_bytes(), sig.as_str()), None);
        }
    }

    /// Any single-byte change, truncation or extension of the value or the signature fails.
    #[test]
    fn tampering_fails(keys in distinct_keys(1..=4), alg in algorithm(), value in "[A-Za-z0-9+/=]{1,120}",
                       pos in any::<prop::sample::Index>(), byte in any::<u8>(), which in 0u8..6) {
        let jar = jar("sess", &keys, alg);
        let set = jar.write(&value, Some(2_000_000_000_000), 1_700_000_000_000, true).unwrap();
        let sig_pair = set.sig.as_deref().unwrap().split(';').next().unwrap();
        let sig = sig_pair.trim_start_matches("sess.sig=").to_owned();
        let (mut v, mut s) = (value.clone().into_bytes(), sig.clone().into_bytes());
        match which {
            0 => { let i = pos.index(v.len()); if v[i] == byte { return Ok(()); } v[i] = byte; }
            1 => { v.truncate(pos.index(v.len())); }
            2 => { v.push(byte); }
            3 => { let i = pos.index(s.len()); if s[i] == byte { return Ok(()); } s[i] = byte; }
            4 => { s.truncate(pos.index(s.len())); }
            _ => { s.push(byte); }
        }
        let mut header = b"sess=".to_vec();
        header.extend_from_slice(&v);
        header.extend_from_slice(b"; sess.sig=");
        header.extend_from_slice(&s);
        // A change the cookie grammar erases (trailing whitespace, a `;` that starts an empty
        // pair) leaves the same cookie: not tampering.
        let parsed: Vec<(Vec<u8>, Vec<u8>)> = session_cookie::parse::pairs(&header)
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        let same = parsed.contains(&(b"sess".to_vec(), value.clone().into_bytes()))
            && parsed.contains(&(b"sess.sig".to_vec(), sig.clone().into_bytes()));
        if !same {
            let got = jar.read([header.as_slice()]);
            prop_assert!(!matches!(got, Incoming::Valid { .. }), "tampered cookie verified: {:?}", got);
        }
    }

    /// A value+signature copied from one cookie name to another is rejected (name is bound).
    #[test]
    fn signature_bound_to_name(keys in distinct_keys(1..=4), value in "[A-Za-z0-9]{1,40}") {
        let a = jar("a", &keys, Algorithm::Sha256);
        let b = jar("b", &keys, Algorithm::Sha256);
        let set = a.write(&value, None, 0, true).unwrap();
        let moved = cookie_header(&set).replace("a=", "b=").replace("a.sig=", "b.sig=");
        prop_assert_eq!(b.read([moved.as_bytes()]), Incoming::Invalid);
    }

    /// write → browser → read gives back the value, also among other cookies and duplicates.
    #[test]
    fn write_then_read(keys in distinct_keys(1..=4), alg in algorithm(), value in "[!#-+\\--:<-\\[\\]-~]{0,200}",
                       forged in "[A-Za-z0-9]{1,20}", forged_first: bool) {
        let jar = jar("id", &keys, alg);
        let set = jar.write(&value, Some(1_800_000_000_000), 1_700_000_000_000, true).unwrap();
        let good = cookie_header(&set);
        let bad = format!("id={forged}; id.sig=AAAA");
        let header = if forged_first { format!("x=1; {bad}; {good}") } else { format!("{good}; {bad}; x=1") };
        let got = jar.read([header.as_bytes()]);
        let Incoming::Valid { value: got_value, resign: false, signature: Some(sig) } = got else {
            return Err(TestCaseError::fail(format!("not valid: {got:?}")));
        };
        prop_assert_eq!(got_value, value.as_str());
        // The verified signature is reusable: writing the same value again sends the same pair.
        let again = jar.write_reusing(&value, Some(1_800_000_000_000), 1_700_000_000_000, true, Some((got_value, &sig))).unwrap();
        prop_assert_eq!(&again, &set);
        // ...and is never reused for a different value.
        let other = format!("{value}x");
        let fresh = jar.write(&other, Some(1_800_000_000_000), 1_700_000_000_000, true).unwrap();
        let reused = jar.write_reusing(&other, Some(1_800_000_000_000), 1_700_000_000_000, true, Some((got_value, &sig))).unwrap();
        prop_assert_eq!(fresh, reused);
    }

    /// parse(serialize(cookie)) keeps name, value and every attribute; any value either errors
    /// or yields a header without CR/LF that parses back to exactly (name, value).
    #[test]
    fn set_cookie_round_trip(value in ".{0,64}", secure: bool, http_only: bool,
                             same_site in prop_oneof![Just(SameSite::Lax), Just(SameSite::Strict), Just(SameSite::None)],
                             expire_s in proptest::option::of(0u64..4_000_000_000), now_s in 0u64..4_000_000_000,
                             domain in proptest::option::of("[a-z]{1,10}\\.example")) {
        let mut b = Config::builder().key(vec![1u8; 32]).http_only(http_only).same_site(same_site).path("/app");
        if let Some(d) = &domain { b = b.domain(d.clone()); }
        let config = b.secure(SecurePolicy::Auto).build().unwrap();
        let jar = SessionCookies::from_config(&config).unwrap();
        let secure = config.cookie().secure_for(secure);
        match jar.write(&value, expire_s.map(|s| s * 1000), now_s * 1000, secure) {
            Err(_) => prop_assert!(value.bytes().any(|b| !matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))),
            Ok(set) => {
                for h in set.iter() {
                    prop_assert!(!h.contains('\r') && !h.contains('\n'));
                }
                let c = Cookie::parse(set.value.clone()).unwrap();
                prop_assert_eq!(c.name(), "koa.sess");
                prop_assert_eq!(c.value(), value.as_str());
                prop_assert_eq!(c.path(), Some("/app"));
                prop_assert_eq!(c.domain(), domain.as_deref());
                prop_assert_eq!(c.http_only().unwrap_or(false), http_only);
                prop_assert_eq!(c.secure().unwrap_or(false), secure);
                let ss = c.same_site().map(|s| s.to_string());
                let expected_ss = match same_site { SameSite::Lax => "Lax", SameSite::Strict => "Strict", SameSite::None => "None" };
                prop_assert_eq!(ss.as_deref(), Some(expected_ss));
                match expire_s {
                    None => { prop_assert!(c.max_age().is_none()); prop_assert!(c.expires().is_none()); }
                    Some(e) => {
                        // Both end at the 400-day cap at the latest, so they agree.
                        let end = e.min(now_s.saturating_add(34_560_000));
                        let max_age = c.max_age().unwrap().whole_seconds() as u64;
                        prop_assert_eq!(max_age, end.saturating_sub(now_s));
                        prop_assert_eq!(
                            c.expires_datetime().unwrap().unix_timestamp() as u64,
                            end.min(253_402_300_799)
                        );
                    }
                }
            }
        }
    }

    /// The koa codec round-trips arbitrary JSON objects.
    #[test]
    fn codec_round_trip(data in user_data(), expire in proptest::option::of(0u64..u64::MAX / 2), max_age in 1u64..u64::MAX / 2) {
        let meta = match expire {
            Some(e) => Meta { expire: Some(e), max_age: MaxAge::Ms(max_age), created: None },
            None => Meta { expire: None, max_age: MaxAge::Session, created: None },
        };
        let record = Record { data, meta };
        let value = KoaCodec.encode(&record).unwrap();
        prop_assert_eq!(KoaCodec.decode(&value, MaxAge::Ms(1)), Some(record));
    }

    /// Decoding arbitrary text never panics.
    #[test]
    fn codec_decode_never_panics(value in ".{0,200}") {
        let _ = KoaCodec.decode(&value, MaxAge::Session);
    }

    /// Reading arbitrary header bytes never panics and only yields cookie-octet values.
    #[test]
    fn read_never_panics(headers in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..4)) {
        let jar = jar("koa.sess", &[vec![7u8; 32]], Algorithm::Sha256);
        if let Incoming::Valid { value, .. } = jar.read(headers.iter().map(Vec::as_slice)) {
            prop_assert!(false, "random bytes verified: {value:?}");
        }
    }
}

#[test]
fn oversized_cookie_is_an_error_at_4097() {
    let jar = jar("n", &[vec![1u8; 32]], Algorithm::Sha256);
    assert!(jar.write(&"a".repeat(4095), None, 0, true).is_ok());
    let err = jar.write(&"a".repeat(4096), None, 0, true).unwrap_err();
    assert!(matches!(
        err,
        session_cookie::CookieError::TooLarge { size: 4097, .. }
    ));
    // Oversized incoming values are not even HMAC'd: they are invalid.
    let header = format!("n={}; n.sig=AAAA", "a".repeat(5000));
    assert_eq!(jar.read([header.as_bytes()]), Incoming::Invalid);
}

#[test]
fn missing_or_empty_signature_is_ignored() {
    let jar = jar("n", &[vec![1u8; 32]], Algorithm::Sha256);
    assert_eq!(jar.read([&b"n=abc"[..]]), Incoming::MissingSignature);
    assert_eq!(
        jar.read([&b"n=abc; n.sig="[..]]),
        Incoming::MissingSignature
    );
    assert_eq!(jar.read([&b"other=1"[..]]), Incoming::None);
    assert_eq!(jar.read(std::iter::empty::<&[u8]>()), Incoming::None);
}

#[test]
fn several_cookie_headers_are_joined() {
    let jar = jar("id", &[vec![1u8; 32]], Algorithm::Sha256);
    let set = jar.write("v", None, 0, true).unwrap();
    let mut it = set.iter().map(|h| h.split(';').next().unwrap().to_owned());
    let (a, b) = (it.next().unwrap(), it.next().unwrap());
    let headers = ["x=1".to_owned(), a, "y=2".to_owned(), b];
    assert!(matches!(
        jar.read(headers.iter().map(|h| h.as_bytes())),
        Incoming::Valid { value: "v", .. }
    ));
}

#[test]
fn removal_repeats_attributes() {
    let config = Config::builder()
        .key(vec![1u8; 32])
        .cookie_name("__Host-id")
        .same_site(SameSite::Strict)
        .build()
        .unwrap();
    let jar = SessionCookies::from_config(&config).unwrap();
    let removal = jar.removal(config.cookie().secure_for(false));
    let c = Cookie::parse(removal.value.clone()).unwrap();
    assert_eq!(c.value(), "");
    assert_eq!(c.path(), Some("/"));
    assert_eq!(c.secure(), Some(true));
    assert_eq!(c.http_only(), Some(true));
    assert_eq!(c.same_site(), Some(cookie::SameSite::Strict));
    assert_eq!(c.max_age().unwrap().whole_seconds(), 0);
    assert!(
        removal
            .value
            .contains("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    );
    assert!(removal.sig.unwrap().starts_with("__Host-id.sig=;"));
}

#[test]
fn unsigned_mode_reads_plain_values() {
    let config = Config::builder().unsigned().build().unwrap();
    let jar = SessionCookies::from_config(&config).unwrap();
    let set = jar.write("abc", None, 0, false).unwrap();
    assert!(set.sig.is_none());
    assert_eq!(
        jar.read([&b"koa.sess=abc"[..]]),
        Incoming::Valid {
            value: "abc",
            resign: false,
            signature: None,
        }
    );
}

#[test]
fn partitioned_and_priority_attributes() {
    let config = Config::builder()
        .key(vec![1u8; 32])
        .partitioned(true)
        .priority(session_core::Priority::High)
        .build()
        .unwrap();
    let jar = SessionCookies::from_config(&config).unwrap();
    let set = jar.write("v", Some(1_000), 0, false).unwrap();
    for h in set.iter() {
        let c = Cookie::parse(h.to_owned()).unwrap();
        assert_eq!(c.partitioned(), Some(true));
        assert_eq!(c.secure(), Some(true), "Partitioned implies Secure");
        assert!(h.ends_with("; Priority=High"), "{h}");
        assert_eq!(c.max_age().unwrap().whole_seconds(), 1);
    }
}

#[test]
fn oversized_signature_cookie_is_an_error_too() {
    let name = "n".repeat(4060);
    let jar = jar(&name, &[vec![1u8; 32]], Algorithm::Sha256);
    // name + value fits (4061), name.sig + signature does not (4107).
    let err = jar.write("a", None, 0, true).unwrap_err();
    assert!(
        matches!(
            err,
            session_cookie::CookieError::TooLarge { size: 4107, .. }
        ),
        "{err:?}"
    );
}
