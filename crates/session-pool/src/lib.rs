//! The session stores' fast-failing pool checkout: a [bb8] pool whose callers, waiting for a
//! connection, fail at once when a connect failed and no connection can come to them, instead
//! of waiting out the whole checkout timeout.
//!
//! bb8 hands a failed connect to its error sink, not to the callers waiting for a connection.
//! A store whose server refuses (down, full, a wrong password) would then answer every request
//! only after the checkout timeout, although the server said no at once. This crate closes the
//! gap and keeps what a pool is for:
//!
//! - **A refusal is an answer**: each failed connect is announced to the waiting checkouts;
//!   those to which no connection can still come (none open, none being made) fail with the
//!   failure, as the store reads it. The checkout timeout only bounds a silent server.
//! - **One refused connect fails nobody while others serve**: a waiting checkout that hears of
//!   a failure while a connection is open (a busy one comes back) or being made keeps
//!   waiting, so a server at its connection limit still serves every caller through the
//!   connections it took.
//! - **An optional hold-off** after the server itself refused (see [`Backend::hold_off`]): no
//!   connect is tried for a while, set before the refused connect's slot is freed and lifted by
//!   time only.
//!
//! It knows no store client: a store gives its half through the small [`Backend`] trait (how a
//! failed connect reads, whether it holds connects off, what to log), runs its connects through
//! [`Connects::connect`], and checks connections out with [`Pool::get`]. It does no I/O of its
//! own.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! use session_pool::{Backend, CheckoutError, ConnectError, Connection, Connects, Pool};
//!
//! /// A server that refuses every connect.
//! struct Refusing;
//!
//! impl Backend for Refusing {
//!     type Error = std::io::Error;
//!     type Failure = String;
//!     fn failure(&self, error: &std::io::Error, _last: Option<&String>) -> String {
//!         format!("connect failed ({})", error.kind())
//!     }
//! }
//!
//! struct Manager(Arc<Connects<Refusing>>);
//!
//! impl bb8::ManageConnection for Manager {
//!     type Connection = Connection<()>;
//!     type Error = ConnectError<std::io::Error>;
//!     async fn connect(&self) -> Result<Connection<()>, Self::Error> {
//!         let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
//!         self.0.connect(async { Err(refused) }).await
//!     }
//!     async fn is_valid(&self, _: &mut Connection<()>) -> Result<(), Self::Error> {
//!         Ok(())
//!     }
//!     fn has_broken(&self, _: &mut Connection<()>) -> bool {
//!         false
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let connects = Connects::new(Refusing);
//! let builder = bb8::Pool::builder().max_size(4).connection_timeout(Duration::from_secs(600));
//! let pool = Pool::new(builder, &connects, Manager(Arc::clone(&connects)));
//! let t = Instant::now();
//! match pool.get().await {
//!     Err(CheckoutError::Failed(why)) => assert_eq!(why, "connect failed (connection refused)"),
//!     other => panic!("{:?}", other.err()),
//! }
//! // At once, not after the 10-minute checkout timeout.
//! assert!(t.elapsed() < Duration::from_secs(60));
//! # });
//! ```

mod backend;
mod connects;
mod pool;

pub use backend::Backend;
pub use connects::{ConnectError, Connection, Connects};
pub use pool::{Checkout, CheckoutError, Pool};
