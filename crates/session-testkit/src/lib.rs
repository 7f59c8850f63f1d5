//! The test kit: what every test tree of this workspace (the crates' tests, the examples'
//! tests, the browser tests) and the benchmark share, so that none repeats its own harness.
//!
//! - [`net`]: serving a hyper service on a loopback port, `TCP_NODELAY` on every connection
//!   (also the examples' and the benchmark's accept loop);
//! - [`process`]: a binary (an example, the demo) running for a test;
//! - [`values`]: values no other run uses, the time;
//! - `client` (feature `client`): the browser-like client with a cookie jar, the exact one
//!   (`Reply`, `Jar`);
//! - `app`, `served` (feature `app`): the JSON session test app, and the app served for an
//!   attack with its exact client;
//! - `capture` (feature `app`): log capture and the secrets check;
//! - `stores`, `backend`, `revoke` (feature `app`): store wrappers (`Probe`, `Recorder`,
//!   `Held`), the backends and option sets the attacks iterate over, the "log out everywhere
//!   else" races every store with an owner index meets;
//! - `limit` (feature `app`): logins racing a session limit, on every store that keeps one;
//! - `events` (feature `app`): an event recorder, and lifecycle events as the golden sequences
//!   name them;
//! - `jitter` (feature `app`): a store wrapper that delays each call by 0 to 2 ms, so races
//!   interleave differently from round to round;
//! - `redis` (feature `redis`): a redis-server of a test's own, a six-node cluster, the shared
//!   server, plain commands;
//! - `postgres` (feature `postgres`): a throwaway PostgreSQL cluster, the shared server, stores
//!   on fresh tables, plain clients;
//! - `conformance` (feature `conformance`, part of `redis` and `postgres`): the store
//!   conformance suite's harness on a real server, and the record the stores' tests write.
//!
//! A kit for tests: its helpers panic on a setup that fails, with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod net;
pub mod process;
pub mod values;

#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "app")]
pub mod app;
#[cfg(feature = "app")]
pub mod backend;
#[cfg(feature = "app")]
pub mod capture;
#[cfg(feature = "app")]
pub mod events;
#[cfg(feature = "app")]
pub mod jitter;
#[cfg(feature = "app")]
pub mod limit;
#[cfg(feature = "app")]
pub mod revoke;
#[cfg(feature = "app")]
pub mod served;
#[cfg(feature = "app")]
pub mod stores;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

pub use net::{free_port, listen, serve};
pub use values::{now_ms, unique};
