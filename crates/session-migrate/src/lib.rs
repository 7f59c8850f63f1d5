//! Moving a site's sessions in from another session library without logging anyone out: the
//! [`Source`](session_core::store::Source)s that
//! `session_hyper::SessionLayerBuilder::migrate_from_source` takes.
//!
//! - `TowerSessions`: tower-sessions 0.14, with its Redis store (tower-sessions-redis-store
//!   0.16, feature `tower-sessions-redis`) or its PostgreSQL store (tower-sessions-sqlx-store
//!   0.15, feature `tower-sessions-postgres`); its cookie plain, signed or private.
//! - `Actix`: actix-session 0.11 with its Redis store (feature `actix-redis`); its cookie
//!   private or signed under the app's `Key`.
//! - `Express`: express-session 1.x with connect-redis (feature `express-redis`); its
//!   `connect.sid` cookie signed under any of the app's secrets.
//!
//! A source only reads the old sessions and deletes the ones that moved: the layer does the
//! move (a new id of ours, the old cookie removed, races and logouts handled). The guide's
//! chapter on switching (`docs/switching.md` in the repository) gives the steps.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "tower-sessions-redis", feature = "tower-sessions-postgres"))]
mod tower_sessions;

#[cfg(any(feature = "tower-sessions-redis", feature = "tower-sessions-postgres"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "tower-sessions-redis", feature = "tower-sessions-postgres")))
)]
pub use tower_sessions::{TowerSessions, TowerSessionsBuilder};

#[cfg(feature = "actix-redis")]
mod actix;
mod error;
#[cfg(feature = "express-redis")]
mod express;
#[cfg(any(
    feature = "tower-sessions-redis",
    feature = "tower-sessions-postgres",
    feature = "actix-redis"
))]
mod keyed;
#[cfg(any(feature = "actix-redis", feature = "express-redis"))]
mod redis_kv;

#[cfg(feature = "actix-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-redis")))]
pub use actix::{Actix, ActixBuilder};
#[cfg(feature = "express-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "express-redis")))]
pub use express::{Express, ExpressBuilder};

pub use error::MigrateBuildError;
