//! The decrypt path of an encrypted session cookie: `Cookie` header bytes → parse (unsigned, as
//! the middleware reads in encrypted mode) → `EncryptedCodec::decode_with_key`. Nothing may
//! panic, and nothing may open: the fuzzer can't forge a Poly1305 tag.
//!
//! An input that starts with 0x01 is session JSON instead: a record made from it must encode,
//! open again to the same record under the newest key, and open to nothing once any one byte
//! of its value changes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use session_cookie::{Codec, EncryptedCodec, Incoming, KeyMatch, SessionCookies};
use session_core::driver::Secret;
use session_core::{serde_json::self, serde_json::Value};
use session_core::{CookieOptions, MaxAge};
use session_core::store::{Meta, Record};

const KEYS: [&[u8; 32]; 2] = [
    b"fuzz encryption key one, 32 byte",
    b"fuzz encryption key two, 32 byte",
];
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn setup() -> &'static (EncryptedCodec, SessionCookies) {
    static SETUP: OnceLock<(EncryptedCodec, SessionCookies)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let options = CookieOptions::default();
        let keys: Vec<Secret> = KEYS.iter().map(|k| Secret::new(k.to_vec())).collect();
        let codec = EncryptedCodec::new(&options.name, &keys).unwrap();
        (codec, SessionCookies::new(options, None))
    })
}

fuzz_target!(|data: &[u8]| {
    let (codec, jar) = setup();
    if let [0x01, json @ ..] = data {
        round_trip(codec, json);
        return;
    }

    // Split the input into several header fields at NUL bytes.
    let headers: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let values = match jar.read(headers.iter().copied()) {
        Incoming::Valid { value, .. } => vec![value],
        Incoming::Candidates { verified, .. } => verified.into_iter().map(|v| v.value).collect(),
        _ => Vec::new(),
    };
    for value in values {
        if let Some(opened) = codec.decode_with_key(value, MaxAge::Session) {
            panic!("forged encrypted cookie {value:?} opened: {opened:?}");
        }
    }
    // The codec alone, on the whole input, without the cookie grammar in front.
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(opened) = codec.decode_with_key(text, MaxAge::Session)
    {
        panic!("forged encrypted value {text:?} opened: {opened:?}");
    }
});

fn round_trip(codec: &EncryptedCodec, json: &[u8]) {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    if obj.keys().any(|k| k.starts_with('_')) {
        return;
    }
    let n = json.len() as u64;
    let meta = match json.len() % 3 {
        0 => Meta {
            expire: None,
            max_age: MaxAge::Session,
            created: None,
        },
        1 => Meta {
            expire: Some(1_700_000_000_000 + n),
            max_age: MaxAge::Ms(86_400_000 + n),
            created: None,
        },
        _ => Meta {
            expire: Some(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            max_age: MaxAge::Ms(n + 1),
            created: Some(n),
        },
    };
    let record = Record { data: obj, meta };
    let value = codec.encode(&record).unwrap();
    let opened = codec
        .decode_with_key(&value, MaxAge::Ms(1))
        .unwrap_or_else(|| panic!("own value {value:?} did not open"));
    assert_eq!(opened.key, KeyMatch::Newest);
    // Encryption is transparent: what comes back is what JSON alone gives back...
    let via_json = Record::from_koa_json(&record.to_koa_json(), MaxAge::Ms(1));
    assert_eq!(
        Some(&opened.record),
        via_json.as_ref(),
        "codec changed the record"
    );
    // ...and that is the record itself.
    assert_eq!(opened.record, record, "JSON round trip changed the record");

    // Any one byte changed: a bit flip, and a substitution by another base64url character
    // (so the tag check really runs).
    let bytes = value.as_bytes();
    let seed = json.first().copied().unwrap_or(0) as usize;
    for i in 0..bytes.len() {
        let flipped = bytes[i] ^ (1 << (i % 7));
        let substituted = match ALPHABET.iter().position(|&c| c == bytes[i]) {
            Some(at) => ALPHABET[(at + 1 + (seed + i) % 63) % 64],
            None => b'A',
        };
        for b in [flipped, substituted] {
            if b == bytes[i] {
                continue;
            }
            let mut changed = bytes.to_vec();
            changed[i] = b;
            // Both replacements are ASCII, so the result is still text.
            let changed = String::from_utf8(changed).unwrap();
            if let Some(opened) = codec.decode_with_key(&changed, MaxAge::Session) {
                panic!("value changed at {i} ({value:?} → {changed:?}) opened: {opened:?}");
            }
        }
    }
}
