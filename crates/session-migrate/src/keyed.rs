//! A cookie value as the `cookie` crate's jars read it (tower-cookies and actix-web both use
//! them): percent-decoded, then, under a `Key`, checked as signed or opened as private.

use cookie::{Cookie, CookieJar, Key};

use crate::error::MigrateBuildError;

/// The `Key` of these 64 bytes (`Key::from`'s master key); any other length fails (the cookie
/// crate would take a longer one and use only its start).
pub(crate) fn key(bytes: &[u8]) -> Result<Key, MigrateBuildError> {
    if bytes.len() != 64 {
        return Err(MigrateBuildError::KeyLength(bytes.len()));
    }
    Key::try_from(bytes).map_err(|_| MigrateBuildError::KeyLength(bytes.len()))
}

/// The plain value of cookie `name` = `value` (as sent), under `key` if one is given: `None`
/// when it is neither validly signed nor validly encrypted under it.
pub(crate) fn open(name: &str, value: &str, key: Option<&Key>) -> Option<String> {
    let parsed = Cookie::parse_encoded(format!("{name}={value}")).ok()?;
    let mut jar = CookieJar::new();
    jar.add_original(parsed.into_owned());
    match key {
        None => jar.get(name).map(|c| c.value().to_owned()),
        Some(key) => (jar.signed(key).get(name))
            .or_else(|| jar.private(key).get(name))
            .map(|c| c.value().to_owned()),
    }
}
