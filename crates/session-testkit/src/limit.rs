//! Logins racing a session limit, on any store whose owner index can enforce one: the storm of
//! `session-hyper/tests/session_limit.rs` (memory, Redis, Redis Cluster) and
//! `session-store-postgres/tests/session_limit.rs` (PostgreSQL), here so that every store meets
//! the same one.
//!
//! In each round a fresh owner's browsers (each with a session of its own holding data) all log
//! in at once against a limit, while a poller lists the owner's sessions. Then every browser
//! says who it is and why its session ended, if it did.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::Value;
use session_core::store::Store;
use session_core::{Config, EventKind, Hooks, OverLimit, SessionLimit};
use session_hyper::SessionLayer;

use crate::app::owner_url;
use crate::capture::KEY1;
use crate::client::{browser, get};

/// What the rounds saw; every count is over all rounds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Storm {
    /// Logins answered 200.
    pub admitted: usize,
    /// Logins answered 409.
    pub refused: usize,
    /// Rounds that left exactly the limit's sessions live (logged in, and listed).
    pub exact_rounds: usize,
    /// Browsers whose session a limit ended and whose next request was anonymous and told so.
    pub told_ended: usize,
    /// `session:ended` events raised.
    pub events: usize,
    /// The most sessions a listing showed at once, during or after a storm.
    pub most_listed: usize,
    /// Refused logins that changed the browser's session (a cookie set or removed, data lost,
    /// or bound): must be none.
    pub refusals_that_changed_something: usize,
    /// Browsers logged in but not listed, listed but anonymous, or ended without being told:
    /// must be none.
    pub mismatches: usize,
    /// Any other answer (a 5xx): must be none.
    pub errors: usize,
}

impl Storm {
    /// Panics unless the rounds kept every promise of the limit.
    pub fn assert_clean(
        &self,
        label: &str,
        rounds: usize,
        logins: usize,
        max: usize,
        policy: OverLimit,
    ) {
        eprintln!(
            "{label}: {rounds} rounds of {logins} logins, limit {max} ({policy:?}): {self:?}"
        );
        assert_eq!(self.errors, 0, "{label}: {self:?}");
        assert_eq!(self.exact_rounds, rounds, "{label}: {self:?}");
        assert!(
            self.most_listed <= max,
            "{label}: a listing showed more than {max}: {self:?}"
        );
        assert_eq!(self.mismatches, 0, "{label}: {self:?}");
        assert_eq!(self.refusals_that_changed_something, 0, "{label}: {self:?}");
        match policy {
            OverLimit::Refuse => {
                assert_eq!(self.admitted, rounds * max, "{label}: {self:?}");
                assert_eq!(self.refused, rounds * (logins - max), "{label}: {self:?}");
                assert_eq!(self.told_ended, 0, "{label}: {self:?}");
            }
            _ => {
                assert_eq!(self.admitted, rounds * logins, "{label}: {self:?}");
                assert_eq!(
                    self.told_ended,
                    rounds * (logins - max),
                    "{label}: {self:?}"
                );
                assert_eq!(self.events, self.told_ended, "{label}: {self:?}");
            }
        }
    }
}

/// `rounds` storms of `logins` concurrent logins of one owner against a limit of `max` with
/// `policy`, on `store`.
pub async fn storm<S: Store>(
    store: S,
    policy: OverLimit,
    rounds: usize,
    logins: usize,
    max: usize,
) -> Storm {
    let events = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&events);
    let hooks = Hooks::new().on_event(move |e| {
        if matches!(e.kind, EventKind::Ended(_)) {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    let config = Config::builder()
        .key(KEY1.to_vec())
        .hooks(hooks)
        .build()
        .unwrap();
    let limit = SessionLimit::new(max, policy).unwrap();
    let layer = SessionLayer::store(config, store)
        .max_sessions_per_owner(limit)
        .build()
        .unwrap();
    let url = crate::app::serve(layer).await;
    let mut t = Storm::default();
    for _ in 0..rounds {
        round(&url, logins, max, &mut t).await;
    }
    t.events = events.load(Ordering::Relaxed);
    t
}

/// The owner's sessions as a listing shows them.
async fn listed(url: &str, owner: &str) -> Option<Vec<Value>> {
    let r = get(&browser(), &owner_url(url, owner, None)).await;
    serde_json::from_str::<Vec<Value>>(&r.body).ok()
}

async fn round(url: &str, logins: usize, max: usize, t: &mut Storm) {
    let owner = crate::values::unique("limit");
    let browsers: Vec<reqwest::Client> = (0..logins).map(|_| browser()).collect();
    // Each browser has a session with data before it logs in.
    for (i, b) in browsers.iter().enumerate() {
        let r = get(b, &format!("{url}/set?pre={i}")).await;
        assert_eq!(r.status, 200, "setting up: {}", r.body);
    }
    let done = AtomicBool::new(false);
    let poll = async {
        let mut most = 0;
        while !done.load(Ordering::Relaxed) {
            if let Some(l) = listed(url, &owner).await {
                most = most.max(l.len());
            }
        }
        most
    };
    let login = format!("{url}/login?owner={owner}");
    let storm = async {
        let replies = futures_util::future::join_all(browsers.iter().map(|b| get(b, &login))).await;
        done.store(true, Ordering::Relaxed);
        replies
    };
    let (replies, most) = tokio::join!(storm, poll);
    t.most_listed = t.most_listed.max(most);
    let mut live = 0;
    for (i, (b, r)) in browsers.iter().zip(&replies).enumerate() {
        let status: Value = serde_json::from_str(&get(b, &format!("{url}/status")).await.body)
            .unwrap_or(Value::Null);
        let user = status["user"].as_str();
        match r.status {
            200 => {
                t.admitted += 1;
                match (user, status["ended"].as_str()) {
                    (Some(u), None) if u == owner => live += 1,
                    (None, Some("newer-login")) => t.told_ended += 1,
                    _ => t.mismatches += 1,
                }
            }
            409 => {
                t.refused += 1;
                // Exactly as before: no cookie set or removed, the data kept, not logged in.
                let data: Value = serde_json::from_str(&get(b, &format!("{url}/read")).await.body)
                    .unwrap_or(Value::Null);
                let kept = data == serde_json::json!({ "pre": i.to_string() });
                if !r.set_cookies.is_empty() || !kept || user.is_some() {
                    t.refusals_that_changed_something += 1;
                }
            }
            _ => t.errors += 1,
        }
    }
    let now_listed = listed(url, &owner).await.map_or(usize::MAX, |l| l.len());
    t.most_listed = t.most_listed.max(now_listed);
    if live == max && now_listed == max {
        t.exact_rounds += 1;
    } else if now_listed != live {
        t.mismatches += 1;
    }
}
