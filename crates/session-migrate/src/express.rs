//! express-session 1.x with connect-redis as a source: its cookie (`connect.sid`, the
//! url-encoded `s:` + session id + `.` + the unpadded base64 HMAC-SHA-256 of the id under one
//! of the app's secrets, as the `cookie-signature` package makes it) and its records (the
//! session as JSON under `sess:` + id, its `cookie` field express-session's own).

use base64::Engine as _;
use cookie::Cookie;
use hmac::{Hmac, KeyInit, Mac};
use session_core::store::{BoxFuture, ScanResult, Source, SourceCookie, SourceSession, StoreError};

use crate::error::MigrateBuildError;
use crate::redis_kv::Kv;
/// The longest session id taken (express-session's own are 32 characters).
const MAX_ID_LEN: usize = 256;

/// express-session with connect-redis as the library a site is leaving: give it to
/// `SessionLayerBuilder::migrate_from_source`.
///
/// ```no_run
/// # fn main() -> Result<(), session_migrate::MigrateBuildError> {
/// let old = session_migrate::Express::builder()
///     .secret("the newest secret of the express app")
///     .redis("redis://127.0.0.1:6379")?;
/// # let _ = old; Ok(()) }
/// ```
pub struct Express {
    cookie: SourceCookie,
    /// The app's secrets, newest first: HMAC keys.
    secrets: Vec<Vec<u8>>,
    kv: Kv,
}

impl std::fmt::Debug for Express {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Express")
            .field("cookie", &self.cookie.name)
            .field("secrets", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

/// Builds an [`Express`] source: express-session's defaults (cookie `connect.sid` on path `/`,
/// no domain) and connect-redis's (prefix `sess:`) unless told otherwise. At least one secret
/// is required.
pub struct ExpressBuilder {
    cookie: SourceCookie,
    secrets: Vec<Vec<u8>>,
    prefix: String,
}

impl Express {
    /// A builder with express-session's and connect-redis's defaults.
    pub fn builder() -> ExpressBuilder {
        ExpressBuilder {
            cookie: SourceCookie {
                name: "connect.sid".into(),
                path: "/".into(),
                domain: None,
            },
            secrets: Vec::new(),
            prefix: "sess:".into(),
        }
    }
}

impl ExpressBuilder {
    /// One of the app's secrets (express-session's `secret`, a string or an array of them):
    /// give them newest first, as the app did. A cookie signed under any of them is accepted.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets.push(secret.as_ref().to_vec());
        self
    }

    /// The old app's cookie name (`name`; default `connect.sid`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }

    /// The old app's cookie path (`cookie.path`; default `/`).
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// The old app's cookie domain (`cookie.domain`; default none).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// connect-redis's key prefix (`prefix`; default `sess:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The source on connect-redis's Redis. Connects lazily: a Redis that is down fails the
    /// requests that need it (a 503), not the start. Call it within a Tokio runtime. Fails
    /// without a secret, or with an empty one.
    pub fn redis(self, url: &str) -> Result<Express, MigrateBuildError> {
        if self.secrets.is_empty() || self.secrets.iter().any(Vec::is_empty) {
            return Err(MigrateBuildError::NoSecret);
        }
        Ok(Express {
            cookie: self.cookie,
            secrets: self.secrets,
            kv: Kv::new(url, self.prefix, "express-session")?,
        })
    }
}

/// Whether `id` can be a session id here: what a Redis key of the app's takes, and no more
/// than [`MAX_ID_LEN`] bytes of visible ASCII.
fn is_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

impl Express {
    /// The id a `s:` value carries, if its signature is one of the secrets' (constant time).
    fn unsign(&self, value: &str) -> Option<String> {
        let signed = value.strip_prefix("s:")?;
        let (id, signature) = signed.rsplit_once('.')?;
        let tag = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(signature)
            .ok()?;
        let valid = self.secrets.iter().any(|secret| {
            <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).is_ok_and(|mut mac| {
                mac.update(id.as_bytes());
                mac.verify_slice(&tag).is_ok()
            })
        });
        (valid && is_id(id)).then(|| id.to_owned())
    }

    /// A record as connect-redis wrote it: the session's JSON, its `cookie` field dropped
    /// (its `expires`, an ISO date or null, is when the session ends).
    fn decode(bytes: &[u8]) -> Option<SourceSession> {
        let serde_json::Value::Object(mut data) = serde_json::from_slice(bytes).ok()? else {
            return None;
        };
        let expires_ms = match data.remove("cookie") {
            Some(serde_json::Value::Object(c)) => match c.get("expires") {
                Some(serde_json::Value::String(s)) => {
                    let at = time::OffsetDateTime::parse(
                        s,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()?;
                    Some(u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
                }
                _ => None,
            },
            _ => return None,
        };
        Some(SourceSession {
            data,
            expires_ms,
            // express-session keeps no creation time.
            created_ms: None,
            // express-session's `originalMaxAge` is the app's, not the user's choice.
            max_age: None,
        })
    }
}

impl Source for Express {
    fn name(&self) -> &str {
        "express-session"
    }

    fn cookie(&self) -> &SourceCookie {
        &self.cookie
    }

    fn verify(&self, value: &str) -> Option<String> {
        // As express-session reads it: percent-decoded, then unsigned (an unsigned value is
        // ignored, as express-session ignores it).
        let name = self.cookie.name.as_str();
        let parsed = Cookie::parse_encoded(format!("{name}={value}")).ok()?;
        self.unsign(parsed.value())
    }

    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SourceSession>, StoreError>> {
        Box::pin(async move {
            let Some((bytes, _)) = self.kv.get(id).await? else {
                return Ok(None);
            };
            Self::decode(&bytes)
                .map(Some)
                .ok_or_else(|| self.kv.corrupt())
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.kv.del(id))
    }

    fn scan<'a>(&'a self, cursor: Option<&'a str>, count: usize) -> BoxFuture<'a, ScanResult> {
        Box::pin(self.kv.scan(cursor, count, is_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(secrets: &[&str]) -> Express {
        let b = secrets.iter().fold(Express::builder(), |b, s| b.secret(s));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { b.redis("redis://127.0.0.1:1").unwrap() })
    }

    fn sign(id: &str, secret: &str) -> String {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(id.as_bytes());
        let tag =
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(mac.finalize().into_bytes());
        format!("s:{id}.{tag}")
    }

    #[test]
    fn a_value_signed_under_any_secret_verifies_and_nothing_else_does() {
        let s = source(&["new secret", "old secret"]);
        let id = "0123456789abcdefghijklmnopqrstuv";
        for secret in ["new secret", "old secret"] {
            let v = sign(id, secret)
                .replace(':', "%3A")
                .replace('+', "%2B")
                .replace('/', "%2F");
            assert_eq!(s.verify(&v).as_deref(), Some(id), "{secret}");
        }
        assert_eq!(s.verify(&sign(id, "another secret")), None);
        assert_eq!(s.verify(id), None, "unsigned");
        assert_eq!(s.verify(&sign(id, "new secret")[2..]), None, "without s:");
        let mut tampered = sign(id, "new secret");
        tampered.push('A');
        assert_eq!(s.verify(&tampered), None);
    }

    #[test]
    fn a_record_drops_express_sessions_cookie_and_keeps_its_expiry() {
        let json = br#"{"cookie":{"originalMaxAge":3600000,"expires":"2030-01-01T00:00:00.000Z","httpOnly":true,"path":"/"},"user":"ann","views":41}"#;
        let s = Express::decode(json).unwrap();
        assert_eq!(s.data.len(), 2);
        assert_eq!(s.data["user"], "ann");
        assert_eq!(s.expires_ms, Some(1_893_456_000_000));
        let session_cookie = br#"{"cookie":{"expires":null},"a":1}"#;
        assert_eq!(Express::decode(session_cookie).unwrap().expires_ms, None);
        for bad in [
            &b"[1]"[..],
            b"{\"a\":1}",
            b"not json",
            b"{\"cookie\":{\"expires\":\"soon\"}}",
        ] {
            assert!(Express::decode(bad).is_none());
        }
    }

    #[test]
    fn no_secret_fails_at_build() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(matches!(
                Express::builder().redis("redis://127.0.0.1:1"),
                Err(MigrateBuildError::NoSecret)
            ));
            assert!(matches!(
                Express::builder().secret("").redis("redis://127.0.0.1:1"),
                Err(MigrateBuildError::NoSecret)
            ));
        });
    }
}
