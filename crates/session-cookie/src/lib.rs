//! Cookies for sessions, koa-session style and byte-compatible with it.
//!
//! - [`Keygrip`]: an ordered key list (newest first). It signs with the newest key and verifies
//!   with any, in constant time, and reports which key matched so the caller re-signs cookies
//!   made with an older key: key rotation without logging anyone out. HMAC-SHA-256 by default;
//!   SHA-1 (keygrip's default) and SHA-512 for interop. Signatures are base64url without
//!   padding, and only that exact form verifies.
//! - [`SessionCookies`]: the cookie pair `NAME=VALUE` + `NAME.sig=HMAC("NAME=VALUE")` (the name
//!   is bound into the MAC, so a value can't be moved to another cookie). Reads several `Cookie`
//!   headers and returns every duplicate that verifies, in order, and writes `Set-Cookie` with every
//!   attribute, a `Max-Age` clamped to 400 days, removal cookies that repeat the original
//!   attributes, and an error instead of a cookie over 4096 bytes.
//! - [`Codec`] / [`KoaCodec`]: the cookie-mode payload, koa's base64 of the session JSON with
//!   `_expire`/`_maxAge`, decoded as leniently as Node does.
//! - [`EncryptedCodec`]: the session JSON sealed with XChaCha20-Poly1305 under a subkey of each
//!   key of the list, bound to the cookie name, one cookie and no `.sig`; rotation as signing's.
//!
//! # Example
//! ```
//! use session_cookie::{Codec, Incoming, KoaCodec, SessionCookies};
//! use session_core::{Config, MaxAge};
//! use session_core::store::{Meta, Record};
//!
//! let config = Config::builder()
//!     .keys([b"newest key, 32 bytes or more....".to_vec()])
//!     .build()?;
//! let cookies = SessionCookies::from_config(&config)?;
//!
//! // Write a cookie-mode session.
//! let mut record = Record { data: Default::default(), meta: Meta {
//!     expire: Some(1_700_086_400_000), max_age: MaxAge::Ms(86_400_000), created: None } };
//! record.data.insert("views".into(), 1.into());
//! let value = KoaCodec.encode(&record)?;
//! let set = cookies.write(&value, record.meta.expire, 1_700_000_000_000, true)?;
//! assert!(set.value.starts_with("koa.sess=eyJ2aWV3cyI6MSwi"));
//!
//! // The browser sends both cookies back; read, verify, decode.
//! let sig = set.sig.as_deref().unwrap().split(';').next().unwrap();
//! let header = format!("koa.sess={value}; {sig}");
//! let Incoming::Valid { value, resign, .. } = cookies.read([header.as_bytes()]) else { panic!() };
//! assert!(!resign);
//! assert_eq!(KoaCodec.decode(value, MaxAge::Session), Some(record));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
pub mod csrf;
mod encrypted;
mod jar;
mod keygrip;
pub mod parse;

pub use codec::{Codec, CodecError, Decoded, KoaCodec, node_base64_decode};
pub use encrypted::{ENCRYPTED_PREFIX, EncryptedCodec, encrypted_len};
pub use jar::{
    CookieError, Incoming, MAX_AGE_CAP_SECS, MAX_CANDIDATES, MAX_COOKIE_BYTES,
    MAX_DESTROY_CANDIDATES, MAX_SIGNATURE_CANDIDATES, SessionCookies, SetCookies, Verified,
};
pub use keygrip::{KeyMatch, Keygrip, MAX_SIGNATURE_LEN, Signature};
