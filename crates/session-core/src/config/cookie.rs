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
