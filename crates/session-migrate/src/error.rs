//! What goes wrong when a source is built.

/// A source that can't be built as configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateBuildError {
    /// A cookie `Key` (tower-sessions', actix-web's) is 64 bytes (its master key); this one is
    /// not.
    #[error("a cookie Key (tower-sessions, actix-web) is 64 bytes; this one is {0}")]
    KeyLength(usize),
    /// The store's URL can't be used.
    #[error("the old store's URL can't be used: {0}")]
    Url(String),
    /// A schema or table name that is not a plain SQL identifier.
    #[error("not a plain SQL identifier: {0:?}")]
    Identifier(String),
    /// express-session needs the app's secret (one at least, none empty).
    #[error("express-session needs the app's secret")]
    NoSecret,
}
