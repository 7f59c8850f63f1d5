//! Redis test support: the client cache's helpers (`cache`), and what the tests take from the
//! test kit (servers, plain commands, the conformance harness, the app, the clients).
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub mod cache;

pub use session_testkit::app::serve;
pub use session_testkit::client::{browser, text};
pub use session_testkit::conformance::Real;
pub use session_testkit::free_port;
pub use session_testkit::redis::{Cluster, Server, cmd, shared_url, unique_prefix};
