//! What a store tells the pool of its server: how a failed connect reads to the callers waiting
//! for a connection, whether the server's refusal holds new connects off, and what to log.

use std::time::Duration;

/// The store-specific half of the pool: everything that needs to know the store's client.
///
/// Every method is called synchronously from the pool's connect path or from bb8's error sink,
/// so each must be quick and must not block. A method that logs should name no address and no
/// credential: the pool hands it the client's error as it is.
pub trait Backend: Send + Sync + 'static {
    /// The store client's own error (a connect's, or a checkout test's).
    type Error: std::fmt::Debug + Send + 'static;

    /// What a failed connect says to the checkouts waiting for a connection: typically an
    /// outage (worth a retry later) or a refused login (that no retry mends), without the
    /// connection string.
    type Failure: Clone + Send + Sync + 'static;

    /// The failure `error` means to the waiting checkouts, given the one before it (`None` for
    /// the first), so that a run of the same refusal can be logged once rather than once per
    /// request.
    ///
    /// Called for every error bb8 hands its error sink: each failed connect, after its pool
    /// slot was given back, and each failed checkout test when `test_on_check_out` is on.
    fn failure(&self, error: &Self::Error, last: Option<&Self::Failure>) -> Self::Failure;

    /// How long the pool tries no new connect after this one failed, or `None` (the default)
    /// for no hold-off.
    ///
    /// Meant for a refusal by the server itself where each attempt costs it dearly (a server
    /// process, a password exchange): a pool that kept trying on every request would load a
    /// full or misconfigured server the most when it can least take it. Meanwhile checkouts
    /// get an open connection when there is one, or this failure at once.
    ///
    /// The hold-off is set inside the connect, before bb8 frees its slot (no other connect can
    /// begin in between), and only its time lifts it: a connect that succeeds meanwhile began
    /// before the refusal, so it says nothing of the server since.
    fn hold_off(&self, error: &Self::Error) -> Option<Duration> {
        let _ = error;
        None
    }

    /// A connect begins (none is held off). Called under the hold-off's lock, as is
    /// [`holding_off`](Backend::holding_off): events logged from both come in the order the
    /// pool checked and set the hold-off.
    fn connecting(&self) {}

    /// A failed connect holds new connects off (see [`hold_off`](Backend::hold_off)); called
    /// under the hold-off's lock, before the instant the hold-off counts from.
    fn holding_off(&self) {}
}
