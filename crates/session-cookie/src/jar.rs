//! The session's cookie pair koa-style: `NAME=VALUE` and `NAME.sig=HMAC("NAME=VALUE")`.

use std::fmt::Write as _;

use std::time::{Duration, UNIX_EPOCH};

use session_core::{Config, ConfigError, CookieOptions, Priority, SameSite};

use crate::keygrip::{KeyMatch, Keygrip, Signature};
use crate::parse::{is_cookie_value, pairs};

/// Browsers drop cookies whose name + value exceed this many bytes.
pub const MAX_COOKIE_BYTES: usize = 4096;
/// Browsers cap a cookie's lifetime at 400 days ([`session_core::driver::MAX_AGE_CAP_MS`]).
pub const MAX_AGE_CAP_SECS: u64 = session_core::driver::MAX_AGE_CAP_MS / 1000;
/// At most this many values of the session cookie are tried from one request (each costs one
/// HMAC per key).
pub const MAX_CANDIDATES: usize = 8;
/// At most this many `.sig` cookies are tried from one request (they cost only a comparison
/// each: a value's MAC is computed once per key and compared with every candidate).
pub const MAX_SIGNATURE_CANDIDATES: usize = 16;

/// A cookie that can't be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// Name + value over 4096 bytes: a browser would silently drop it.
    #[error(
        "cookie {name:?} would be {size} bytes (name + value); browsers drop cookies over {limit}"
    )]
    TooLarge {
        /// Cookie name (not secret).
        name: String,
        /// Name + value length.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The value holds bytes a cookie can't carry (a custom codec's output).
    #[error("cookie {name:?} value contains characters not allowed in a cookie")]
    InvalidValue {
        /// Cookie name.
        name: String,
    },
}

/// At most this many values (and twice as many signatures) are tried when a request that
/// destroys its session was [`Incoming::Ambiguous`] under the usual bounds: a logout must end
/// the real session even when planted cookies hide it ([`SessionCookies::read_for_destroy`]).
pub const MAX_DESTROY_CANDIDATES: usize = 64;

/// What the request's cookies say about the session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming<'a> {
    /// No cookie of the session's name.
    None,
    /// Exactly one value verified (or, unsigned, was well-formed), and every value sent was
    /// checked.
    Valid {
        /// The cookie value, exactly as signed.
        value: &'a str,
        /// It verified with an older key: re-sign with the newest.
        resign: bool,
        /// The signature, when it verified with the newest key: writing the same value again
        /// can reuse it ([`SessionCookies::write_reusing`]) instead of computing the HMAC anew.
        signature: Option<Signature>,
    },
    /// Several different values verified (cookies of the same name from other paths or
    /// domains, or a cookie the site once gave an attacker, planted ahead of the real one by
    /// a sibling subdomain), or one did while more were sent than are checked. Which one is
    /// the session is the caller's choice: the first one that is still a live session (a store
    /// lookup, or a payload that has not expired). If none is and `unchecked` is set, the
    /// request is [`Incoming::Ambiguous`]: the real one may be among those not checked.
    Candidates {
        /// The verified values in the order the browser sent them (duplicates dropped);
        /// never empty.
        verified: Vec<Verified<'a>>,
        /// More values or signatures were sent than are checked.
        unchecked: bool,
    },
    /// Values but no `.sig` cookie: ignored, as koa does (nothing is written about it).
    MissingSignature,
    /// A signature that matches no key, or a malformed or oversized value: a new session, and
    /// koa clears the `.sig` cookie.
    Invalid,
    /// None of the first [`MAX_CANDIDATES`] values and [`MAX_SIGNATURE_CANDIDATES`] signatures
    /// verified, and more were sent than are checked: typically cookies planted ahead of the
    /// real pair by a sibling subdomain or a plain-HTTP page (cookie tossing). The request is
    /// anonymous and must not remove or replace the client's cookies, since the real ones may
    /// be among those not checked. A `__Host-` cookie name prevents the planting.
    Ambiguous,
}

/// One verified value of [`Incoming::Candidates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The cookie value, exactly as signed.
    pub value: &'a str,
    /// It verified with an older key: re-sign with the newest.
    pub resign: bool,
    /// The signature, when it verified with the newest key (see [`Incoming::Valid`]).
    pub signature: Option<Signature>,
}

/// The two `Set-Cookie` header values of one write (`sig` is `None` when unsigned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookies {
    /// `NAME=VALUE; ...`.
    pub value: String,
    /// `NAME.sig=...; ...`.
    pub sig: Option<String>,
}

impl SetCookies {
    /// Both header values, value cookie first (koa's order).
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.value.as_str()).chain(self.sig.as_deref())
    }
}

/// Reads and writes the session's cookies for one configuration.
#[derive(Debug, Clone)]
pub struct SessionCookies {
    options: CookieOptions,
    sig_name: String,
    grip: Option<Keygrip>,
    /// `grip` with `NAME=` already absorbed: the MAC input is `NAME=VALUE`, and the name part
    /// never changes.
    value_grip: Option<Keygrip>,
}

impl SessionCookies {
    /// From a validated session configuration (legacy keys allowed only under koa-compat or
    /// `legacy_keys`, as the configuration decided).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let grip = if config.signed() {
            // The configuration already applied the strict or legacy key rules.
            Some(Keygrip::new_legacy(config.keys(), config.algorithm())?)
        } else {
            None
        };
        Ok(Self::new(config.cookie().clone(), grip))
    }

    /// From cookie attributes and a key list (`None`: unsigned cookies).
    pub fn new(options: CookieOptions, grip: Option<Keygrip>) -> Self {
        let sig_name = format!("{}.sig", options.name);
        let prefix = format!("{}=", options.name);
        let value_grip = grip.as_ref().map(|g| g.with_prefix(prefix.as_bytes()));
        Self {
            options,
            sig_name,
            grip,
            value_grip,
        }
    }

    /// The cookie attributes.
    pub fn options(&self) -> &CookieOptions {
        &self.options
    }

    /// The key list, if signed.
    pub fn keygrip(&self) -> Option<&Keygrip> {
        self.grip.as_ref()
    }

    /// Finds the session cookie in the request's `Cookie` header fields.
    ///
    /// With several cookies of the session's name (other paths or domains, or planted by a
    /// sibling subdomain), every one that verifies is returned ([`Incoming::Candidates`]) for
    /// the caller to pick the first live one; at most [`MAX_CANDIDATES`] values and
    /// [`MAX_SIGNATURE_CANDIDATES`] signatures are tried (the HMAC work is one MAC per value
    /// and key, however many signatures), and when none of those verifies while more were sent
    /// the answer is [`Incoming::Ambiguous`] rather than [`Incoming::Invalid`] (so planted
    /// cookies can't get the real ones removed). Oversized values are rejected before any HMAC
    /// work.
    pub fn read<'a, I>(&self, headers: I) -> Incoming<'a>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        self.read_bounded::<MAX_CANDIDATES, MAX_SIGNATURE_CANDIDATES, I>(headers)
    }

    /// [`SessionCookies::read`] with wider bounds ([`MAX_DESTROY_CANDIDATES`] values, twice as
    /// many signatures), for a request that destroys its session although its cookies were
    /// [`Incoming::Ambiguous`]: the logout ends every session among them that verifies.
    pub fn read_for_destroy<'a, I>(&self, headers: I) -> Incoming<'a>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        self.read_bounded::<MAX_DESTROY_CANDIDATES, { 2 * MAX_DESTROY_CANDIDATES }, I>(headers)
    }

    fn read_bounded<'a, const V: usize, const S: usize, I>(&self, headers: I) -> Incoming<'a>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let name = self.options.name.as_bytes();
        let sig_name = self.sig_name.as_bytes();
        let mut values: [&[u8]; V] = [&[]; V];
        let mut sigs: [&[u8]; S] = [&[]; S];
        let (mut nv, mut ns, mut seen_value, mut unchecked) = (0, 0, false, false);
        for header in headers {
            for (n, v) in pairs(header) {
                if n == name {
                    seen_value = true;
                    if self.plausible_value(v) {
                        if nv < V {
                            values[nv] = v;
                            nv += 1;
                        } else {
                            unchecked = true;
                        }
                    }
                } else if n == sig_name && !v.is_empty() && self.value_grip.is_some() {
                    if ns < S {
                        sigs[ns] = v;
                        ns += 1;
                    } else {
                        unchecked = true;
                    }
                }
            }
        }
        if !seen_value {
            return Incoming::None;
        }
        let sigs = &sigs[..ns];
        if self.value_grip.is_some() && sigs.is_empty() {
            return Incoming::MissingSignature;
        }
        // The first verified value stays inline: a request with one session cookie (nearly
        // all of them) allocates nothing here.
        let mut first: Option<Verified<'a>> = None;
        let mut more: Vec<Verified<'a>> = Vec::new();
        for value in &values[..nv] {
            let value = ascii(value);
            if first.iter().chain(&more).any(|v| v.value == value) {
                continue;
            }
            let found = match &self.value_grip {
                // Unsigned: every well-formed value is a candidate.
                None => Some(Verified {
                    value,
                    resign: false,
                    signature: None,
                }),
                Some(grip) => grip.verify_any(&[value.as_bytes()], sigs).map(|(m, at)| {
                    let newest = m == KeyMatch::Newest;
                    Verified {
                        value,
                        resign: !newest,
                        // A verified signature is our own base64url output, so ASCII.
                        signature: if newest {
                            std::str::from_utf8(sigs[at])
                                .ok()
                                .and_then(Signature::verified)
                        } else {
                            None
                        },
                    }
                }),
            };
            match (found, &first) {
                (Some(v), None) => first = Some(v),
                (Some(v), Some(_)) => more.push(v),
                (None, _) => {}
            }
        }
        match (first, unchecked) {
            (None, true) => Incoming::Ambiguous,
            (None, false) => Incoming::Invalid,
            (Some(only), false) if more.is_empty() => Incoming::Valid {
                value: only.value,
                resign: only.resign,
                signature: only.signature,
            },
            (Some(first), _) => {
                more.insert(0, first);
                Incoming::Candidates {
                    verified: more,
                    unchecked,
                }
            }
        }
    }

    fn plausible_value(&self, v: &[u8]) -> bool {
        self.options.name.len() + v.len() <= MAX_COOKIE_BYTES && is_cookie_value(v)
    }

    /// The `Set-Cookie` values that store `value`, expiring at `expire_ms` (ms since the epoch;
    /// `None` for a browser-session cookie). `secure` is whether this response's cookie gets
    /// `Secure` (see [`CookieOptions::secure_for`]).
    ///
    /// Sends both `Expires` and `Max-Age`, both clamped to 400 days from now so they agree.
    /// Errors if a cookie would exceed 4096 bytes or the value holds characters a cookie can't
    /// carry.
    pub fn write(
        &self,
        value: &str,
        expire_ms: Option<u64>,
        now_ms: u64,
        secure: bool,
    ) -> Result<SetCookies, CookieError> {
        self.write_reusing(value, expire_ms, now_ms, secure, None)
    }

    /// [`SessionCookies::write`], reusing `verified` = (value, its signature from
    /// [`Incoming::Valid`]) when `value` is that same value, which saves the HMAC when a session
    /// re-sends an unchanged id (every save and touch in store mode).
    pub fn write_reusing(
        &self,
        value: &str,
        expire_ms: Option<u64>,
        now_ms: u64,
        secure: bool,
        verified: Option<(&str, &Signature)>,
    ) -> Result<SetCookies, CookieError> {
        let name = &self.options.name;
        if name.len() + value.len() > MAX_COOKIE_BYTES {
            return Err(CookieError::TooLarge {
                name: name.clone(),
                size: name.len() + value.len(),
                limit: MAX_COOKIE_BYTES,
            });
        }
        if !is_cookie_value(value.as_bytes()) {
            return Err(CookieError::InvalidValue { name: name.clone() });
        }
        // `Expires` and `Max-Age` say the same: both end at the 400-day cap at the latest
        // (the session itself is clamped there too, see `session_core::driver::MAX_AGE_CAP_MS`).
        let lifetime = expire_ms.map(|e| {
            let e = e.min(now_ms.saturating_add(session_core::driver::MAX_AGE_CAP_MS));
            (e, e.saturating_sub(now_ms) / 1000)
        });
        // Both cookies carry the same attributes: formatted once.
        let attributes = self.attributes(lifetime, secure);
        let value_cookie = cookie(name, value, &attributes);
        let sig = match &self.value_grip {
            None => None,
            Some(grip) => {
                let sig = match verified {
                    Some((v, sig)) if v == value && sig.as_str().len() == grip.signature_len() => {
                        *sig
                    }
                    _ => grip.sign(value.as_bytes()),
                };
                // Only a name near 4 KiB can make this one too large, but it is checked too.
                let size = self.sig_name.len() + sig.as_str().len();
                if size > MAX_COOKIE_BYTES {
                    return Err(CookieError::TooLarge {
                        name: self.sig_name.clone(),
                        size,
                        limit: MAX_COOKIE_BYTES,
                    });
                }
                Some(cookie(&self.sig_name, sig.as_str(), &attributes))
            }
        };
        Ok(SetCookies {
            value: value_cookie,
            sig,
        })
    }

    /// Removal cookies for the session: empty value, `Max-Age=0`, `Expires` at the epoch, and
    /// the same Path, Domain, Secure, HttpOnly, SameSite and Partitioned as the session cookie,
    /// so the browser really drops it (also for `__Host-` names).
    pub fn removal(&self, secure: bool) -> SetCookies {
        let attributes = self.attributes(Some((0, 0)), secure);
        SetCookies {
            value: cookie(&self.options.name, "", &attributes),
            sig: self
                .grip
                .as_ref()
                .map(|_| cookie(&self.sig_name, "", &attributes)),
        }
    }

    /// The removal cookie for `NAME.sig` alone (sent when a signature matched no key).
    pub fn sig_removal(&self, secure: bool) -> String {
        cookie(&self.sig_name, "", &self.attributes(Some((0, 0)), secure))
    }

    /// A `Set-Cookie` value for a companion cookie, `NAME.suffix` (the CSRF nonce's), with the
    /// session cookie's attributes, expiring at `expire_ms` (`None`: a browser-session cookie;
    /// clamped to 400 days like the session's); `None` as the value removes it. The value must
    /// be a plain cookie value (the caller's own, e.g. base64url).
    pub fn companion(
        &self,
        suffix: &str,
        value: Option<&str>,
        expire_ms: Option<u64>,
        now_ms: u64,
        secure: bool,
    ) -> String {
        let name = format!("{}.{suffix}", self.options.name);
        let lifetime = expire_ms.map(|e| {
            let e = e.min(now_ms.saturating_add(session_core::driver::MAX_AGE_CAP_MS));
            (e, e.saturating_sub(now_ms) / 1000)
        });
        match value {
            Some(v) => cookie(&name, v, &self.attributes(lifetime, secure)),
            None => cookie(&name, "", &self.attributes(Some((0, 0)), secure)),
        }
    }

    /// The attributes of a `Set-Cookie` value (`; HttpOnly; ...`), written straight into a
    /// string in the `cookie` crate's order. The `cookie` crate's builder produced the same text
    /// in about ten times the time, mostly formatting `Expires` through `time`; the tests parse
    /// our output back with the `cookie` crate to keep the two in agreement.
    fn attributes(&self, lifetime: Option<(u64, u64)>, secure: bool) -> String {
        let o = &self.options;
        let mut out =
            String::with_capacity(o.path.len() + o.domain.as_ref().map_or(0, String::len) + 112);
        if o.http_only {
            out.push_str("; HttpOnly");
        }
        out.push_str(match o.same_site {
            SameSite::Strict => "; SameSite=Strict",
            SameSite::Lax => "; SameSite=Lax",
            SameSite::None => "; SameSite=None",
        });
        if o.partitioned {
            out.push_str("; Partitioned");
        }
        // Partitioned cookies must be Secure (browsers drop them otherwise).
        if secure || o.partitioned {
            out.push_str("; Secure");
        }
        out.push_str("; Path=");
        out.push_str(&o.path);
        if let Some(domain) = &o.domain {
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        if let Some((expire_ms, max_age)) = lifetime {
            // Expires must stay a 4-digit year: cap at 9999-12-31T23:59:59Z.
            let secs = (expire_ms / 1000).min(253_402_300_799);
            let when = httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs));
            out.push_str("; Max-Age=");
            push_u64(&mut out, max_age);
            let _ = write!(out, "; Expires={when}");
        }
        if let Some(p) = o.priority {
            out.push_str(match p {
                Priority::Low => "; Priority=Low",
                Priority::Medium => "; Priority=Medium",
                Priority::High => "; Priority=High",
            });
        }
        out
    }
}

/// One `Set-Cookie` value: `NAME=VALUE` and the attributes, in a string of exactly its size (so
/// it becomes a header value without another allocation).
fn cookie(name: &str, value: &str, attributes: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1 + value.len() + attributes.len());
    out.push_str(name);
    out.push('=');
    out.push_str(value);
    out.push_str(attributes);
    out
}

/// Decimal digits of `n`, without the formatting machinery.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// Values passed [`is_cookie_value`], so they are ASCII.
fn ascii(v: &[u8]) -> &str {
    std::str::from_utf8(v).unwrap_or_default()
}

#[cfg(test)]
mod tests;
