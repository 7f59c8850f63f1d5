//! Building a [`PostgresStore`]: from a connection string or an existing pool, with the time
//! limits checked and the table name validated at construction.

use std::sync::Arc;
use std::time::Duration;

use bb8::Pool;
use tokio::sync::Semaphore;

use crate::connection::{Db, Manager, PgPool, Pools, Server};
use crate::sql::{Sql, valid_table};
use crate::store::{Inner, PostgresStore};

/// Default largest record: the bytes of a session's stored data.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

/// An operator mistake found while building the store (never at request time).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresBuildError {
    /// The table name is not a plain identifier (optionally `schema.table`).
    #[error(
        "table name {0:?}: letters, digits and '_' only (optionally schema.table), at most 50 bytes"
    )]
    Table(String),
    /// The connection string can't be parsed (the message never repeats it).
    #[error("invalid postgres connection string: {0}")]
    Url(String),
    /// A time limit of zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// The TLS configuration can't be used (feature `tls`).
    #[error("tls: {0}")]
    Tls(String),
}

enum Source {
    Url(String),
    Pool(PgPool),
}

/// Builds a [`PostgresStore`] ([`PostgresStore::builder`], [`PostgresStore::from_pool`]).
pub struct PostgresStoreBuilder {
    source: Source,
    table: String,
    pool_size: u32,
    connect_timeout: Duration,
    checkout_timeout: Duration,
    statement_timeout: Duration,
    max_record_bytes: usize,
    application_name: Option<String>,
    #[cfg(feature = "tls")]
    tls: Option<rustls::ClientConfig>,
}

impl std::fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStoreBuilder")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A store on the database at `url` (`postgres://user:pass@host:port/db`, or libpq's
    /// `key=value` form). Connections are made on first use, so an app starts while the
    /// database is down and answers 503 until it is back.
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder::new(Source::Url(url.into()))
    }

    /// A store on an existing `bb8-postgres` pool (its own timeouts and size apply; the
    /// store's `statement_timeout` is then the app's to set on the pool's connections).
    pub fn from_pool(pool: PgPool) -> PostgresStoreBuilder {
        PostgresStoreBuilder::new(Source::Pool(pool))
    }
}

impl PostgresStoreBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            table: "sessions".into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(1),
            checkout_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(1),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            application_name: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Connects over TLS with this rustls configuration (feature `tls`). The connection
    /// string's `sslmode` says whether TLS is required (`require`) or tried first (`prefer`,
    /// the default). Only for connections the store makes (not [`PostgresStore::from_pool`]).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, config: rustls::ClientConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Connects over TLS trusting only the PEM root certificate(s) given (a private CA or a
    /// self-signed server certificate; feature `tls`). An unreadable PEM fails at
    /// [`PostgresStoreBuilder::build`].
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_root_certificate(self, pem: &[u8]) -> Result<Self, PostgresBuildError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert
                .map_err(|_| PostgresBuildError::Tls("the root certificate is not PEM".into()))?;
            roots
                .add(cert)
                .map_err(|e| PostgresBuildError::Tls(format!("unusable root certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(PostgresBuildError::Tls("no certificate in the PEM".into()));
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PostgresBuildError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(self.tls(config))
    }

    /// The `application_name` the store's connections show in `pg_stat_activity` (default:
    /// the connection string's, if any).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// The sessions table (default `sessions`; the owner index is `<table>_owners`).
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// Connections in the pool (default 16).
    pub fn pool_size(mut self, n: u32) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// Time limit to open a connection (default 1 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Time limit to get a connection from the pool (default 1 s).
    pub fn checkout_timeout(mut self, d: Duration) -> Self {
        self.checkout_timeout = d;
        self
    }

    /// Time limit of a statement, set on the server too (`statement_timeout`), so a statement
    /// blocked by a lock is cancelled there rather than left holding a connection (default 1 s).
    pub fn statement_timeout(mut self, d: Duration) -> Self {
        self.statement_timeout = d;
        self
    }

    /// Largest record, in bytes of the stored data (default 64 KiB). Every create and save is
    /// held to it for the whole record; a write beyond it changes nothing.
    pub fn max_record_bytes(mut self, n: usize) -> Self {
        self.max_record_bytes = n;
        self
    }

    /// Builds the store (no connection is made yet; call
    /// [`PostgresStore::migrate`] to create the schema). Call it within a tokio runtime: the
    /// pool starts its task that retires idle connections.
    pub fn build(self) -> Result<PostgresStore, PostgresBuildError> {
        if !valid_table(&self.table) {
            return Err(PostgresBuildError::Table(self.table));
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("checkout_timeout", self.checkout_timeout),
            ("statement_timeout", self.statement_timeout),
        ] {
            if d.is_zero() {
                return Err(PostgresBuildError::ZeroDuration(name));
            }
        }
        let (pool, url, permits) = match self.source {
            Source::Pool(pool) => (Pools::Shared(pool), "<existing pool>".to_owned(), None),
            Source::Url(url) => {
                let mut config: tokio_postgres::Config = url
                    .parse()
                    .map_err(|e: tokio_postgres::Error| PostgresBuildError::Url(e.to_string()))?;
                config.connect_timeout(self.connect_timeout);
                // The server cancels a statement past the limit (kept beside any options the
                // connection string sets).
                let options = format!(
                    "{} -c statement_timeout={}",
                    config.get_options().unwrap_or(""),
                    self.statement_timeout.as_millis()
                );
                config.options(options.trim_start());
                if let Some(name) = &self.application_name {
                    config.application_name(name);
                }
                let display = shown(&config);
                let connects = session_pool::Connects::new(Server);
                let manager = Manager {
                    config,
                    connects: Arc::clone(&connects),
                    stalled_after: self.statement_timeout + Duration::from_millis(500),
                    #[cfg(feature = "tls")]
                    tls: self.tls.map(tokio_postgres_rustls::MakeRustlsConnect::new),
                };
                // A failed connect is reported at once (`session_pool` turns bb8's retries
                // off); the next checkout makes a new attempt.
                let builder = Pool::builder()
                    .max_size(self.pool_size)
                    .connection_timeout(self.checkout_timeout)
                    .test_on_check_out(false);
                let pool = session_pool::Pool::new(builder, &connects, manager);
                let permits = Some(Arc::new(Semaphore::new(self.pool_size as usize)));
                (Pools::Own(pool), display, permits)
            }
        };
        // A whole call: a checkout, maybe a connect, and the statement (once more after a
        // connection that died).
        let limit = self.checkout_timeout + self.connect_timeout + 2 * self.statement_timeout;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                db: Db {
                    pool,
                    limit,
                    statement_timeout: self.statement_timeout,
                    checkout_timeout: self.checkout_timeout,
                    permits,
                },
                sql: Sql::new(&self.table),
                table: self.table,
                url,
                max_record_bytes: self.max_record_bytes,
            }),
        })
    }
}

/// What `Debug` shows of a parsed connection string: user, hosts, ports and database, rebuilt
/// from the parsed settings (so no spelling of a password in the string can slip through).
fn shown(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(h, p)| match h {
            Host::Tcp(name) => format!("{name}:{p}"),
            Host::Unix(path) => format!("{}:{p}", path.display()),
        })
        .collect();
    format!(
        "postgres://{}{}@{}/{}",
        config.get_user().unwrap_or(""),
        if config.get_password().is_some() {
            ":<redacted>"
        } else {
            ""
        },
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// The connection string without its password (URL or `key=value` form).
#[cfg(test)]
pub(crate) fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme) = out.find("://") {
        let rest = scheme + 3;
        if let Some(at) = out[rest..].rfind('@').map(|i| rest + i)
            && let Some(colon) = out[rest..at].find(':').map(|i| rest + i)
        {
            out.replace_range(colon + 1..at, "<redacted>");
        }
    }
    for key in ["password=", "password ="] {
        while let Some(i) = out.find(key) {
            let start = i + key.len();
            let end = out[start..]
                .find([' ', '&'])
                .map_or(out.len(), |j| start + j);
            if &out[start..end] == "<redacted>" {
                break;
            }
            out.replace_range(start..end, "<redacted>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://ada:s3cret@db:5432/app"),
            "postgres://ada:<redacted>@db:5432/app"
        );
        assert_eq!(
            redact("host=db user=ada password=s3cret dbname=app"),
            "host=db user=ada password=<redacted> dbname=app"
        );
        assert_eq!(
            redact("postgres://db/app?password=s3cret&sslmode=disable"),
            "postgres://db/app?password=<redacted>&sslmode=disable"
        );
        assert_eq!(redact("postgres://db/app"), "postgres://db/app");
    }

    #[tokio::test]
    async fn mistakes_fail_at_build() {
        assert!(matches!(
            PostgresStore::builder("postgres://db/app")
                .table("a;b")
                .build(),
            Err(PostgresBuildError::Table(_))
        ));
        assert!(matches!(
            PostgresStore::builder("postgres://db/app")
                .statement_timeout(Duration::ZERO)
                .build(),
            Err(PostgresBuildError::ZeroDuration("statement_timeout"))
        ));
        let e = PostgresStore::builder("postgres://ada:s3cret@db:notaport/app").build();
        assert!(matches!(&e, Err(PostgresBuildError::Url(m)) if !m.contains("s3cret")));
        for url in [
            "host=db user=ada password = s3cret dbname=app",
            "host=db user=ada password='s3 cret' dbname=app",
            "postgres://ada:s3cret@db:5433/app",
            "postgres://db/app?password=s3cret",
        ] {
            let s = PostgresStore::builder(url).build().unwrap();
            let shown = format!("{s:?} {}", s.redacted_url());
            assert!(!shown.contains("s3"), "{shown}");
            assert!(shown.contains("db:") && shown.contains("/app"), "{shown}");
        }
    }
}
