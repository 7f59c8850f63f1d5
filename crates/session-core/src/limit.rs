//! Limits on an owner's sessions: the limit and its policy, what an admission into an owner's
//! index asks and answers (see [`OwnerIndex::admit`](crate::store::OwnerIndex::admit)), the
//! decision stores that decide in Rust share, and the marker record a session ended by a limit
//! leaves under its key.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::owner::{
    CLOCK_SKEW_ALLOWANCE_MS, Handle, IN_FLIGHT_GRACE_MS, IndexEntry, Indexed, MAX_SESSION_LIMIT,
    OwnerError,
};

/// The reserved record key that marks a session a limit ended: the marker record a limit
/// leaves under the ended session's key holds only this ([`EndedMarker`]).
pub const ENDED_KEY: &str = "_ended";

/// What the marker record of an ended session says: why, and which session (its handle and
/// owner), so the request that brings it can raise an event naming them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedMarker {
    /// Why the session ended ([`EndReason::name`](crate::EndReason::name)).
    #[serde(rename = "r")]
    pub reason: String,
    /// The session's handle.
    #[serde(rename = "h")]
    pub handle: Handle,
    /// The owner it was bound to.
    #[serde(rename = "o")]
    pub owner: String,
}

impl fmt::Debug for EndedMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndedMarker")
            .field("reason", &self.reason)
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl EndedMarker {
    /// The marker record's data.
    pub fn to_data(&self) -> crate::record::Data {
        let mut data = crate::record::Data::new();
        data.insert(
            ENDED_KEY.to_owned(),
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null),
        );
        data
    }

    /// The marker stored data carries, if it is one (anything else under the key is not).
    pub fn from_data(data: &crate::record::Data) -> Option<EndedMarker> {
        EndedMarker::deserialize(data.get(ENDED_KEY)?).ok()
    }
}

/// What a login does when its owner already has as many sessions as the limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverLimit {
    /// The login is refused (a typed error, 409 by default); the browser keeps the session it
    /// had.
    Refuse,
    /// The owner's session bound earliest ends (as many as it takes), and the login goes on.
    EndOldest,
}

/// A limit on the sessions one owner may have at once, and what a login over it does.
///
/// ```
/// use session_core::{OverLimit, SessionLimit};
/// let limit = SessionLimit::new(3, OverLimit::EndOldest).unwrap();
/// assert_eq!((limit.max(), limit.policy()), (3, OverLimit::EndOldest));
/// assert!(SessionLimit::new(0, OverLimit::Refuse).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    max: usize,
    policy: OverLimit,
}

impl SessionLimit {
    /// At most `max` sessions per owner (1 to [`MAX_SESSION_LIMIT`]).
    pub fn new(max: usize, policy: OverLimit) -> Result<SessionLimit, OwnerError> {
        if max == 0 || max > MAX_SESSION_LIMIT {
            return Err(OwnerError::BadLimit);
        }
        Ok(SessionLimit { max, policy })
    }

    /// The most sessions an owner may have.
    pub fn max(&self) -> usize {
        self.max
    }

    /// What a login over the limit does.
    pub fn policy(&self) -> OverLimit {
        self.policy
    }
}

/// What [`OwnerIndex::admit`](crate::store::OwnerIndex::admit) is asked to do with an entry.
#[derive(Debug, Clone, Copy)]
pub enum Admit<'a> {
    /// Rewrite the entry only if the index has it (a session admitted before, its time
    /// extended): an entry a limit removed never comes back this way.
    Refresh,
    /// File the entry under a limit (a login).
    Limit {
        /// The limit.
        limit: SessionLimit,
        /// The handle of the session this one replaces (a regenerate of a bound session): if
        /// the index has it, the entry is filed uncounted (the two are one session for a
        /// moment, whatever the limit is now); if not (a limit removed it), nothing is filed
        /// and the answer is [`Admitted::Absent`].
        replaces: Option<&'a Handle>,
        /// Entries the caller found dead (their record gone; see [`Indexed::is_dead`]):
        /// removed before counting.
        lapsed: &'a [Handle],
        /// `false`: a probe. An entry that fits is filed; one that does not writes nothing and
        /// answers [`Admitted::Full`] with the entries counted, so the caller can look for
        /// dead ones and ask again. `true`: the decision, by the limit's policy.
        decide: bool,
    },
}

/// What [`OwnerIndex::admit`](crate::store::OwnerIndex::admit) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// The entry was filed (or rewritten: it was there already, and counted once).
    Filed,
    /// The entry was filed after these entries, bound earliest, were removed to make room
    /// ([`OverLimit::EndOldest`]); the caller ends their sessions.
    Ended(Vec<IndexEntry>),
    /// [`Admit::Refresh`] of an entry the index does not have, or an admission whose
    /// [`replaces`](Admit::Limit::replaces) it does not have: nothing was written.
    Absent,
    /// Nothing was written: the owner has as many entries as the limit allows (a probe, or
    /// [`OverLimit::Refuse`]). These are the entries counted.
    Full(Vec<IndexEntry>),
}

/// The decision of an admission, for a store that decides in Rust (under its own lock or
/// transaction): given the owner's entries left after dropping the lapsed ones and those named
/// in [`Admit::Limit::lapsed`], what to write. Redis's script makes the same decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write the entry (add it, or rewrite it with its time never shortened).
    Write,
    /// Remove these entries, then add the entry: answer [`Admitted::Ended`] with them.
    Replace(Vec<IndexEntry>),
    /// Write nothing: answer this.
    Answer(Admitted),
}

/// Decides an admission of `entry` into an owner's `present` entries (see [`Decision`]).
///
/// ```
/// use session_core::store::{Admit, Admitted, Decision, IndexEntry, StoreKey, decide};
/// use session_core::{OverLimit, SessionLimit};
/// let e = |k: &str, since| IndexEntry::new(StoreKey::from_raw(k), since, since, None);
/// let present = [e("a", 1), e("b", 2)];
/// let limit = SessionLimit::new(2, OverLimit::EndOldest).unwrap();
/// let how = Admit::Limit { limit, replaces: None, lapsed: &[], decide: true };
/// assert_eq!(decide(&present, &e("c", 3), how), Decision::Replace(vec![e("a", 1)]));
/// assert_eq!(decide(&present, &e("b", 2), how), Decision::Write);
/// assert_eq!(decide(&present, &e("c", 3), Admit::Refresh), Decision::Answer(Admitted::Absent));
/// ```
pub fn decide<'a>(
    present: impl IntoIterator<Item = &'a IndexEntry>,
    entry: &IndexEntry,
    how: Admit<'_>,
) -> Decision {
    let present: Vec<&IndexEntry> = present.into_iter().collect();
    if present.iter().any(|e| e.handle == entry.handle) {
        return Decision::Write;
    }
    let Admit::Limit {
        limit,
        replaces,
        decide,
        ..
    } = how
    else {
        return Decision::Answer(Admitted::Absent);
    };
    if let Some(replaced) = replaces {
        // A regenerate of a filed session takes its place, uncounted; one whose entry is gone
        // (a limit removed it) is not filed again.
        return if present.iter().any(|e| &e.handle == replaced) {
            Decision::Write
        } else {
            Decision::Answer(Admitted::Absent)
        };
    }
    let mut counted: Vec<&IndexEntry> = present.into_iter().collect();
    if counted.len() < limit.max() {
        return Decision::Write;
    }
    if !decide || limit.policy() == OverLimit::Refuse {
        return Decision::Answer(Admitted::Full(counted.into_iter().cloned().collect()));
    }
    counted.sort_by(|a, b| a.since.cmp(&b.since).then_with(|| a.handle.cmp(&b.handle)));
    let excess = counted.len() + 1 - limit.max();
    Decision::Replace(counted.into_iter().take(excess).cloned().collect())
}

impl Indexed {
    /// Whether this entry's session is over: no live record is under its key (destroyed,
    /// expired, superseded) and it is not a login still creating it (its entry was written
    /// more than [`IN_FLIGHT_GRACE_MS`] ago, or longer ago than its record could have lived,
    /// by the writer's clock: `now` is the caller's, which may run ahead of the writer's by up
    /// to [`CLOCK_SKEW_ALLOWANCE_MS`]). A dead entry never counts against a limit; a young
    /// entry without a record does, since its login may be about to create the record.
    pub fn is_dead(&self, now: u64) -> bool {
        if self.record_ttl.is_some() {
            return false;
        }
        let age = now
            .saturating_sub(self.entry.seen)
            .saturating_sub(CLOCK_SKEW_ALLOWANCE_MS);
        age > IN_FLIGHT_GRACE_MS || age > record_ttl_of(self.until.saturating_sub(self.entry.seen))
    }
}

/// The record TTL an entry written with `span = until - seen` was filed for: the inverse of
/// `ttl + index_slack_ms(ttl)` (an entry whose time was raised by a later write reads longer,
/// which only keeps it counted longer).
fn record_ttl_of(span: u64) -> u64 {
    if span <= 11_000 {
        span.saturating_sub(1_000)
    } else if span <= 6_600_000 {
        span / 11 * 10
    } else {
        span - 600_000
    }
}
