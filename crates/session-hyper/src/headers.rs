//! The (at most two) headers a commit adds to a response, kept inline.

use http::{HeaderName, HeaderValue};

/// The (at most two) headers a commit adds: the cookie pair, or the external key header.
/// Kept inline: a `Vec` would cost an allocation on every request that sets a cookie.
#[derive(Default)]
pub(crate) struct Headers([Option<(HeaderName, HeaderValue)>; 2]);

impl Headers {
    pub(crate) fn one(name: HeaderName, value: &str) -> Self {
        let mut h = Self::default();
        // Ids are checked cookie-octets, so this only fails on a bug.
        if let Ok(v) = HeaderValue::from_str(value) {
            h.push(name, v);
        }
        h
    }

    pub(crate) fn push(&mut self, name: HeaderName, value: HeaderValue) {
        if let Some(slot) = self.0.iter_mut().find(|s| s.is_none()) {
            *slot = Some((name, value));
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(HeaderName, HeaderValue)> {
        self.0.iter().flatten()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

impl IntoIterator for Headers {
    type Item = (HeaderName, HeaderValue);
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<Self::Item>, 2>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().flatten()
    }
}
