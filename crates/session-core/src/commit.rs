//! The commit decision: at the end of a request, what to write, as a pure function of the
//! session (its state at load and now), the options and the time.
//!
//! The table (each row is a unit test named after it, in this order; the first that applies
//! wins):
//!
//! | # | row | condition | action |
//! |---|-----|-----------|--------|
//! | 1 | `not_accessed` | the handler never touched the session | [`Action::Nothing`] |
//! | 1a | `stale` | the request carried an id a regenerate has just superseded, or too many session cookies to check, and the handler neither destroyed nor regenerated | [`Action::Nothing`]: no write, no cookie (not even a removal: the client may hold a newer cookie of the same name) |
//! | 2 | `retired_and_rewritten` | the old identity ends (destroy, regenerate, expired, invalid, missed) and the session must still be written (forced, or populated); also `regenerate()` of a session without an identity that holds data | [`Action::Regenerate`] if an old record exists, else [`Action::Create`] |
//! | 3 | `retired` | the old identity ends and nothing new is written (a destroy, or a regenerate of a session that holds nothing) | [`Action::Destroy`] (or nothing if the client sent no cookie and no record exists) |
//! | 4 | `forced` | `save()` or `set_max_age()` | [`Action::Create`] for a new session, else [`Action::Save`] |
//! | 5 | `new_and_empty` | new session, no data | [`Action::Nothing`]; in guest mode [`Action::WriteCookie`] for a visitor without a cookie |
//! | 6 | `changed` | data differs from load | [`Action::Create`] for a new session, else [`Action::Save`] |
//! | 7 | `rolling` | option `rolling` | [`Action::Touch`] |
//! | 8 | `renew` | option `renew` and `_expire - now < maxAge / 2` (strict) | [`Action::Touch`] |
//! | 9 | `resign` | the cookie verified with an older key | [`Action::WriteCookie`] |
//! | 10 | `unchanged` | otherwise | [`Action::Nothing`] |
//!
//! Rows 7 and 8 are skipped when the absolute lifetime already caps `_expire` where it is, since
//! a write would change nothing; they then fall through to row 9. Row 7 also applies when the
//! expiry has not moved yet (a request in the same millisecond as the write before it), once
//! per request (not again after an early commit of the same request, `Session::commit` in
//! session-hyper).
//!
//! Every response that sends an existing session's cookie again (rows 4, 6 to 9) makes a store
//! call that only succeeds on a live record that no regenerate has superseded. A response that
//! re-sent the old cookie without asking the store could reach the browser after a concurrent
//! login's response and put the pre-login cookie back (logging the user out); with the store
//! call, such a request learns the id was superseded and sends nothing.

use crate::config::Config;
use crate::expiry::{STORE_TTL_MARGIN_MS, extend};
use crate::owner::{Binding, index_slack_ms};
use crate::record::{MaxAge, Meta};
use crate::session::{Retired, SessionState};

/// What the commit must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: no cookie, no store call.
    Nothing,
    /// Send the session cookie again without changing the session: a guest cookie (no record,
    /// no store call), or the same id re-signed with the newest key (store mode: after a TTL
    /// touch that keeps the current expiry and confirms the record is live and not superseded).
    /// In cookie mode the payload is re-sent as it is.
    WriteCookie,
    /// Store mode: insert a new record (insert-if-absent; on collision draw a new id) and send its
    /// cookie. Cookie mode: send the payload cookie.
    Create,
    /// Store mode: update the existing record (update-if-present, with the delta) and send the
    /// cookie; if the record is gone (destroyed meanwhile), do not bring it back. Cookie mode:
    /// send the payload cookie.
    Save,
    /// Store mode: extend the record's TTL and `_expire` without rewriting the data, and send the
    /// cookie with the new expiry. Cookie mode: send the payload cookie.
    Touch,
    /// Delete the old record (if [`Retired::record_exists`]) and send removal cookies.
    Destroy,
    /// Create the new record, then end the old one (replaced by a supersede marker after a
    /// `regenerate()`, deleted otherwise), and send the new cookie.
    Regenerate,
}

/// Which row of the table decided, for tests and tracing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// Row 1.
    NotAccessed,
    /// Row 1a.
    Stale,
    /// Row 2.
    RetiredAndRewritten,
    /// Row 3.
    Retired,
    /// Row 4.
    Forced,
    /// Row 5.
    NewAndEmpty,
    /// Row 6.
    Changed,
    /// Row 7.
    Rolling,
    /// Row 8.
    Renew,
    /// Row 9.
    Resign,
    /// Row 10.
    Unchanged,
}

/// The decision, with everything the write needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What to do.
    pub action: Action,
    /// Which rule decided.
    pub row: Row,
    /// The koa fields to write (new `_expire` for writes; the current ones for
    /// [`Action::WriteCookie`]); meaningless for `Nothing` and `Destroy`.
    pub meta: Meta,
    /// Store TTL in ms for the write (always > 0): the record outlives the cookie by 10 s.
    pub ttl_ms: u64,
    /// The identity to end, for `Destroy` and `Regenerate` (and a `Create` that replaces one).
    pub retire: Option<Retired>,
    /// Store mode, a session bound to an owner: file it in the owner's index (to last until
    /// [`Binding::indexed_until`]) *before* the write, so a live owned session is always
    /// listed. Set when the session was just bound or regenerated, or when the write moves
    /// the record's expiry past its entry's; `None` otherwise (no index call).
    pub index: Option<Binding>,
    /// Whether [`Plan::index`] files a session new to the owner's index (just bound, or
    /// regenerated: a login), which a session limit admits, rather than extending an entry's
    /// time.
    pub index_new: bool,
    /// Store mode: whether the response sends the session cookie. False only for a save of an
    /// existing session whose cookie would stay the same but for an expiry moved by less than
    /// the refresh threshold ([`ConfigBuilder::cookie_refresh`](crate::ConfigBuilder::cookie_refresh)).
    /// Cookie mode always sends its cookie when it writes.
    pub send_cookie: bool,
}

/// Decides the commit. `session` is `None` when the handler never touched it.
///
/// Pure: the same inputs always give the same plan; nothing is written here. Call
/// [`prepare`] instead to also run the `before_save` hook.
pub fn decide(session: Option<&SessionState>, config: &Config, now: u64) -> Plan {
    let Some(s) = session else {
        return nothing(Row::NotAccessed, None);
    };
    let fresh = fresh_meta(s, config, now);
    let write = |action, row| Plan {
        action,
        row,
        meta: fresh.0,
        ttl_ms: fresh.1,
        retire: s.retired().cloned(),
        index: None,
        index_new: false,
        // A save sends the cookie when its expiry moves a step, when it carries a new max-age,
        // or when it came signed with an older key (re-signed now, not a step later).
        send_cookie: action != Action::Save
            || s.needs_resign()
            || s.max_age_was_set()
            || cookie_moves(s.meta(), &fresh.0, config),
    };
    let is_new = s.is_new() && s.id().is_none();
    if s.is_stale() && s.retired().is_none() && !s.wants_regenerate() {
        return nothing(Row::Stale, None);
    }
    if let Some(retired) = s.retired() {
        if s.is_forced() || s.is_populated() {
            let action = if retired.record_exists {
                Action::Regenerate
            } else {
                Action::Create
            };
            return write(action, Row::RetiredAndRewritten);
        }
        if retired.record_exists || s.had_cookie() {
            return write(Action::Destroy, Row::Retired);
        }
        return nothing(Row::Retired, None);
    }
    if s.wants_regenerate() && (s.is_forced() || s.is_populated()) {
        // regenerate() on a session that never had an identity: just create it.
        return write(Action::Create, Row::RetiredAndRewritten);
    }
    let create_or_save = if s.is_new() {
        Action::Create
    } else {
        Action::Save
    };
    if s.is_forced() {
        return write(create_or_save, Row::Forced);
    }
    if s.is_new() && !s.is_populated() {
        if config.guest && is_new && !s.had_cookie() {
            return write(Action::WriteCookie, Row::NewAndEmpty);
        }
        return nothing(Row::NewAndEmpty, None);
    }
    if s.has_changed() {
        return write(create_or_save, Row::Changed);
    }
    let extends = fresh.0.expire != s.meta().expire || s.meta().expire.is_none();
    // Only the absolute lifetime holds `_expire` where it is (a write would change nothing);
    // an expiry that merely has not moved yet (a request in the same millisecond as the last
    // write) is still rolled: `rolling` re-sends the cookie on every response, once (not again
    // after an early `commit()` of the same request).
    if config.rolling && !s.was_written() && (extends || !capped(s, config, now)) {
        return write(Action::Touch, Row::Rolling);
    }
    if config.renew
        && extends
        && let (Some(expire), MaxAge::Ms(max_age)) = (s.meta().expire, s.meta().max_age)
        && (expire as i128 - now as i128) < (max_age / 2) as i128
    {
        return write(Action::Touch, Row::Renew);
    }
    if s.needs_resign() {
        // The same expiry: the store's TTL is the time left (plus the margin), not extended.
        let ttl_ms = match s.meta().expire {
            Some(expire) => expire
                .saturating_sub(now)
                .saturating_add(STORE_TTL_MARGIN_MS),
            None => fresh.1,
        };
        return Plan {
            action: Action::WriteCookie,
            row: Row::Resign,
            meta: *s.meta(),
            ttl_ms,
            retire: None,
            index: None,
            index_new: false,
            send_cookie: true,
        };
    }
    nothing(Row::Unchanged, None)
}

/// [`decide`], then, when the plan writes the session, the app's `before_save` hook; a hook that
/// changes the data turns a `Touch` into a `Save` (and a `WriteCookie` for a guest into a
/// `Create`).
pub fn prepare(session: Option<&mut SessionState>, config: &Config, now: u64) -> Plan {
    let Some(s) = session else {
        return decide(None, config, now);
    };
    let mut plan = decide(Some(s), config, now);
    let writes = matches!(
        plan.action,
        Action::Create | Action::Save | Action::Touch | Action::Regenerate
    );
    if writes {
        config.hooks.run_before_save(s);
        let again = decide(Some(s), config, now);
        if again.action != plan.action && again.action != Action::Nothing {
            plan = again;
        }
    }
    plan_index(&mut plan, s, now);
    plan
}

/// Adds the owner-index write a plan needs: when the session is bound and was just bound or
/// regenerated, or the write would move the record's expiry (`now + ttl`) past its index
/// entry's. The entry then runs [`index_slack_ms`] ahead of the record, so a rolling session
/// rewrites it at most once per slack. A TTL extension that needs it becomes a save (the
/// record carries the entry's new time).
fn plan_index(plan: &mut Plan, s: &mut SessionState, now: u64) {
    let writes_record = match plan.action {
        Action::Create | Action::Save | Action::Touch | Action::Regenerate => true,
        // A re-sign of an existing session extends its TTL to where it was (a guest cookie
        // has no binding).
        Action::WriteCookie => true,
        Action::Nothing | Action::Destroy => false,
    };
    let Some(binding) = s.binding().filter(|_| writes_record) else {
        return;
    };
    let record_until = now.saturating_add(plan.ttl_ms);
    let fresh = s.has_owner_change() || plan.action == Action::Regenerate;
    if !fresh && binding.indexed_until >= record_until {
        return;
    }
    let until = record_until.saturating_add(index_slack_ms(plan.ttl_ms));
    s.note_indexed(until, now);
    plan.index = s.binding().cloned();
    plan.index_new = fresh;
    if matches!(plan.action, Action::Touch | Action::WriteCookie) {
        plan.action = Action::Save;
    }
}

fn nothing(row: Row, retire: Option<Retired>) -> Plan {
    Plan {
        action: Action::Nothing,
        row,
        meta: Meta {
            expire: None,
            max_age: MaxAge::Session,
            created: None,
        },
        ttl_ms: 0,
        retire,
        send_cookie: false,
        index: None,
        index_new: false,
    }
}

/// The koa fields and store TTL of a write made now: `_expire = now + maxAge`, capped by the
/// absolute lifetime; TTL = time left + 10 s (a browser-session record lives the session TTL).
/// Whether a save that moves the session from `old` to `new` changes its cookie beyond the
/// refresh threshold: another max-age, another browser-session flag, or an expiry in another
/// step of `threshold × max-age`. So the cookie the browser holds never expires a full step
/// before the record, and a busy session re-sends it about once per step.
pub(crate) fn cookie_moves(old: &Meta, new: &Meta, config: &Config) -> bool {
    if config.refresh_ppm == 0 || config.rolling || old.max_age != new.max_age {
        return true;
    }
    match (old.expire, new.expire, new.max_age) {
        (None, None, _) => false,
        (Some(old), Some(new), MaxAge::Ms(max_age)) => {
            let step =
                u64::try_from(u128::from(max_age) * u128::from(config.refresh_ppm) / 1_000_000)
                    .unwrap_or(u64::MAX)
                    .max(1);
            old / step != new / step
        }
        _ => true,
    }
}

/// Whether the absolute lifetime caps the session's expiry at `now`: a write made now could not
/// move it.
fn capped(s: &SessionState, config: &Config, now: u64) -> bool {
    match (
        config.absolute_lifetime_ms,
        s.meta().created,
        s.meta().expire,
    ) {
        (Some(abs), Some(created), Some(expire)) => expire >= created.saturating_add(abs).max(now),
        _ => false,
    }
}

fn fresh_meta(s: &SessionState, config: &Config, now: u64) -> (Meta, u64) {
    extend(
        s.meta(),
        config.absolute_lifetime_ms,
        config.session_ttl_ms,
        now,
    )
}

#[cfg(test)]
mod tests;
