//! The Lua scripts (one `.lua` file each under `src/scripts/`, with its argument layout and
//! return codes at the top), and the helpers that decode their replies.
//!
//! Every session script touches one key (`KEYS[1]`), and every owner-index script the two keys
//! of one owner's index, which share a hash tag: so they all run on Redis Cluster. A script is
//! sent by its SHA1 (`EVALSHA`) and loaded on the first `NOSCRIPT`.

use std::sync::LazyLock;

use redis::Script;
use session_core::store::{Destroyed, StoreKey, Supersede, Updated};

/// The scripts, hashed once per process.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(Scripts::new);

/// One script per write of each format.
pub(crate) struct Scripts {
    /// The version, meta and size go first and the TTL right after, so the key never exists
    /// without one; the data follows in chunks (Lua's unpack has a stack limit), and a chunk
    /// that fails (e.g. OOM) deletes the half-written record.
    pub(crate) v1_create: Script,
    /// `_n` keeps an upper bound of the data's bytes (field names and values; a key set is
    /// counted in full), so the limit holds for the whole record with three Redis calls per
    /// save; only a bound past the limit is worked out from the fields' lengths. A record
    /// without a usable `_n` (written before it existed, or changed by another program) is
    /// counted from its fields, and a save is refused as too large only on a true count.
    pub(crate) v1_save: Script,
    /// `v1_save` ending a write with a read of the key, for the client cache's tracking
    /// connection: Redis goes on tracking the key for it, so the cache keeps the saved copy.
    pub(crate) v1_save_tracked: Script,
    /// Extends a live record (never a marker) and rewrites its meta; ends with a read, so the
    /// client cache's connection that runs it keeps tracking the key.
    pub(crate) v1_touch: Script,
    /// Deletes whatever is there (a foreign value too); the successor's key when it was a
    /// marker, else DEL's count.
    pub(crate) v1_destroy: Script,
    /// Replaces a live record by a marker hash (`_v`, `_sup`) in one step, so a regenerate
    /// racing a logout can't keep the logged-out data alive.
    pub(crate) v1_supersede: Script,
    /// koa writes `_expire` after every user key, so the last top-level-looking occurrence is
    /// the record's own.
    pub(crate) koa_touch: Script,
    /// `SET XX` that never writes over a marker.
    pub(crate) koa_save: Script,
    /// `SET NX` that recognises its own first run.
    pub(crate) koa_create: Script,
    /// Deletes whatever is there; the successor's key when it was a marker (read from its
    /// JSON), else DEL's count.
    pub(crate) koa_destroy: Script,
    /// Replaces a live record by a marker JSON, never a marker by another.
    pub(crate) koa_supersede: Script,
    /// Adds or rewrites an owner-index entry, drops the lapsed ones, and sets the index's TTL
    /// to its latest entry (two keys of one owner, in one Cluster slot).
    pub(crate) owner_index: Script,
    /// Removes owner-index entries by handle (and the lapsed ones).
    pub(crate) owner_unindex: Script,
    /// Files an owner-index entry under a session limit: drops the lapsed entries and those
    /// the caller found dead, then decides (as `session_core::store::decide`) and writes in the
    /// same step, so racing logins never take an owner past the limit.
    pub(crate) owner_admit: Script,
    /// Reads an owner's entries that have not lapsed.
    pub(crate) owner_entries: Script,
    /// The time a live V1 record has left (-2 for a marker, nothing, or a foreign value).
    pub(crate) v1_record_ttl: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            v1_create: Script::new(include_str!("scripts/v1_create.lua")),
            v1_save: Script::new(concat!(
                "local TRACK = false\n",
                include_str!("scripts/v1_save.lua")
            )),
            v1_save_tracked: Script::new(concat!(
                "local TRACK = true\n",
                include_str!("scripts/v1_save.lua")
            )),
            v1_touch: Script::new(include_str!("scripts/v1_touch.lua")),
            v1_destroy: Script::new(include_str!("scripts/v1_destroy.lua")),
            v1_supersede: Script::new(include_str!("scripts/v1_supersede.lua")),
            koa_touch: Script::new(include_str!("scripts/koa_touch.lua")),
            koa_save: Script::new(include_str!("scripts/koa_save.lua")),
            koa_create: Script::new(include_str!("scripts/koa_create.lua")),
            koa_destroy: Script::new(include_str!("scripts/koa_destroy.lua")),
            koa_supersede: Script::new(include_str!("scripts/koa_supersede.lua")),
            owner_index: Script::new(concat!(
                include_str!("scripts/owner_prelude.lua"),
                include_str!("scripts/owner_index.lua")
            )),
            owner_unindex: Script::new(concat!(
                include_str!("scripts/owner_prelude.lua"),
                include_str!("scripts/owner_unindex.lua")
            )),
            owner_admit: Script::new(concat!(
                include_str!("scripts/owner_prelude.lua"),
                include_str!("scripts/owner_admit.lua")
            )),
            owner_entries: Script::new(include_str!("scripts/owner_entries.lua")),
            v1_record_ttl: Script::new(include_str!("scripts/v1_record_ttl.lua")),
        }
    }
}

/// A save or touch script's reply: 1 updated, 2 superseded, else (0) no record.
pub(crate) fn updated(code: i64) -> Updated {
    match code {
        1 => Updated::Updated,
        2 => Updated::Superseded,
        _ => Updated::NotFound,
    }
}

/// A supersede script's reply: 1 replaced, 2 already superseded, else (0) no record.
pub(crate) fn superseded(code: i64) -> Supersede {
    match code {
        1 => Supersede::Replaced,
        2 => Supersede::AlreadySuperseded,
        _ => Supersede::Missing,
    }
}

/// The successor named by a destroy script's reply, or what was there.
pub(crate) fn destroyed(reply: redis::Value, prefix: &str) -> Destroyed {
    match reply {
        redis::Value::BulkString(b) => {
            let key = String::from_utf8_lossy(&b).into_owned();
            // Markers hold the full Redis key; the caller speaks in store keys.
            let key = key.strip_prefix(prefix).map(str::to_owned).unwrap_or(key);
            Destroyed::Superseded(StoreKey::from_raw(key))
        }
        redis::Value::Int(0) => Destroyed::Missing,
        _ => Destroyed::Removed,
    }
}
