//! Sign + verify of a typical session cookie against the bare HMAC work it can't avoid, the
//! cookie-mode codec, and the encrypted codec beside the signed one for the same session. Run:
//! `cargo bench -p session-cookie --bench signing`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use session_cookie::{Codec, EncryptedCodec, Incoming, Keygrip, KoaCodec, SessionCookies};
use session_core::driver::Secret;
use session_core::store::{Meta, Record};
use session_core::{Algorithm, Config, MaxAge};

const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const NAME: &[u8] = b"koa.sess";
// A ~100-byte cookie: a cookie-mode payload with a few keys.
const VALUE: &[u8] =
    b"eyJ2aWV3cyI6MSwidXNlciI6NDIsIl9leHBpcmUiOjE3MDAwODY0MDAwMDAsIl9tYXhBZ2UiOjg2NDAwMDAwfQ==";

fn sign_verify(c: &mut Criterion) {
    let mut data = NAME.to_vec();
    data.push(b'=');
    data.extend_from_slice(VALUE);
    let grip = Keygrip::new(&[Secret::new(KEY.to_vec())], Algorithm::Sha256).unwrap();
    // As `SessionCookies` uses it: `NAME=` absorbed once.
    let named = grip.with_prefix(b"koa.sess=");
    let mut g = c.benchmark_group("sign_verify_sha256_100B");
    g.bench_function("ours_sign_plus_verify", |b| {
        b.iter(|| {
            let sig = named.sign(black_box(VALUE));
            named.verify(black_box(VALUE), sig.as_str()).unwrap()
        })
    });
    g.bench_function("ours_sign_plus_verify_unprefixed", |b| {
        b.iter(|| {
            let sig = grip.sign_parts(&[black_box(NAME), b"=", black_box(VALUE)]);
            grip.verify_parts(&[NAME, b"=", VALUE], sig.as_str())
                .unwrap()
        })
    });
    // The unavoidable work: two HMACs (one to sign, one to verify), with the key's pads
    // already computed, as ours are.
    let pre = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(KEY).unwrap();
    g.bench_function("bare_two_hmacs_precomputed_key", |b| {
        b.iter(|| {
            let mut m = pre.clone();
            m.update(black_box(&data));
            let a = m.finalize().into_bytes();
            let mut m = pre.clone();
            m.update(black_box(&data));
            let b2 = m.finalize().into_bytes();
            (a, b2)
        })
    });
    // What a straightforward implementation does: key setup on every HMAC.
    g.bench_function("bare_two_hmacs_keyed_each_time", |b| {
        b.iter(|| {
            let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(KEY).unwrap();
            m.update(black_box(&data));
            let a = m.finalize().into_bytes();
            let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(KEY).unwrap();
            m.update(black_box(&data));
            let b2 = m.finalize().into_bytes();
            (a, b2)
        })
    });
    g.finish();

    // Breakdown, to see where any overhead over the bare HMACs goes.
    let mut g = c.benchmark_group("breakdown_sha256_100B");
    let sig = named.sign(VALUE);
    g.bench_function("ours_sign", |b| b.iter(|| named.sign(black_box(VALUE))));
    g.bench_function("ours_verify", |b| {
        b.iter(|| named.verify(black_box(VALUE), black_box(sig.as_str())))
    });
    g.bench_function("bare_one_hmac_joined", |b| {
        b.iter(|| {
            let mut m = pre.clone();
            m.update(black_box(&data));
            m.finalize().into_bytes()
        })
    });
    g.bench_function("bare_one_hmac_three_updates", |b| {
        b.iter(|| {
            let mut m = pre.clone();
            m.update(black_box(NAME));
            m.update(b"=");
            m.update(black_box(VALUE));
            m.finalize().into_bytes()
        })
    });
    g.finish();

    // Worst case per invalid cookie: one HMAC per key (4 keys, the maximum).
    let keys: Vec<Secret> = (1..=4u8).map(|i| Secret::new(vec![i; 32])).collect();
    let four = Keygrip::new(&keys, Algorithm::Sha256).unwrap();
    let bad = "A".repeat(43);
    c.bench_function("verify_invalid_signature_4_keys", |b| {
        b.iter(|| four.verify_parts(&[NAME, b"=", VALUE], black_box(&bad)))
    });
}

fn cookies(c: &mut Criterion) {
    let config = Config::builder().key(KEY.to_vec()).build().unwrap();
    let jar = SessionCookies::from_config(&config).unwrap();
    let value = std::str::from_utf8(VALUE).unwrap();
    let set = jar
        .write(value, Some(1_700_086_400_000), 1_700_000_000_000, true)
        .unwrap();
    let sig = set
        .sig
        .as_deref()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let header = format!("other=1; koa.sess={value}; {sig}; theme=dark");
    c.bench_function("read_cookie_header", |b| {
        b.iter(|| jar.read([black_box(header.as_bytes())]))
    });
    c.bench_function("write_set_cookie_pair", |b| {
        b.iter(|| {
            jar.write(
                black_box(value),
                Some(1_700_086_400_000),
                1_700_000_000_000,
                true,
            )
        })
    });
}

/// A session with a one-day max-age and no data yet.
fn empty_record() -> Record {
    Record {
        data: Default::default(),
        meta: Meta {
            expire: Some(1_700_086_400_000),
            max_age: MaxAge::Ms(86_400_000),
            created: None,
        },
    }
}

fn codec(c: &mut Criterion) {
    let mut record = empty_record();
    for i in 0..10 {
        record.data.insert(
            format!("key{i}"),
            serde_json::json!(format!("value number {i}")),
        );
    }
    c.bench_function("koa_codec_encode_decode_10_keys", |b| {
        b.iter(|| {
            let v = KoaCodec.encode(black_box(&record)).unwrap();
            KoaCodec.decode(&v, MaxAge::Session).unwrap()
        })
    });
}

/// A typical cookie-mode session both ways, from the record to the `Set-Cookie` value and from
/// the request's `Cookie` header back to the record: signed (koa's base64 JSON, HMAC-SHA-256 in
/// a `.sig` cookie) and encrypted (XChaCha20-Poly1305, one cookie).
fn signed_vs_encrypted(c: &mut Criterion) {
    let mut record = empty_record();
    record.data.insert("user".into(), serde_json::json!("ada"));
    record.data.insert("views".into(), serde_json::json!(42));
    record
        .data
        .insert("csrf".into(), serde_json::json!("kq3JX0ZpW8oT1yC5nLm2"));
    record
        .data
        .insert("cart".into(), serde_json::json!([101, 202, 303]));
    let config = Config::builder().key(KEY.to_vec()).build().unwrap();
    let signed_jar = SessionCookies::from_config(&config).unwrap();
    let plain_jar = SessionCookies::new(config.cookie().clone(), None);
    let enc = EncryptedCodec::from_config(&config).unwrap();
    let mut g = c.benchmark_group("cookie_mode_typical_session");
    g.bench_function("signed_write_then_read", |b| {
        b.iter(|| {
            let value = KoaCodec.encode(black_box(&record)).unwrap();
            let set = signed_jar
                .write(&value, Some(1_700_086_400_000), 1_700_000_000_000, true)
                .unwrap();
            let sig = set.sig.as_deref().unwrap().split(';').next().unwrap();
            let header = format!("koa.sess={value}; {sig}");
            let Incoming::Valid { value, .. } = signed_jar.read([header.as_bytes()]) else {
                panic!()
            };
            KoaCodec.decode(value, MaxAge::Session).unwrap()
        })
    });
    g.bench_function("encrypted_write_then_read", |b| {
        b.iter(|| {
            let value = enc.encode(black_box(&record)).unwrap();
            let set = plain_jar
                .write(&value, Some(1_700_086_400_000), 1_700_000_000_000, true)
                .unwrap();
            let header = set.value.split(';').next().unwrap();
            let Incoming::Valid { value, .. } = plain_jar.read([header.as_bytes()]) else {
                panic!()
            };
            enc.decode_with_key(value, MaxAge::Session).unwrap()
        })
    });
    // The codecs alone (no cookie formatting or parsing).
    g.bench_function("signed_codec_encode_sign_verify_decode", |b| {
        let named = Keygrip::new(&[Secret::new(KEY.to_vec())], Algorithm::Sha256)
            .unwrap()
            .with_prefix(b"koa.sess=");
        b.iter(|| {
            let value = KoaCodec.encode(black_box(&record)).unwrap();
            let sig = named.sign(value.as_bytes());
            named.verify(value.as_bytes(), sig.as_str()).unwrap();
            KoaCodec.decode(&value, MaxAge::Session).unwrap()
        })
    });
    g.bench_function("encrypted_codec_encode_decode", |b| {
        b.iter(|| {
            let value = enc.encode(black_box(&record)).unwrap();
            enc.decode_with_key(&value, MaxAge::Session).unwrap()
        })
    });
    // Opening a value under the fourth key of a rotation list (every key tried).
    let old = EncryptedCodec::new(
        "koa.sess",
        &[Secret::new(b"an old key of 32 bytes or longer".to_vec())],
    )
    .unwrap();
    let rotated = EncryptedCodec::new(
        "koa.sess",
        &[
            Secret::new(b"key one, 32 bytes or longer.....".to_vec()),
            Secret::new(b"key two, 32 bytes or longer.....".to_vec()),
            Secret::new(b"key three, 32 bytes or longer...".to_vec()),
            Secret::new(b"an old key of 32 bytes or longer".to_vec()),
        ],
    )
    .unwrap();
    let old_value = old.encode(&record).unwrap();
    g.bench_function("encrypted_decode_under_fourth_key", |b| {
        b.iter(|| {
            rotated
                .decode_with_key(black_box(&old_value), MaxAge::Session)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, sign_verify, cookies, codec, signed_vs_encrypted);
criterion_main!(benches);
