//! A stored JSON object with a delta applied, written in one streaming pass.
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use session_core::store::{Delta, StoreError};

/// `blob` (a JSON object) with `delta.removed` dropped and `delta.set` applied: a set key
/// keeps its place, new keys go at the end, untouched values are copied byte for byte.
pub(crate) fn apply(blob: &[u8], delta: &Delta) -> Result<Box<[u8]>, StoreError> {
    let extra: usize = delta.set.iter().map(|(k, _)| k.len() + 16).sum();
    let mut out = Vec::with_capacity(blob.len() + extra);
    let mut seen_small = [false; 16];
    let mut seen_big = Vec::new();
    let seen: &mut [bool] = if delta.set.len() <= seen_small.len() {
        &mut seen_small[..delta.set.len()]
    } else {
        seen_big.resize(delta.set.len(), false);
        &mut seen_big
    };
    out.push(b'{');
    let mut first = true;
    let mut de = serde_json::Deserializer::from_slice(blob);
    Merge {
        out: &mut out,
        delta,
        lookup: &Lookup::new(delta),
        seen: &mut *seen,
        first: &mut first,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| corrupt(&e))?;
    for ((name, value), done) in delta.set.iter().zip(seen.iter()) {
        if !*done {
            pair(&mut out, &mut first, name, value)?;
        }
    }
    out.push(b'}');
    Ok(out.into_boxed_slice())
}

fn pair(
    out: &mut Vec<u8>,
    first: &mut bool,
    name: &str,
    value: &(impl serde::Serialize + ?Sized),
) -> Result<(), StoreError> {
    if !std::mem::take(first) {
        out.push(b',');
    }
    let encoded = serde_json::to_writer(&mut *out, name).and_then(|()| {
        out.push(b':');
        serde_json::to_writer(&mut *out, value)
    });
    encoded.map_err(|e| StoreError::Backend(format!("could not encode session value: {e}")))
}

/// Above this many changed keys, a delta's keys are found through a hash index instead of a
/// scan: a save that changes thousands of keys would otherwise cost stored × changed string
/// comparisons under the shard's lock.
const INDEX_ABOVE: usize = 16;

/// Where a stored key stands in the delta.
enum Lookup<'x> {
    Scan(&'x Delta),
    Index {
        set: HashMap<&'x str, usize>,
        removed: HashSet<&'x str>,
    },
}

impl<'x> Lookup<'x> {
    fn new(delta: &'x Delta) -> Self {
        if delta.set.len() + delta.removed.len() <= INDEX_ABOVE {
            return Lookup::Scan(delta);
        }
        let mut set = HashMap::with_capacity(delta.set.len());
        for (i, (name, _)) in delta.set.iter().enumerate() {
            // The first of repeated names wins, as the scan finds it.
            set.entry(name.as_str()).or_insert(i);
        }
        let removed = delta.removed.iter().map(String::as_str).collect();
        Lookup::Index { set, removed }
    }

    fn is_removed(&self, key: &str) -> bool {
        match self {
            Lookup::Scan(d) => d.removed.iter().any(|r| r == key),
            Lookup::Index { removed, .. } => removed.contains(key),
        }
    }

    /// The index in `delta.set` of the new value of `key`, if it has one.
    fn set_index(&self, key: &str) -> Option<usize> {
        match self {
            Lookup::Scan(d) => d.set.iter().position(|(n, _)| n == key),
            Lookup::Index { set, .. } => set.get(key).copied(),
        }
    }
}

struct Merge<'x> {
    out: &'x mut Vec<u8>,
    delta: &'x Delta,
    lookup: &'x Lookup<'x>,
    seen: &'x mut [bool],
    first: &'x mut bool,
}

impl<'de> DeserializeSeed<'de> for Merge<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Merge<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            let raw: &'de RawValue = map.next_value()?;
            if self.lookup.is_removed(&k) {
                continue;
            }
            let result = match self.lookup.set_index(&k) {
                Some(i) => {
                    self.seen[i] = true;
                    pair(self.out, self.first, &k, &self.delta.set[i].1)
                }
                None => pair(self.out, self.first, &k, raw),
            };
            result.map_err(A::Error::custom)?;
        }
        Ok(())
    }
}

/// A decoding failure, described without the data (serde's own message may quote a value).
pub(crate) fn corrupt(e: &serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!(
        "stored data is not a JSON object ({:?} error at line {}, column {})",
        e.classify(),
        e.line(),
        e.column()
    ))
}
