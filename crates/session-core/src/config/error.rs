//! What can be wrong with a configuration.

/// A configuration that can't work; returned by [`ConfigBuilder::build`](crate::ConfigBuilder::build).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Signed cookies need at least one key.
    #[error("signed sessions need at least one key")]
    NoKeys,
    /// More keys than [`MAX_KEYS`](crate::keys::MAX_KEYS).
    #[error(
        "{count} keys given; at most {max} are allowed (each invalid cookie costs one HMAC per key)"
    )]
    TooManyKeys {
        /// Keys given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A key shorter than [`MIN_KEY_LEN`](crate::keys::MIN_KEY_LEN) outside koa-compat mode.
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
    /// [`CookieMode::Encrypted`](crate::CookieMode::Encrypted) combined with an option it
    /// can't work with.
    #[error("encrypted cookies can't be used here: {0}")]
    Encryption(&'static str),
    /// [`ConfigBuilder::cookie_refresh`](crate::ConfigBuilder::cookie_refresh) out of range,
    /// or combined with koa-compat.
    #[error("cookie refresh threshold refused: {0}")]
    CookieRefresh(&'static str),
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
    /// A lifetime longer than the library accepts for it (a typo, or `Duration::MAX` meant as
    /// "forever": stores would keep keys without end).
    #[error("{what} may be at most {max_secs} s")]
    DurationTooLong {
        /// The option.
        what: &'static str,
        /// The longest accepted, in seconds.
        max_secs: u64,
    },
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
