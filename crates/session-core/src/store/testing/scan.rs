//! The listing a drain walks ([`Store::scan`]).

use std::collections::HashSet;

use serde_json::json;

use super::{Harness, LONG, destroy, key, must_create, record};
use crate::store::{Store, StoreError};

/// Batches a listing takes at most before the check gives up (a store whose cursor never
/// ends).
const MAX_BATCHES: usize = 100_000;

/// A listing from the start to its end holds every live key, whatever the batch size; a store
/// that can't list answers the default error on the first call (it can't be drained), never
/// a partial list.
pub async fn scan_lists_every_live_key<H: Harness>(h: &H) {
    let live: Vec<_> = (0..30).map(|i| key(&format!("scan{i}"))).collect();
    for k in &live {
        must_create(h, k, &record(json!({ "a": 1 })), LONG).await;
    }
    let gone = key("scan-gone");
    must_create(h, &gone, &record(json!({ "a": 1 })), LONG).await;
    destroy(h, &gone).await;
    for batch in [7, 500] {
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        for round in 0.. {
            assert!(round < MAX_BATCHES, "a listing that never ends");
            match h.store().scan(cursor.as_deref(), batch).await {
                Err(StoreError::Backend(_)) if round == 0 => return,
                Err(e) => panic!("a listing failed midway: {e}"),
                Ok((keys, next)) => {
                    seen.extend(keys);
                    match next {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
            }
        }
        for k in &live {
            assert!(
                seen.contains(k),
                "a live key is missing from a listing in batches of {batch}"
            );
        }
    }
    for k in &live {
        destroy(h, k).await;
    }
}
