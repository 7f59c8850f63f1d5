//! The shared session store for many app servers: Redis, through a bb8 pool of multiplexed
//! connections.
//!
//! # What it guarantees
//! - **Single-key commands only** (scripts touch one key), so it works on Redis Cluster.
//! - `create` inserts only if absent; `save` and `touch` update only a live record, so a save
//!   that races a logout never brings the session back; `destroy` deletes whatever is there and
//!   says what it was. Every key has a TTL, set in the same script that writes the key, before
//!   the data (a create that fails half-way deletes what it wrote).
//! - **Regenerate-safe**: `supersede` replaces the old id's record by a marker naming the new
//!   one (lifetime: the session config's `supersede_grace`), in one script: a regenerate racing
//!   a logout can't keep the logged-out data alive, and requests still carrying the old id are
//!   told it was superseded (also after a logout: a destroy of the old id ends the successor
//!   and leaves the marker, which holds no data, to its TTL).
//! - **Bounded records**: the whole record stays within [`RedisStoreBuilder::max_record_bytes`]
//!   (64 KiB) after every write. The hash keeps an upper bound of its data's bytes (`_n`): a
//!   save that only sets keys adds each key it sets in full (three Redis calls: `HGET`,
//!   `PEXPIRE`, `HSET`); one that removes keys or replaces the data, or whose bound would pass
//!   the limit, works the size out from the old lengths of the keys it changes (one `HSTRLEN`
//!   each) and, if that still passes, recounts every field. A save that would pass the limit
//!   on the true count is refused, writing nothing ([`StoreError::TooLarge`]), and the count it
//!   stores is exact again. A count that is not a count (another program wrote it) is recounted
//!   from the fields; a count set *lower* than the truth is trusted (only a program that
//!   can write to Redis can set it, and that program can write any record). A value nested
//!   more than 127 arrays or objects deep is refused ([`StoreError::Rejected`]): it could not be
//!   read back. Thousands of keys
//!   per create or save are fine (the scripts write in chunks). The limit counts what the data
//!   holds, not Redis's own overhead of some tens of bytes per hash field: a record of
//!   thousands of tiny keys takes several times its counted size in Redis memory.
//! - **Foreign data is corrupt, not an outage**: a value of another Redis type under a session
//!   key, or a hash this store can't read, is [`StoreError::Corrupt`]; the middleware then
//!   deletes it and starts a new session.
//! - **Per-key deltas** (default format): a session is a Redis hash with one field per
//!   top-level key, and a save applies the keys this request set and removed, atomically (one
//!   Lua script). Two concurrent requests that change *different* keys both land; two that
//!   change the *same* key: the later write wins for that key. `clear()` replaces the data
//!   as a whole.
//! - **Round trips**: a load is one `HGETALL`; a commit is one script call. A read-only request
//!   costs one round trip, a changing one two, and so does a read under `rolling` (its touch is
//!   the commit: it extends the session only if no login superseded it meanwhile). With the
//!   client cache a read of an unchanged session reads no record: it waits for a read fence,
//!   usually a `PING` shared by the reads waiting at the time.
//! - **Failures are fast and typed**: the pool checkout, connect and every command are bounded
//!   by short timeouts (defaults: checkout 1 s, command 1 s), and a refused connection fails the
//!   request at once instead of waiting the timeout out; a refused connection, a timeout, or
//!   Redis's `OOM` under `noeviction` become [`StoreError`]s (a refused login, a wrong
//!   password or none, is a `StoreError::Backend`: not transient, so the middleware answers
//!   500, not a 503 inviting retries), and a connection that died is
//!   replaced, so the store recovers by itself when Redis comes back. A command that fails on a
//!   dropped connection is retried once on a fresh one. The drop can come after Redis ran the
//!   command, before its reply arrived, so every command answers a second run as it answered
//!   the first: a create or a supersede recognises what its own first run wrote (a second run
//!   answered "collision" or "already superseded" before, which left an orphan record or
//!   dropped the login's new one), and a destroy leaves a supersede marker to its TTL and
//!   names its successor every time, so a logout run twice still reaches the session a
//!   racing login made (a live record a first run removed is reported missing the second
//!   time). The same holds on Redis Cluster, whose connection resends such a command by
//!   itself.
//! - **A user's sessions** ([`Format::V1`]): the store keeps an owner index
//!   ([`OwnerIndex`](session_core::store::OwnerIndex)) per owner: a sorted set `<prefix>owner:{hex}`
//!   (handle -> the entry's time, ms) and a hash `<prefix>owner:{hex}:e` (handle -> the entry's
//!   JSON: store key, bind time, last write, device), where `hex` is the owner id hex-encoded,
//!   so both keys share a hash tag and each index call is one script on one Cluster slot. Each
//!   write drops the owner's lapsed entries and sets both keys' TTL to the latest entry: the
//!   index cleans itself without keyspace notifications or a background task. A listing is one
//!   script for the index and one read-only probe per session (all in flight at once). The koa
//!   format keeps no index (koa drops the `_owner` binding when it writes a record). Needs
//!   Redis 6.2 or newer (`ZADD ... GT`). The index's TTL is its latest entry's time plus a
//!   minute.
//! - Passwords in the URL never appear in `Debug` or logs. ACL users (`redis://user:pass@...`)
//!   work; `rediss://` (TLS, through rustls with the ring provider) needs the `tls` feature.
//!
//! # Record formats
//! - [`Format::V1`] (default): a hash with `_v` = `1` (format version), `_m` = the koa fields
//!   (`expire,maxAge,created`, `0` for none), `_n` = an upper bound of the bytes of the `d:`
//!   fields (names and values; exact after a create, a removal or a recount), and `d:<key>` = the JSON of each top-level key. A supersede marker is a hash with
//!   `_v` and `_sup` = the Redis key of the successor.
//! - [`Format::Koa`]: koa-session's record, so a Koa app's Redis store and ours share sessions:
//!   the key is the id exactly as the cookie carries it (configure the session with
//!   `koa_compat(true)` and leave the prefix empty) and the value is koa's JSON string (user keys,
//!   `_expire`, `_maxAge`). A Koa app writes whole records, so this format is whole-record
//!   last-writer-wins, like koa ([`Store::merges_deltas`] is false). A supersede marker is
//!   `{"_superseded":"<successor key>","_expire":1,"_maxAge":1}`: a Koa app reading it sees an
//!   expired session and starts a new one.
//!
//! # Client-side cache
//! [`RedisStoreBuilder::client_cache`] (opt-in) keeps recently read sessions in the app
//! server's memory, kept right by Redis's server-assisted client-side caching (`CLIENT
//! TRACKING` over RESP3). **A read served from the cache reflects every write, logout and
//! revoke whose answer any app server sharing the Redis had returned before the read began**:
//! instead of a `HGETALL` it waits for a read fence: the reply to any command sent after it
//! began on the tracking connection, usually a `PING` shared by the reads waiting.
//! Memory is bounded in bytes. It works on one server, on Sentinel (a change of master empties
//! it) and on Cluster (a tracking connection per master, and a fence per key that also proves
//! the master still serves the key); not in koa's format nor on an app's own pool
//! ([`RedisBuildError::ClientCacheUnsupported`]). The builder's method has the rule's
//! mechanics, what happens when the connection is lost, and the costs;
//! [`RedisStore::client_cache_stats`] tells how it does.
//!
//! # Redis Cluster
//! [`RedisStore::cluster`] takes seed nodes and works exactly as on one server, delta writes
//! and the koa format included: every command and script touches one key, so no hash tags are
//! needed, and the `redis` crate's cluster connection follows `MOVED`/`ASK` and refreshes its
//! slot map by itself. When a master dies, calls for its slots fail fast (within the command
//! timeout) until a replica is promoted, then succeed again without restarting anything.
//!
//! # Redis Sentinel
//! [`RedisStore::sentinel`] takes the Sentinels and the master's name. Each new connection
//! goes to the master of the highest configuration epoch among the Sentinels' answers, checked
//! by `ROLE`; the store listens to every Sentinel, fails every call fast (a 503) from the start
//! of a failover until the replica the Sentinel chose answers as a master, then uses it without
//! a restart. A `READONLY` answer sends the write once more, to the new master.
//!
//! # What Redis does not promise
//! Replication is asynchronous: an acknowledged write, a logout included, can be lost when a
//! replica is promoted (in a cluster failover or a Sentinel switch), and the session then comes
//! back, until the expiry kept inside its record (`_expire`, and the absolute lifetime when
//! configured) ends it. The store does not wait for replicas (no `WAIT`). Reads always go to
//! masters (replica reads would break read-your-writes). How to deploy Redis for sessions (the
//! eviction policy, Sentinel and Cluster side by side, what a failover can lose, measured) is
//! the chapter "Redis" of the guide in the repository (`docs/redis.md`).
//!
//! # Example
//! ```no_run
//! use session_store_redis::RedisStore;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379/0").prefix("myapp:").build().await?;
//! // SessionLayer::store(config, store)
//! # Ok(()) }
//! ```
//!
//! [`StoreError`]: session_core::store::StoreError
//! [`StoreError::TooLarge`]: session_core::store::StoreError::TooLarge
//! [`StoreError::Corrupt`]: session_core::store::StoreError::Corrupt
//! [`StoreError::Rejected`]: session_core::store::StoreError::Rejected
//! [`Store::merges_deltas`]: session_core::store::Store::merges_deltas

#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod cache;
mod cluster_cache;
mod connection;
mod fence;
mod koa;
mod limit;
mod owners;
mod pool;
mod scripts;
mod sentinel;
mod store;
mod tracking;
mod v1;

pub use builder::{RedisBuildError, RedisStoreBuilder};
pub use cache::CacheStats;
pub use store::{Format, RedisStore};
