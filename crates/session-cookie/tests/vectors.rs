//! Every vector of `tests/data/koa-vectors.json` (cookies, signatures and payloads as a real
//! koa-session app produces them), as a test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use serde_json::Value;
use session_cookie::{Codec, Incoming, Keygrip, KoaCodec, SessionCookies, node_base64_decode};
use session_core::driver::Secret;
use session_core::store::Record;
use session_core::{Algorithm, Config, MaxAge, SecurePolicy};

fn vectors() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/koa-vectors.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn grip(v: &Value) -> Keygrip {
    let keys: Vec<Secret> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| Secret::new(k.as_str().unwrap().as_bytes()))
        .collect();
    let alg = match v["algorithm"].as_str().unwrap() {
        "sha1" => Algorithm::Sha1,
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        other => panic!("unknown algorithm {other}"),
    };
    Keygrip::new_legacy(&keys, alg).unwrap()
}

#[test]
fn sign_vectors() {
    let v = vectors();
    let cases = v["sign"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let g = grip(case);
        let data = case["data"].as_str().unwrap().as_bytes();
        let sig0 = case["signature_key0"].as_str().unwrap();
        assert_eq!(g.sign(data).as_str(), sig0, "{case}");
        assert_eq!(g.verify(data, sig0).map(|m| m.index()), Some(0));
        if let Some(sig1) = case["signature_key1"].as_str() {
            // Signed by the older key: verifies at index 1 (re-sign needed).
            assert_eq!(g.verify(data, sig1).map(|m| m.index()), Some(1), "{case}");
        }
    }
}

#[test]
fn verify_rejects_vectors() {
    for case in vectors()["verify_rejects"].as_array().unwrap() {
        let g = grip(case);
        let data = case["data"].as_str().unwrap().as_bytes();
        assert_eq!(
            g.verify(data, case["signature"].as_str().unwrap()),
            None,
            "{case}"
        );
    }
}

#[test]
fn codec_vectors() {
    for case in vectors()["codec"].as_array().unwrap() {
        let json = case["json"].as_str().unwrap();
        let value = case["value"].as_str().unwrap();
        let record = Record::from_koa_json(json.as_bytes(), MaxAge::Ms(1)).unwrap();
        assert_eq!(KoaCodec.encode(&record).unwrap(), value, "{case}");
        assert_eq!(KoaCodec.decode(value, MaxAge::Ms(1)).unwrap(), record);
        assert_eq!(String::from_utf8(record.to_koa_json()).unwrap(), json);
    }
}

#[test]
fn lenient_decode_vectors() {
    for case in vectors()["lenient_decode"].as_array().unwrap() {
        let value = case["value"].as_str().unwrap();
        let json = case["json"].as_str().unwrap();
        assert_eq!(
            node_base64_decode(value.as_bytes()),
            json.as_bytes(),
            "{case}"
        );
        assert!(KoaCodec.decode(value, MaxAge::Session).is_some());
    }
}

/// Splits a Set-Cookie header into its name=value and a sorted list of lowercased attributes
/// (order and case of attributes carry no meaning).
fn normalise(header: &str) -> (String, Vec<String>) {
    let mut parts = header.split(';').map(str::trim);
    let pair = parts.next().unwrap().to_owned();
    let mut attrs: Vec<String> = parts.map(str::to_ascii_lowercase).collect();
    attrs.sort();
    (pair, attrs)
}

#[test]
fn set_cookie_samples() {
    let v = vectors();
    let samples = v["set_cookie_samples"].as_array().unwrap();
    // Sample 1: keys [k1,k2] sha1, maxAge one day, views=1, at Date.now() = 1700000000000.
    let config = Config::builder()
        .keys(["k1", "k2"])
        .koa_compat(true)
        .secure(SecurePolicy::Never)
        .build()
        .unwrap();
    let jar = SessionCookies::from_config(&config).unwrap();
    let record = Record::from_koa_json(
        br#"{"views":1,"_expire":1700086400000,"_maxAge":86400000}"#,
        MaxAge::Ms(1),
    )
    .unwrap();
    let value = KoaCodec.encode(&record).unwrap();
    let set = jar
        .write(&value, record.meta.expire, 1_700_000_000_000, false)
        .unwrap();
    let expected: Vec<&str> = samples[0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = set.iter().collect();
    for (o, e) in ours.iter().zip(&expected) {
        let (op, mut oa) = normalise(o);
        let (ep, ea) = normalise(e);
        assert_eq!(op, ep, "same name=value bytes as koa");
        // We add Max-Age (koa sends Expires only); everything koa sends, we send.
        oa.retain(|a| !a.starts_with("max-age="));
        assert_eq!(oa, ea, "same attributes as koa for {o}");
    }
    assert!(ours[0].contains("Max-Age=86400"));

    // Sample 2: destroy. Same name, empty value, the epoch; we add Max-Age=0 and SameSite
    // (the attributes the session was written with), and send an empty signature value.
    let one = Config::builder()
        .key("k1")
        .koa_compat(true)
        .secure(SecurePolicy::Never)
        .build()
        .unwrap();
    let jar = SessionCookies::from_config(&one).unwrap();
    let removal = jar.removal(false);
    let expected = samples[1]["headers"].as_array().unwrap();
    for (o, e) in removal.iter().zip(expected) {
        let (op, oa) = normalise(o);
        let (ep, ea) = normalise(e.as_str().unwrap());
        assert_eq!(op.split('=').next(), ep.split('=').next());
        assert!(
            op.ends_with('='),
            "removal cookies carry an empty value: {op}"
        );
        for a in &ea {
            assert!(
                oa.contains(a),
                "koa's removal attribute {a} missing from {o}"
            );
        }
        assert!(oa.contains(&"max-age=0".to_owned()));
    }

    // And a koa cookie pair is read back by us, with rotation detected.
    let header = format!(
        "koa.sess={}; koa.sess.sig={}",
        v["sign"][0]["data"]
            .as_str()
            .unwrap()
            .trim_start_matches("koa.sess="),
        v["sign"][0]["signature_key1"].as_str().unwrap()
    );
    let two = SessionCookies::from_config(&config).unwrap();
    assert!(matches!(
        two.read([header.as_bytes()]),
        Incoming::Valid { resign: true, .. }
    ));
}
