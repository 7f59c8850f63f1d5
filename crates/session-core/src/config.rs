//! Session options, checked once at construction: a bad configuration is an error at startup,
//! never a panic or a silently insecure cookie at the first request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod cookie;
mod error;
mod keys;

pub use cookie::{CookieMode, CookieOptions, Priority, SameSite, SecurePolicy};
pub use error::ConfigError;
pub use keys::{Algorithm, MAX_KEYS, MIN_KEY_LEN, Secret, validate_keys};

use crate::clock::{SharedClock, SystemClock};
use crate::expiry::{DEFAULT_SUPERSEDE_GRACE, MAX_AGE_CAP_MS, MAX_SUPERSEDE_GRACE, ONE_DAY_MS};
use crate::hooks::Hooks;
use crate::id::{
    IdGenerator, IdPolicy, KeyDerivation, KoaCompatIdGenerator, RandomIdGenerator, is_cookie_value,
};
use crate::record::MaxAge;
use crate::session::Rules;

/// The default cookie refresh threshold: 1 % of max-age, in millionths.
const DEFAULT_REFRESH_PPM: u32 = 10_000;

/// The validated session configuration. Build it with [`Config::builder`].
#[derive(Clone)]
pub struct Config {
    pub(crate) cookie: CookieOptions,
    pub(crate) cookie_mode: CookieMode,
    pub(crate) signed: bool,
    pub(crate) keys: Vec<Secret>,
    pub(crate) algorithm: Algorithm,
    pub(crate) max_age: MaxAge,
    pub(crate) rolling: bool,
    pub(crate) renew: bool,
    pub(crate) absolute_lifetime_ms: Option<u64>,
    pub(crate) session_ttl_ms: u64,
    pub(crate) supersede_grace: Duration,
    pub(crate) guest: bool,
    pub(crate) koa_compat: bool,
    /// The cookie refresh threshold in millionths of max-age (0: re-send on every save).
    pub(crate) refresh_ppm: u32,
    pub(crate) ids: IdPolicy,
    pub(crate) key_derivation: KeyDerivation,
    pub(crate) hooks: Hooks,
    pub(crate) clock: SharedClock,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("cookie", &self.cookie)
            .field("cookie_mode", &self.cookie_mode)
            .field("signed", &self.signed)
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("algorithm", &self.algorithm)
            .field("max_age", &self.max_age)
            .field("rolling", &self.rolling)
            .field("renew", &self.renew)
            .field("absolute_lifetime_ms", &self.absolute_lifetime_ms)
            .field("session_ttl_ms", &self.session_ttl_ms)
            .field("supersede_grace", &self.supersede_grace)
            .field("guest", &self.guest)
            .field("koa_compat", &self.koa_compat)
            .field("cookie_refresh", &self.cookie_refresh())
            .field("ids", &self.ids)
            .field("key_derivation", &self.key_derivation)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Starts a configuration with the defaults each setter of [`ConfigBuilder`] names.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Cookie attributes.
    pub fn cookie(&self) -> &CookieOptions {
        &self.cookie
    }
    /// How a cookie-mode session is carried.
    pub fn cookie_mode(&self) -> CookieMode {
        self.cookie_mode
    }

    /// Whether cookies are signed (or, in [`CookieMode::Encrypted`], encrypted) with keys.
    pub fn signed(&self) -> bool {
        self.signed
    }
    /// Signing keys, newest first.
    pub fn keys(&self) -> &[Secret] {
        &self.keys
    }
    /// Signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// Default max-age of a new session.
    pub fn max_age(&self) -> MaxAge {
        self.max_age
    }
    /// `rolling`: re-issue the cookie and extend the session on every response that has one.
    pub fn rolling(&self) -> bool {
        self.rolling
    }
    /// `renew`: extend the session when less than half of its max-age is left.
    pub fn renew(&self) -> bool {
        self.renew
    }
    /// Absolute lifetime cap in ms, if any.
    pub fn absolute_lifetime_ms(&self) -> Option<u64> {
        self.absolute_lifetime_ms
    }
    /// Store TTL of a browser-session (`MaxAge::Session`) record, in ms.
    pub fn session_ttl_ms(&self) -> u64 {
        self.session_ttl_ms
    }
    /// How long the marker a regenerate leaves under the old id lives.
    pub fn supersede_grace(&self) -> Duration {
        self.supersede_grace
    }
    /// Guest mode: every new visitor gets a session cookie.
    pub fn guest(&self) -> bool {
        self.guest
    }
    /// Whether the koa-compat preset is on.
    pub fn koa_compat(&self) -> bool {
        self.koa_compat
    }
    /// The cookie refresh threshold, as a fraction of max-age (see
    /// [`ConfigBuilder::cookie_refresh`]); 0 re-sends the cookie on every save.
    pub fn cookie_refresh(&self) -> f64 {
        f64::from(self.refresh_ppm) / 1e6
    }
    /// Id generation and checking.
    pub fn ids(&self) -> &IdPolicy {
        &self.ids
    }
    /// Store key derivation.
    pub fn key_derivation(&self) -> &KeyDerivation {
        &self.key_derivation
    }
    /// Hooks and event subscribers.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }
    /// The clock every time rule reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
    /// The current time from [`Config::clock`].
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// What starting a session needs, at the current time.
    pub(crate) fn rules(&self) -> Rules<'_> {
        Rules {
            now: self.now_ms(),
            guest: self.guest,
            max_age: self.max_age,
            absolute_ms: self.absolute_lifetime_ms,
            session_ttl_ms: self.session_ttl_ms,
            events: &self.hooks.events,
            keys: &self.key_derivation,
        }
    }
}

/// Builds a [`Config`]; every setter names its default.
///
/// ```
/// use session_core::{Config, MaxAge};
/// let config = Config::builder()
///     .key(b"0123456789abcdef0123456789abcdef".to_vec())
///     .max_age(MaxAge::Ms(30 * 60 * 1000))
///     .rolling(true)
///     .build()
///     .unwrap();
/// assert!(config.rolling());
/// assert!(Config::builder().build().is_err(), "signed without keys");
/// ```
#[derive(Default)]
pub struct ConfigBuilder {
    cookie: CookieOptions,
    cookie_mode: CookieMode,
    unsigned: bool,
    keys: Vec<Secret>,
    algorithm: Option<Algorithm>,
    max_age: Option<MaxAge>,
    rolling: bool,
    renew: bool,
    absolute_lifetime: Option<Duration>,
    session_ttl: Option<Duration>,
    supersede_grace: Option<Duration>,
    guest: bool,
    koa_compat: bool,
    legacy_keys: bool,
    cookie_refresh: Option<f64>,
    id_prefix: String,
    id_generator: Option<Arc<dyn IdGenerator>>,
    key_prefix: Option<String>,
    hooks: Hooks,
    clock: Option<SharedClock>,
}

impl ConfigBuilder {
    /// Sets the whole cookie attribute set.
    pub fn cookie(mut self, cookie: CookieOptions) -> Self {
        self.cookie = cookie;
        self
    }
    /// Cookie name (default `koa.sess`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }
    /// Cookie `Path`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }
    /// Cookie `Domain`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }
    /// Cookie `HttpOnly`.
    pub fn http_only(mut self, on: bool) -> Self {
        self.cookie.http_only = on;
        self
    }
    /// Cookie `Secure` policy.
    pub fn secure(mut self, policy: SecurePolicy) -> Self {
        self.cookie.secure = policy;
        self
    }
    /// Cookie `SameSite`.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = same_site;
        self
    }
    /// Cookie `Partitioned`.
    pub fn partitioned(mut self, on: bool) -> Self {
        self.cookie.partitioned = on;
        self
    }
    /// Cookie `Priority`.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.cookie.priority = Some(priority);
        self
    }
    /// How a cookie-mode session is carried (default [`CookieMode::Signed`], koa's). An
    /// [`CookieMode::Encrypted`] session needs keys of at least 32 bytes (the legacy key
    /// rules don't apply to it) and is not koa-compatible.
    pub fn cookie_mode(mut self, mode: CookieMode) -> Self {
        self.cookie_mode = mode;
        self
    }
    /// Turns signing off (koa's `signed: false`); only sensible behind another integrity layer.
    pub fn unsigned(mut self) -> Self {
        self.unsigned = true;
        self
    }
    /// Adds a signing key; the first added is the newest (it signs), the others only verify.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.keys.push(Secret::new(key));
        self
    }
    /// Sets the whole key list, newest first.
    pub fn keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<Vec<u8>>,
    {
        self.keys = keys.into_iter().map(Secret::new).collect();
        self
    }
    /// Signing algorithm (default SHA-256; SHA-1 under koa-compat unless set).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }
    /// Default lifetime of a session (default one day). Browsers cap a cookie's life at 400
    /// days, so a longer one is clamped to [`MAX_AGE_CAP_MS`] (with a warning): the cookie's
    /// `Max-Age` and `Expires`, the session's `_expire` and the store TTL then agree.
    pub fn max_age(mut self, max_age: MaxAge) -> Self {
        self.max_age = Some(max_age);
        self
    }
    /// koa's `rolling`.
    pub fn rolling(mut self, on: bool) -> Self {
        self.rolling = on;
        self
    }
    /// koa's `renew`.
    pub fn renew(mut self, on: bool) -> Self {
        self.renew = on;
        self
    }
    /// A hard cap on a session's life from its creation, whatever rolling or renew do.
    pub fn absolute_lifetime(mut self, cap: Duration) -> Self {
        self.absolute_lifetime = Some(cap);
        self
    }
    /// How long the store keeps a browser-session record after its last write (default one day;
    /// at most 400 days, like a cookie).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = Some(ttl);
        self
    }
    /// How long a regenerate's marker lives under the old id (default 60 s): while it does, a
    /// request that still carries the old id (a parallel request around a login) is anonymous
    /// without losing the client's new cookie, and a logout that carries the old id also ends
    /// the new session. Afterwards the old id is simply unknown. At most one day
    /// ([`MAX_SUPERSEDE_GRACE`](crate::expiry::MAX_SUPERSEDE_GRACE)).
    pub fn supersede_grace(mut self, grace: Duration) -> Self {
        self.supersede_grace = Some(grace);
        self
    }
    /// Guest sessions: the first response to a visitor without a session carries a signed
    /// session cookie even while the session is empty. No record is written until the session
    /// holds data, and the first write files it under a freshly drawn id (so a guest cookie
    /// planted in someone else's browser never leads to their data).
    pub fn guest(mut self, on: bool) -> Self {
        self.guest = on;
        self
    }
    /// koa-compat preset: raw ids as store keys, koa's UUID ids accepted, SHA-1 unless an
    /// algorithm is set, and a Koa app's existing (short) keys accepted with a warning.
    pub fn koa_compat(mut self, on: bool) -> Self {
        self.koa_compat = on;
        self
    }
    /// Store mode: a save of an existing session sends its (unchanged) id cookie again only
    /// when the cookie's expiry would move by at least this fraction of max-age (default
    /// `0.01`, 1 %; `0` re-sends it on every save, as koa does, and is the koa-compat default).
    /// The server-side expiry stays exact: every save still moves the record's `_expire` and
    /// TTL to now + max-age. The browser's copy of the cookie then expires at most this
    /// fraction of max-age before the record does (one day: at most 14.4 minutes earlier),
    /// and a response whose save changed nothing in the cookie carries no `Set-Cookie` (two
    /// headers of some 200 bytes less per response). How: the cookie goes out when the new
    /// expiry falls into another step of `fraction × max-age` than the session's current
    /// expiry, so a busy session re-sends it about once per step; a response that crossed a
    /// step and never reached the browser (the client went away) leaves its cookie one more
    /// step behind until the next crossing. New sessions, regenerated ids, key rotation (a
    /// cookie signed with an older key), a changed max-age, `rolling` (it re-sends on every
    /// response, as its name promises) and `renew` always send it; browser-session cookies (no expiry) are only
    /// sent when they change. At most `0.5`; [`ConfigBuilder::build`] fails on a value outside
    /// `0..=0.5` or above `0` under koa-compat. Cookie mode ignores it (the cookie is the
    /// data).
    pub fn cookie_refresh(mut self, fraction: f64) -> Self {
        self.cookie_refresh = Some(fraction);
        self
    }
    /// Accepts keys shorter than 32 bytes and placeholders, with a logged warning, without the
    /// rest of the koa-compat preset.
    pub fn legacy_keys(mut self, on: bool) -> Self {
        self.legacy_keys = on;
        self
    }
    /// koa's `prefix`: prepended to every generated id (part of the cookie and the raw key).
    /// Only cookie characters are allowed, and prefix plus id must stay within
    /// [`MAX_ID_LEN`](crate::id::MAX_ID_LEN) bytes; both are checked by [`ConfigBuilder::build`].
    pub fn id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.id_prefix = prefix.into();
        self
    }
    /// koa's `genid`, with its strict format check. [`ConfigBuilder::build`] draws one id and
    /// fails if the generator errs or its own check (or the cookie grammar) rejects that id.
    pub fn id_generator(mut self, generator: Arc<dyn IdGenerator>) -> Self {
        self.id_generator = Some(generator);
        self
    }
    /// Namespace of hashed store keys (default `sess:`).
    pub fn store_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }
    /// Hooks and event subscribers.
    pub fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }
    /// The clock (default the system clock); tests inject a [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<Config, ConfigError> {
        let c = &self.cookie;
        validate_cookie_name(&c.name)?;
        if !c.path.starts_with('/') || c.path.bytes().any(|b| b == b';' || b.is_ascii_control()) {
            return Err(ConfigError::InvalidPath(c.path.clone()));
        }
        if let Some(d) = &c.domain
            && (d.is_empty()
                || d.bytes()
                    .any(|b| b == b';' || b == b' ' || b.is_ascii_control() || !b.is_ascii()))
        {
            return Err(ConfigError::InvalidDomain(d.clone()));
        }
        let never = c.secure == SecurePolicy::Never;
        if c.same_site == SameSite::None && never {
            return Err(ConfigError::SameSiteNoneWithoutSecure);
        }
        if cookie::has_prefix(&c.name, "__Host-") {
            if never {
                return Err(ConfigError::PrefixNeedsSecure("__Host-"));
            }
            if c.domain.is_some() {
                return Err(ConfigError::HostPrefixWithDomain);
            }
            if c.path != "/" {
                return Err(ConfigError::HostPrefixWithPath);
            }
        }
        if cookie::has_prefix(&c.name, "__Secure-") && never {
            return Err(ConfigError::PrefixNeedsSecure("__Secure-"));
        }
        let signed = !self.unsigned;
        let encrypted = self.cookie_mode == CookieMode::Encrypted;
        if encrypted && !signed {
            return Err(ConfigError::Encryption("they need keys (unsigned is set)"));
        }
        if encrypted && self.koa_compat {
            return Err(ConfigError::Encryption(
                "koa-compat carries koa's readable base64 JSON",
            ));
        }
        // An encryption key must be a strong one, whatever the legacy setting.
        let legacy = (self.legacy_keys || self.koa_compat) && !encrypted;
        if signed {
            validate_keys(&self.keys, legacy)?;
        }
        let mut max_age = self.max_age.unwrap_or(MaxAge::Ms(ONE_DAY_MS));
        if max_age == MaxAge::Ms(0) {
            return Err(ConfigError::ZeroDuration("max_age"));
        }
        if let MaxAge::Ms(ms) = max_age
            && ms > MAX_AGE_CAP_MS
        {
            tracing::warn!(
                target: "session",
                max_age_ms = ms,
                cap_ms = MAX_AGE_CAP_MS,
                "max_age is beyond the 400 days browsers allow a cookie; clamped to 400 days"
            );
            max_age = MaxAge::Ms(MAX_AGE_CAP_MS);
        }
        let absolute_lifetime_ms = match self.absolute_lifetime {
            Some(d) if d.as_millis() == 0 => {
                return Err(ConfigError::ZeroDuration("absolute_lifetime"));
            }
            Some(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => None,
        };
        let session_ttl_ms = match self.session_ttl {
            Some(d) if d.as_millis() == 0 => return Err(ConfigError::ZeroDuration("session_ttl")),
            Some(d) if d.as_millis() > u128::from(MAX_AGE_CAP_MS) => {
                return Err(ConfigError::DurationTooLong {
                    what: "session_ttl",
                    max_secs: MAX_AGE_CAP_MS / 1000,
                });
            }
            Some(d) => u64::try_from(d.as_millis()).unwrap_or(MAX_AGE_CAP_MS),
            None => ONE_DAY_MS,
        };
        let supersede_grace = match self.supersede_grace {
            Some(d) if d.as_millis() == 0 => {
                return Err(ConfigError::ZeroDuration("supersede_grace"));
            }
            Some(d) if d > MAX_SUPERSEDE_GRACE => {
                return Err(ConfigError::DurationTooLong {
                    what: "supersede_grace",
                    max_secs: MAX_SUPERSEDE_GRACE.as_secs(),
                });
            }
            Some(d) => d,
            None => DEFAULT_SUPERSEDE_GRACE,
        };
        let refresh_ppm = match self.cookie_refresh {
            None if self.koa_compat => 0,
            None => DEFAULT_REFRESH_PPM,
            Some(f) if !(0.0..=0.5).contains(&f) => {
                return Err(ConfigError::CookieRefresh(
                    "it must be a fraction in 0..=0.5",
                ));
            }
            Some(f) if f > 0.0 && self.koa_compat => {
                return Err(ConfigError::CookieRefresh(
                    "koa-compat re-sends the cookie on every save, as koa does",
                ));
            }
            // In 0..=0.5: fits.
            Some(f) => (f * 1e6).round() as u32,
        };
        let generator: Arc<dyn IdGenerator> = match self.id_generator {
            Some(g) => g,
            None if self.koa_compat => Arc::new(KoaCompatIdGenerator),
            None => Arc::new(RandomIdGenerator),
        };
        let ids = IdPolicy::new(self.id_prefix, generator);
        validate_ids(&ids)?;
        let key_derivation = if self.koa_compat {
            KeyDerivation::Raw
        } else {
            KeyDerivation::Hashed {
                prefix: self.key_prefix.unwrap_or_else(|| "sess:".to_owned()),
            }
        };
        let algorithm = self.algorithm.unwrap_or(if self.koa_compat {
            Algorithm::Sha1
        } else {
            Algorithm::Sha256
        });
        Ok(Config {
            cookie: self.cookie,
            cookie_mode: self.cookie_mode,
            signed,
            keys: if signed { self.keys } else { Vec::new() },
            algorithm,
            max_age,
            rolling: self.rolling,
            renew: self.renew,
            absolute_lifetime_ms,
            session_ttl_ms,
            supersede_grace,
            guest: self.guest,
            koa_compat: self.koa_compat,
            refresh_ppm,
            ids,
            key_derivation,
            hooks: self.hooks,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
        })
    }
}

/// RFC 6265 `token` characters. `:` is tolerated, with a warning, for apps that still use the
/// seed's `koa:sess` name.
fn validate_cookie_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;\\\"/[]?={}".contains(&b));
    if !ok {
        return Err(ConfigError::InvalidCookieName(name.to_owned()));
    }
    if name.contains(':') {
        tracing::warn!(
            target: "session",
            "cookie name contains ':', which RFC 6265 does not allow in a token; some clients may drop it"
        );
    }
    Ok(())
}

/// The id prefix is cookie characters, and a freshly drawn id (prefix included) is within
/// [`MAX_ID_LEN`](crate::id::MAX_ID_LEN), made of cookie characters, and accepted by the
/// generator's own check: otherwise every write (bad characters) or every returning visitor
/// (an id the check rejects) would fail at run time.
fn validate_ids(ids: &IdPolicy) -> Result<(), ConfigError> {
    let prefix = ids.prefix();
    if !is_cookie_value(prefix.as_bytes()) {
        return Err(ConfigError::InvalidIdPrefix(prefix.to_owned()));
    }
    let sample = ids
        .generate()
        .map_err(|e| ConfigError::IdGenerator(format!("drawing an id failed: {e}")))?;
    let len = sample.as_str().len();
    if len > crate::id::MAX_ID_LEN {
        return Err(ConfigError::IdTooLong {
            len,
            max: crate::id::MAX_ID_LEN,
        });
    }
    if len == prefix.len() || !is_cookie_value(sample.as_str().as_bytes()) {
        return Err(ConfigError::IdGenerator(
            "it produced an empty id or one with characters a cookie can't carry".into(),
        ));
    }
    if ids.parse(sample.as_str()).is_none() {
        return Err(ConfigError::IdGenerator(
            "its own format check rejects the ids it generates".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
