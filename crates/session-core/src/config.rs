//! Session options, checked once at construction: a bad configuration is an error at startup,
//! never a panic or a silently insecure cookie at the first request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
use crate::expiry::{DEFAULT_SUPERSEDE_GRACE, MAX_AGE_CAP_MS, ONE_DAY_MS};
use crate::hooks::Hooks;
use crate::id::{IdGenerator, IdPolicy, KeyDerivation, KoaCompatIdGenerator, RandomIdGenerator};
use crate::record::MaxAge;
use crate::session::Rules;

/// Shortest key accepted outside koa-compat mode (32 bytes = 256 bits).
pub const MIN_KEY_LEN: usize = 32;
/// Most keys in a rotation list: every invalid cookie costs one HMAC per key.
pub const MAX_KEYS: usize = 4;

/// Well-known example secrets that must never sign real sessions.
const PLACEHOLDER_KEYS: &[&str] = &[
    "keyboard cat",
    "secret",
    "changeme",
    "change me",
    "change-me",
    "password",
    "im a newer secret",
    "i like turtle",
    "some secret hurr",
    "your-secret-key",
];

/// A secret signing key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps key material.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The key bytes, for the signer.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

/// The HMAC hash used to sign cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1: keygrip's default; only for sharing cookies with an existing Koa app.
    Sha1,
    /// HMAC-SHA-256: our default.
    #[default]
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

/// The cookie `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent on same-site requests only.
    Strict,
    /// Also sent on top-level navigations from other sites (the default).
    #[default]
    Lax,
    /// Sent on every request; requires `Secure`.
    None,
}

/// When the cookie gets the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurePolicy {
    /// When the request came over TLS, or through a proxy the app explicitly trusts that says
    /// `https`. `__Host-`/`__Secure-` names and `SameSite=None` always get `Secure`.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never (plain-HTTP development only).
    Never,
}

/// The cookie `Priority` attribute (a Chromium extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// `Priority=Low`.
    Low,
    /// `Priority=Medium`.
    Medium,
    /// `Priority=High`.
    High,
}

/// Attributes of the session cookie (and its `.sig` companion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieOptions {
    /// Cookie name (default `koa.sess`).
    pub name: String,
    /// `Path` (default `/`).
    pub path: String,
    /// `Domain` (default unset: host-only, which is safer).
    pub domain: Option<String>,
    /// `HttpOnly` (default on).
    pub http_only: bool,
    /// `Secure` policy (default auto).
    pub secure: SecurePolicy,
    /// `SameSite` (default `Lax`).
    pub same_site: SameSite,
    /// `Partitioned` (CHIPS; default off).
    pub partitioned: bool,
    /// `Priority` (default unset).
    pub priority: Option<Priority>,
}

impl Default for CookieOptions {
    fn default() -> Self {
        Self {
            name: "koa.sess".to_owned(),
            path: "/".to_owned(),
            domain: None,
            http_only: true,
            secure: SecurePolicy::Auto,
            same_site: SameSite::Lax,
            partitioned: false,
            priority: None,
        }
    }
}

impl CookieOptions {
    /// Whether the cookie is sent with `Secure` for a request that was (or wasn't) over TLS.
    pub fn secure_for(&self, request_is_secure: bool) -> bool {
        match self.secure {
            SecurePolicy::Always => true,
            SecurePolicy::Never => false,
            SecurePolicy::Auto => {
                request_is_secure || self.needs_secure() || self.same_site == SameSite::None
            }
        }
    }

    fn needs_secure(&self) -> bool {
        self.name.starts_with("__Host-") || self.name.starts_with("__Secure-")
    }
}

/// A configuration that can't work; returned by [`ConfigBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Signed cookies need at least one key.
    #[error("signed sessions need at least one key")]
    NoKeys,
    /// More keys than [`MAX_KEYS`].
    #[error(
        "{count} keys given; at most {max} are allowed (each invalid cookie costs one HMAC per key)"
    )]
    TooManyKeys {
        /// Keys given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A key shorter than [`MIN_KEY_LEN`] outside koa-compat mode.
    #[error(
        "key #{index} is {len} bytes; at least {min} are required (or enable koa-compat legacy keys)"
    )]
    KeyTooShort {
        /// Position in the key list.
        index: usize,
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// The same key twice in the list.
    #[error("key #{index} repeats an earlier key")]
    DuplicateKey {
        /// Position of the repeat.
        index: usize,
    },
    /// A documentation example secret.
    #[error("key #{index} is a well-known placeholder secret")]
    PlaceholderKey {
        /// Position in the key list.
        index: usize,
    },
    /// The cookie name is not an RFC 6265 token.
    #[error("cookie name {0:?} is not a valid cookie token")]
    InvalidCookieName(String),
    /// `Path` must start with `/` and hold no control characters or `;`.
    #[error("cookie path {0:?} is invalid")]
    InvalidPath(String),
    /// `Domain` must be non-empty with no control characters, spaces or `;`.
    #[error("cookie domain {0:?} is invalid")]
    InvalidDomain(String),
    /// Browsers drop `SameSite=None` cookies that lack `Secure`.
    #[error("SameSite=None requires Secure (secure is set to never)")]
    SameSiteNoneWithoutSecure,
    /// `__Host-` and `__Secure-` cookies must be `Secure`.
    #[error("a {0} cookie must be Secure (secure is set to never)")]
    PrefixNeedsSecure(&'static str),
    /// `__Host-` cookies must not carry `Domain`.
    #[error("a __Host- cookie must not have a Domain")]
    HostPrefixWithDomain,
    /// `__Host-` cookies must have `Path=/`.
    #[error("a __Host- cookie must have Path=/")]
    HostPrefixWithPath,
    /// A zero lifetime would expire every session at once.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// The id prefix holds characters a cookie or header can't carry.
    #[error(
        "id prefix {0:?} may only hold cookie characters (no spaces, controls, '\"', ',', ';' or '\\')"
    )]
    InvalidIdPrefix(String),
    /// Prefix plus generated id is longer than incoming ids may be, so no returning visitor
    /// would be recognised.
    #[error("ids would be {len} bytes (prefix included); incoming ids are limited to {max}")]
    IdTooLong {
        /// Length of a generated id, prefix included.
        len: usize,
        /// [`MAX_ID_LEN`](crate::id::MAX_ID_LEN).
        max: usize,
    },
    /// The id generator failed, or produced an id its own format check rejects.
    #[error("id generator unusable: {0}")]
    IdGenerator(String),
}

/// The validated session configuration. Build it with [`Config::builder`].
#[derive(Clone)]
pub struct Config {
    pub(crate) cookie: CookieOptions,
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
    pub(crate) ids: IdPolicy,
    pub(crate) key_derivation: KeyDerivation,
    pub(crate) hooks: Hooks,
    pub(crate) clock: SharedClock,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("cookie", &self.cookie)
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
    /// Whether cookies are signed.
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
    /// How long the store keeps a browser-session record after its last write (default one day).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = Some(ttl);
        self
    }
    /// How long a regenerate's marker lives under the old id (default 60 s): while it does, a
    /// request that still carries the old id (a parallel request around a login) is anonymous
    /// without losing the client's new cookie, and a logout that carries the old id also ends
    /// the new session. Afterwards the old id is simply unknown.
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
        if c.name.starts_with("__Host-") {
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
        if c.name.starts_with("__Secure-") && never {
            return Err(ConfigError::PrefixNeedsSecure("__Secure-"));
        }
        let signed = !self.unsigned;
        let legacy = self.legacy_keys || self.koa_compat;
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
            Some(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            None => ONE_DAY_MS,
        };
        let supersede_grace = match self.supersede_grace {
            Some(d) if d.as_millis() == 0 => {
                return Err(ConfigError::ZeroDuration("supersede_grace"));
            }
            Some(d) => d,
            None => DEFAULT_SUPERSEDE_GRACE,
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
    if !prefix.bytes().all(is_cookie_octet) {
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
    if len == prefix.len() || !sample.as_str().bytes().all(is_cookie_octet) {
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

/// An RFC 6265 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Checks a signing key list: present, at most [`MAX_KEYS`], no repeats, and (unless `legacy`)
/// each at least [`MIN_KEY_LEN`] bytes and not a well-known placeholder.
///
/// Public so a signer built outside [`Config`] applies the same rules.
pub fn validate_keys(keys: &[Secret], legacy: bool) -> Result<(), ConfigError> {
    if keys.is_empty() {
        return Err(ConfigError::NoKeys);
    }
    if keys.len() > MAX_KEYS {
        return Err(ConfigError::TooManyKeys {
            count: keys.len(),
            max: MAX_KEYS,
        });
    }
    for (index, key) in keys.iter().enumerate() {
        let bytes = key.expose();
        if keys[..index].contains(key) {
            return Err(ConfigError::DuplicateKey { index });
        }
        let placeholder = PLACEHOLDER_KEYS
            .iter()
            .any(|p| p.as_bytes().eq_ignore_ascii_case(bytes));
        let short = bytes.len() < MIN_KEY_LEN;
        if legacy {
            if bytes.is_empty() {
                return Err(ConfigError::KeyTooShort {
                    index,
                    len: 0,
                    min: 1,
                });
            }
            if short || placeholder {
                tracing::warn!(
                    target: "session",
                    key_index = index,
                    key_len = bytes.len(),
                    "legacy signing key accepted: shorter than 32 bytes or a well-known placeholder; rotate it"
                );
            }
        } else if placeholder {
            return Err(ConfigError::PlaceholderKey { index });
        } else if short {
            return Err(ConfigError::KeyTooShort {
                index,
                len: bytes.len(),
                min: MIN_KEY_LEN,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn base() -> ConfigBuilder {
        Config::builder().key(K.to_vec())
    }

    #[test]
    fn defaults_follow_behaviour_md() {
        let c = base().build().unwrap();
        assert_eq!(c.cookie().name, "koa.sess");
        assert!(c.signed());
        assert_eq!(c.algorithm(), Algorithm::Sha256);
        assert_eq!(c.max_age(), MaxAge::Ms(ONE_DAY_MS));
        assert!(c.cookie().http_only);
        assert_eq!(c.cookie().secure, SecurePolicy::Auto);
        assert_eq!(c.cookie().same_site, SameSite::Lax);
        assert_eq!(c.cookie().path, "/");
        assert_eq!(c.cookie().domain, None);
        assert!(!c.rolling() && !c.renew() && !c.guest());
        assert_eq!(c.absolute_lifetime_ms(), None);
        assert!(
            matches!(c.key_derivation(), KeyDerivation::Hashed { prefix } if prefix == "sess:")
        );
    }

    #[test]
    fn signed_without_keys_is_an_error() {
        assert_eq!(Config::builder().build().unwrap_err(), ConfigError::NoKeys);
        assert!(Config::builder().unsigned().build().is_ok());
    }

    #[test]
    fn weak_keys_are_rejected_unless_legacy() {
        assert!(matches!(
            Config::builder().key("short").build().unwrap_err(),
            ConfigError::KeyTooShort {
                index: 0,
                len: 5,
                ..
            }
        ));
        assert_eq!(
            Config::builder().key("keyboard cat").build().unwrap_err(),
            ConfigError::PlaceholderKey { index: 0 }
        );
        assert_eq!(
            base().key(K.to_vec()).build().unwrap_err(),
            ConfigError::DuplicateKey { index: 1 }
        );
        assert!(matches!(
            Config::builder()
                .keys((0..5).map(|i| vec![i; 32]))
                .build()
                .unwrap_err(),
            ConfigError::TooManyKeys { count: 5, .. }
        ));
        assert!(Config::builder().key("k1").koa_compat(true).build().is_ok());
        assert!(
            Config::builder()
                .key("k1")
                .legacy_keys(true)
                .build()
                .is_ok()
        );
        assert!(Config::builder().key("").legacy_keys(true).build().is_err());
    }

    #[test]
    fn same_site_none_needs_secure() {
        assert_eq!(
            base()
                .same_site(SameSite::None)
                .secure(SecurePolicy::Never)
                .build()
                .unwrap_err(),
            ConfigError::SameSiteNoneWithoutSecure
        );
        let c = base().same_site(SameSite::None).build().unwrap();
        assert!(c.cookie().secure_for(false));
    }

    #[test]
    fn host_prefix_rules() {
        let host = || base().cookie_name("__Host-id");
        assert_eq!(
            host().domain("example.com").build().unwrap_err(),
            ConfigError::HostPrefixWithDomain
        );
        assert_eq!(
            host().path("/app").build().unwrap_err(),
            ConfigError::HostPrefixWithPath
        );
        assert_eq!(
            host().secure(SecurePolicy::Never).build().unwrap_err(),
            ConfigError::PrefixNeedsSecure("__Host-")
        );
        assert!(host().build().unwrap().cookie().secure_for(false));
        assert_eq!(
            base()
                .cookie_name("__Secure-id")
                .secure(SecurePolicy::Never)
                .build()
                .unwrap_err(),
            ConfigError::PrefixNeedsSecure("__Secure-")
        );
    }

    #[test]
    fn zero_lifetimes_are_errors() {
        assert_eq!(
            base().max_age(MaxAge::Ms(0)).build().unwrap_err(),
            ConfigError::ZeroDuration("max_age")
        );
        assert_eq!(
            base()
                .absolute_lifetime(Duration::ZERO)
                .build()
                .unwrap_err(),
            ConfigError::ZeroDuration("absolute_lifetime")
        );
        assert_eq!(
            base()
                .session_ttl(Duration::from_micros(10))
                .build()
                .unwrap_err(),
            ConfigError::ZeroDuration("session_ttl")
        );
    }

    #[test]
    fn bad_names_paths_domains() {
        for name in ["", "a b", "a;b", "a=b", "a\u{1}", "sess\u{e9}"] {
            assert!(matches!(
                base().cookie_name(name).build().unwrap_err(),
                ConfigError::InvalidCookieName(_)
            ));
        }
        assert!(base().cookie_name("koa:sess").build().is_ok());
        assert!(base().path("app").build().is_err());
        assert!(base().path("/a;b").build().is_err());
        assert!(base().domain("a b").build().is_err());
        assert!(base().domain("").build().is_err());
        assert!(base().domain("example.com").build().is_ok());
    }

    #[test]
    fn id_prefix_is_checked_at_construction() {
        for bad in ["a;b", "a b", "a,b", "a\"b", "a\\b", "\u{e9}", "a\u{1}"] {
            assert_eq!(
                base().id_prefix(bad).build().unwrap_err(),
                ConfigError::InvalidIdPrefix(bad.to_owned()),
                "{bad:?}"
            );
        }
        let long = "p".repeat(220);
        assert_eq!(
            base().id_prefix(long).build().unwrap_err(),
            ConfigError::IdTooLong { len: 263, max: 256 }
        );
        // The longest prefix that still fits works end to end.
        let fits = "p".repeat(256 - crate::id::ID_LEN);
        let c = base().id_prefix(fits).build().unwrap();
        let id = c.ids().generate().unwrap();
        assert!(c.ids().parse(id.as_str()).is_some());
        assert!(base().id_prefix("app1:").build().is_ok());
    }

    #[test]
    fn generators_that_reject_their_own_ids_fail_at_construction() {
        struct Bad;
        impl IdGenerator for Bad {
            fn generate(&self) -> Result<String, getrandom::Error> {
                Ok("has space".into())
            }
            fn is_valid(&self, _: &str) -> bool {
                true
            }
        }
        struct Picky;
        impl IdGenerator for Picky {
            fn generate(&self) -> Result<String, getrandom::Error> {
                Ok("abc".into())
            }
            fn is_valid(&self, _: &str) -> bool {
                false
            }
        }
        assert!(matches!(
            base().id_generator(Arc::new(Bad)).build().unwrap_err(),
            ConfigError::IdGenerator(_)
        ));
        assert!(matches!(
            base().id_generator(Arc::new(Picky)).build().unwrap_err(),
            ConfigError::IdGenerator(_)
        ));
    }

    #[test]
    fn max_age_beyond_the_browser_cap_is_clamped() {
        let ten_years = 10 * 365 * ONE_DAY_MS;
        let c = base().max_age(MaxAge::Ms(ten_years)).build().unwrap();
        assert_eq!(c.max_age(), MaxAge::Ms(MAX_AGE_CAP_MS));
        let c = base().max_age(MaxAge::Ms(MAX_AGE_CAP_MS)).build().unwrap();
        assert_eq!(c.max_age(), MaxAge::Ms(MAX_AGE_CAP_MS));
        assert_eq!(
            base().supersede_grace(Duration::ZERO).build().unwrap_err(),
            ConfigError::ZeroDuration("supersede_grace")
        );
    }

    #[test]
    fn koa_compat_preset() {
        let c = Config::builder()
            .key("k1")
            .koa_compat(true)
            .build()
            .unwrap();
        assert_eq!(c.algorithm(), Algorithm::Sha1);
        assert_eq!(c.key_derivation(), &KeyDerivation::Raw);
        assert!(
            c.ids()
                .parse("3b241101-e2bb-4255-8caf-4136c566a962")
                .is_some()
        );
        let c = Config::builder()
            .key("k1")
            .koa_compat(true)
            .algorithm(Algorithm::Sha256)
            .build()
            .unwrap();
        assert_eq!(c.algorithm(), Algorithm::Sha256);
    }

    #[test]
    fn debug_hides_keys() {
        let c = base().build().unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("0123456789abcdef"));
        assert!(!format!("{:?}", c.keys()[0]).contains("0123"));
    }
}
