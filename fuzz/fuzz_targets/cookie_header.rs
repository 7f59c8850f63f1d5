//! The whole read path of a session cookie: `Cookie` header bytes → parse → signature
//! verification → koa payload decoding. Nothing here may panic, and anything that verifies
//! must have been signed by us.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use session_cookie::{Codec, Incoming, KoaCodec, SessionCookies};
use session_core::{Config, MaxAge};

fn jars() -> &'static (SessionCookies, SessionCookies) {
    static JARS: OnceLock<(SessionCookies, SessionCookies)> = OnceLock::new();
    JARS.get_or_init(|| {
        let signed = Config::builder()
            .keys([b"fuzz key number one, 32 bytes!!!".to_vec(), b"fuzz key number two, 32 bytes!!!".to_vec()])
            .build()
            .unwrap();
        let unsigned = Config::builder().unsigned().build().unwrap();
        (
            SessionCookies::from_config(&signed).unwrap(),
            SessionCookies::from_config(&unsigned).unwrap(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (signed, unsigned) = jars();
    // Split the input into several header fields at NUL bytes.
    let headers: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    match signed.read(headers.iter().copied()) {
        Incoming::Valid { value, .. } => {
            // Only a value signed with one of our keys can verify; the fuzzer can't forge one.
            panic!("forged signature accepted for {value:?}");
        }
        Incoming::Candidates { verified, .. } => {
            panic!("forged signatures accepted for {verified:?}");
        }
        _ => {}
    }
    let values = match unsigned.read(headers.iter().copied()) {
        Incoming::Valid { value, .. } => vec![value],
        Incoming::Candidates { verified, .. } => verified.into_iter().map(|v| v.value).collect(),
        _ => Vec::new(),
    };
    for value in values {
        if let Some(record) = KoaCodec.decode(value, MaxAge::Session) {
            // Whatever decodes re-encodes, and that decodes to the same record.
            let again = KoaCodec.encode(&record).unwrap();
            assert_eq!(KoaCodec.decode(&again, MaxAge::Session), Some(record));
        }
    }
});
