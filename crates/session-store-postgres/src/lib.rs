//! Sessions in PostgreSQL, for apps that run Postgres and no Redis, with the same guarantees as
//! the other stores (it passes `session-core`'s conformance suite, owner index included):
//!
//! - **Per-key merges**: a save applies only the keys its request set and removed,
//!   `(data - removed) || set` on a `jsonb` object, so two concurrent requests that change
//!   different keys both land. `clear()` replaces the data as a whole.
//! - **No resurrection**: a save or touch updates only a live row (never an upsert), so a
//!   session destroyed or expired meanwhile stays gone; a regenerate's supersede replaces the
//!   live row by a marker row in one statement.
//! - **One statement per call**, one round trip each: every statement is prepared once per
//!   connection and cached (on a pool the app passes in, [`PostgresStore::from_pool`], they
//!   are sent with their types instead). A load is one statement, a changing request's commit
//!   one more (a save that writes nothing asks why in a second one: gone, superseded, or too
//!   large).
//! - **Fair under load**: one permit per pooled connection, handed out first come first served,
//!   so a busy task can't take a returned connection ahead of those waiting.
//! - **Expiry by the database's clock** (`expires_at`, `now()` on the server), so app servers
//!   never disagree about it. Expired rows are never returned. A load deletes the row it finds
//!   expired, a create takes an expired row's place, and [`PostgresStore::start_sweeper`] (or
//!   [`PostgresStore::sweep`] from a job) deletes the rest in batches of 1000 (`SKIP LOCKED`,
//!   so several app servers can sweep). The owner index's lapsed rows go the same way: an
//!   owner's next write drops its own, and the sweep deletes those of owners who never come
//!   back (a table has no TTL; run the sweeper where owners are bound).
//! - **Bounded records**: every create and save is held to a limit after the merge (64 KiB of
//!   stored data by default, [`PostgresStoreBuilder::max_record_bytes`]), checked in the same
//!   statement; a write beyond it is [`StoreError::TooLarge`] and changes nothing.
//! - **Fast, typed failures**: connecting, checking a connection out and every statement are
//!   bounded (1 s each by default), and `statement_timeout` is set on the server too, so a
//!   statement blocked by a lock is cancelled there. A database that is down, slow, restarted
//!   or read-only (a replica promoted the wrong way round) gives a [`StoreError`] at once or
//!   within its limit: a refused connection (the database stopped) fails every waiting call at
//!   once instead of the checkout limit; only silence waits out the limits. The pool replaces
//!   dead connections (and one that stopped answering: a call dropped unanswered well past
//!   the statement timeout retires its connection; one whose caller went away early doesn't), so the store recovers when the database does (with the store's own
//!   pool; an app's pool given to [`PostgresStore::from_pool`] keeps its own connect policy).
//!   A login the server refuses (a wrong user or password, a database that doesn't exist, no
//!   right to connect: SQLSTATE `28000`, `28P01`, `3D000`, `42501`) is not an outage but a
//!   mistake to fix: a [`StoreError::Backend`] that names the code (not transient, so the
//!   middleware answers 500 rather than a 503 inviting retries), logged at `error` (once per
//!   run of the same refusal). After the server itself refused a connect (its connection
//!   limit, a refused login), the pool tries no new connection for half a second, since each
//!   try costs the server a process: calls meanwhile use the connections open, or get the
//!   refusal's error at once. A server starting up (`57P03`) is not held off, so a restarted
//!   one is used as soon as it takes connections.
//!   Passwords never appear in `Debug` or logs.
//! - **TLS** (feature `tls`): through rustls with the ring provider,
//!   [`PostgresStoreBuilder::tls`] or [`PostgresStoreBuilder::tls_root_certificate`] with
//!   `sslmode=require` in the connection string.
//! - **A user's sessions**: the owner index (see `session_core::owner`) is a table beside the
//!   sessions (`<table>_owners`), one statement per call; a listing joins the sessions table.
//!
//! Deploying it (the sweeper, connections, TLS) is the chapter "Operations" of the guide in
//! the repository (`docs/operations.md`).
//!
//! # Schema
//! [`PostgresStore::migrate`] creates it (`IF NOT EXISTS`: safe at every start); [`schema`]
//! gives the SQL for those who manage schemas themselves. For the default table `sessions`:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS "sessions" (
//!     key        text PRIMARY KEY,   -- the session's store key (a hash of its id)
//!     data       jsonb NOT NULL,     -- {"key": "<the value's JSON text>", ...}
//!     expire     bigint,             -- koa's _expire (ms), NULL for none
//!     max_age    bigint NOT NULL,    -- koa's _maxAge (ms), 0 for a browser-session cookie
//!     created    bigint,             -- _created (ms), NULL for none
//!     successor  text,               -- set on a supersede marker: the key of the new id
//!     expires_at timestamptz NOT NULL
//! );
//! CREATE INDEX IF NOT EXISTS "sessions_expires_at" ON "sessions" (expires_at);
//! CREATE TABLE IF NOT EXISTS "sessions_owners" (
//!     owner text NOT NULL, handle text NOT NULL, key text NOT NULL,
//!     since bigint NOT NULL, seen bigint NOT NULL, device text, until bigint NOT NULL,
//!     PRIMARY KEY (owner, handle)
//! );
//! CREATE INDEX IF NOT EXISTS "sessions_owners_until" ON "sessions_owners" (until);
//! CREATE INDEX IF NOT EXISTS "sessions_owners_key" ON "sessions_owners" (key);
//! ```
//!
//! Each value is kept as its JSON text inside the `jsonb` object: `jsonb` refuses a `\u0000`
//! in a string and rewrites numbers and key order, and a session must read back exactly as it
//! was written. The object still merges per key.
//!
//! # Example
//! ```no_run
//! use session_store_postgres::PostgresStore;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::builder("postgres://app@127.0.0.1/app").build()?;
//! store.migrate().await?;
//! let _sweeper = store.start_sweeper(std::time::Duration::from_secs(60));
//! // session_hyper::SessionLayer::store(config, store).build()?
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod connection;
mod owners;
mod sql;
mod store;
mod sweeper;

pub use builder::{DEFAULT_MAX_RECORD_BYTES, PostgresBuildError, PostgresStoreBuilder};
pub use connection::PgPool;
pub use session_core::store::StoreError;
pub use sql::schema;
pub use store::PostgresStore;
pub use sweeper::Sweeper;
