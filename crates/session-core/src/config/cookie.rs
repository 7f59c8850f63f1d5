//! The session cookie's attributes.

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

/// How a cookie-mode session (the cookie is the session) is carried. Store mode carries only a
/// signed id and is not affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CookieMode {
    /// koa's: base64 of the session JSON, signed in a `.sig` companion cookie. Anyone who sees
    /// the cookie can read the session, no one without a key can change it; a Koa app with
    /// the same keys reads and writes it too.
    #[default]
    Signed,
    /// The session JSON encrypted and authenticated (XChaCha20-Poly1305, `session-cookie`'s
    /// `EncryptedCodec`) under a subkey of each key of the list, bound to the cookie name; one
    /// cookie, no `.sig`. Unreadable and unforgeable without a key; not readable by Koa.
    Encrypted,
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
        has_prefix(&self.name, "__Host-") || has_prefix(&self.name, "__Secure-")
    }
}

/// Whether the cookie `name` carries `prefix` as browsers read it: ASCII case-insensitively
/// (Chromium treats `__host-id` as a `__Host-` cookie and drops it unless it is `Secure`,
/// host-only and on `Path=/`).
pub(crate) fn has_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}
