//! What a request presented to the session layer (a cookie, or the external key header),
//! checked before the handler ran.

use session_core::driver::SessionId;

/// What the request presented (a cookie, or the external key header), checked before the
/// handler ran.
#[derive(Debug)]
pub(crate) enum Presented {
    /// Nothing usable.
    None,
    /// Store mode: signed, well-formed ids, in the order sent (nearly always one).
    Ids(Candidates<SessionId>),
    /// Cookie mode: signed payloads, in the order sent, decoded on first use.
    Payloads(Candidates<String>),
    /// More cookies of the session's name than are checked, none of the checked ones valid
    /// (cookie tossing): anonymous, and the client's cookies are left alone.
    Ambiguous,
}

/// One verified cookie value (or the external key's id).
#[derive(Debug)]
pub(crate) struct Candidate<T> {
    pub(crate) value: T,
    /// Signed with an older key: re-sign with the newest.
    pub(crate) resign: bool,
    /// The signature, when made with the newest key: sent again without recomputing it.
    pub(crate) signature: Option<session_cookie::Signature>,
}

/// The verified values of one request: the first live one is the session (a dead cookie
/// planted ahead of the real one must not end it).
#[derive(Debug)]
pub(crate) struct Candidates<T> {
    pub(crate) first: Candidate<T>,
    pub(crate) more: Vec<Candidate<T>>,
    /// More values were sent than are checked: if none of these is live, the request is
    /// ambiguous rather than a missed session.
    pub(crate) unchecked: bool,
}

impl<T> Candidates<T> {
    pub(crate) fn one(first: Candidate<T>) -> Self {
        Self {
            first,
            more: Vec::new(),
            unchecked: false,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Candidate<T>> {
        std::iter::once(&self.first).chain(&self.more)
    }
}

impl Presented {
    /// Whether a cookie was signed with an older key (it must be re-signed even if the handler
    /// never touches the session).
    pub(crate) fn needs_resign(&self) -> bool {
        match self {
            Presented::Ids(c) => c.iter().any(|c| c.resign),
            Presented::Payloads(c) => c.iter().any(|c| c.resign),
            Presented::None | Presented::Ambiguous => false,
        }
    }

    /// The newest-key signature the request brought for `id`, if any.
    pub(crate) fn signature_for(&self, id: &SessionId) -> Option<&session_cookie::Signature> {
        match self {
            Presented::Ids(c) => c
                .iter()
                .find(|c| c.value == *id)
                .and_then(|c| c.signature.as_ref()),
            _ => None,
        }
    }
}
