//! The time rules, as pure functions of a record's koa fields and the clock: when a session has
//! expired, what a write made now stores, and which signed payloads claim more life than this
//! server ever writes.

use std::time::Duration;

use crate::record::{MaxAge, Meta};

/// One day in milliseconds: koa's default `maxAge`.
pub const ONE_DAY_MS: u64 = 86_400_000;
/// Extra store lifetime beyond the cookie's, so the record outlives the cookie (koa's 10 s).
pub const STORE_TTL_MARGIN_MS: u64 = 10_000;
/// Browsers cap a cookie's lifetime at 400 days; a longer max-age is clamped to this everywhere
/// (`Max-Age`, `Expires`, `_expire` and the store TTL), so they all agree.
pub const MAX_AGE_CAP_MS: u64 = 400 * ONE_DAY_MS;
/// How far ahead of the clock a signed cookie-mode `_expire` may lie beyond its max-age (or a
/// `_created` lie beyond now) before the payload is treated as tampered: room for app servers
/// whose clocks disagree.
pub const CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// Default lifetime of the marker a regenerate leaves under the old id (see
/// [`ConfigBuilder::supersede_grace`](crate::ConfigBuilder::supersede_grace)).
pub const DEFAULT_SUPERSEDE_GRACE: Duration = Duration::from_secs(60);
/// The longest [`ConfigBuilder::supersede_grace`](crate::ConfigBuilder::supersede_grace)
/// accepted: one day (the marker only has to outlast the requests in flight around a login).
pub const MAX_SUPERSEDE_GRACE: Duration = Duration::from_secs(86_400);
/// The longest TTL a store keeps a key for: a store clamps any longer one to this, so no key
/// lives forever whatever a caller asks. Ten years, far beyond anything the middleware writes
/// (at most 400 days and 10 s).
pub const MAX_STORE_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// `_expire` passed (strictly, as koa), or the absolute lifetime from `_created` ran out.
pub(crate) fn expired(meta: &Meta, absolute_ms: Option<u64>, now: u64) -> bool {
    if meta.expire.is_some_and(|e| e < now) {
        return true;
    }
    match (absolute_ms, meta.created) {
        (Some(cap), Some(created)) => created.saturating_add(cap) < now,
        _ => false,
    }
}

/// A cookie-mode payload whose `_expire` lies further ahead than its max-age allows, or whose
/// `_created` lies in the future (beyond the clock skew allowed between app servers).
pub(crate) fn from_the_future(meta: &Meta, session_ttl_ms: u64, now: u64) -> bool {
    let life = match meta.max_age {
        MaxAge::Ms(ms) => ms.min(MAX_AGE_CAP_MS),
        MaxAge::Session => session_ttl_ms,
    };
    let latest = now.saturating_add(life).saturating_add(CLOCK_SKEW_MS);
    meta.expire.is_some_and(|e| e > latest)
        || meta
            .created
            .is_some_and(|c| c > now.saturating_add(CLOCK_SKEW_MS))
}

/// The koa fields and store TTL (ms) of a session written (or rolled) at `now`: `_expire =
/// now + maxAge`, capped by the absolute lifetime from `_created`; the TTL is the time left
/// plus 10 s, or the session TTL for a browser-session record. A max-age beyond the browsers'
/// 400 days (a record written by another program) is clamped to it, so `Expires`, `Max-Age`,
/// `_expire` and the TTL agree.
pub(crate) fn extend(
    meta: &Meta,
    absolute_ms: Option<u64>,
    session_ttl_ms: u64,
    now: u64,
) -> (Meta, u64) {
    let created = meta.created.unwrap_or(now);
    let cap = absolute_ms.map(|abs| created.saturating_add(abs).max(now));
    let max_age = match meta.max_age {
        MaxAge::Ms(ms) => MaxAge::Ms(ms.min(MAX_AGE_CAP_MS)),
        MaxAge::Session => MaxAge::Session,
    };
    let (expire, life) = match max_age {
        MaxAge::Ms(ms) => {
            let mut expire = now.saturating_add(ms);
            if let Some(cap) = cap {
                expire = expire.min(cap);
            }
            (Some(expire), expire - now)
        }
        MaxAge::Session => {
            let mut life = session_ttl_ms;
            if let Some(cap) = cap {
                life = life.min(cap - now);
            }
            (None, life)
        }
    };
    let meta = Meta {
        expire,
        max_age,
        // Only carried when a cap is configured, so koa-format bytes stay koa's otherwise.
        created: absolute_ms.map(|_| created),
    };
    (meta, life.saturating_add(STORE_TTL_MARGIN_MS))
}
