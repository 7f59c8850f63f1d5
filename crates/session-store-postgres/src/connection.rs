//! The pool (its fast-failing checkout is `session_pool`'s; what the server's refusals mean
//! and the hold-off after one are said here), the time limit on every call, one retry on a
//! connection that died, and the mapping of Postgres failures to typed [`StoreError`]s (never
//! with the connection string).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bb8::{Pool, PooledConnection, RunError};
use bb8_postgres::PostgresConnectionManager;
use session_core::store::StoreError;
use session_core::telemetry;
use session_pool::CheckoutError;
use std::collections::HashMap;

use tokio::sync::Semaphore;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Row, Statement};

/// The pool type a store can be built on (what [`crate::PostgresStore::from_pool`] takes).
pub type PgPool = Pool<PostgresConnectionManager<NoTls>>;

/// A connection the store made itself, with the statements it prepared on it.
pub(crate) struct PgConn {
    client: Client,
    prepared: HashMap<String, Statement>,
    /// Since when a call has waited for the server's answer; cleared when it comes. Still set
    /// when the pool gets the connection back, the call was dropped unanswered: by a caller
    /// that went away early (the connection is fine), or after the server should long have
    /// answered (see [`Manager::stalled_after`]: a server that stopped answering on this
    /// connection, a network path that drops it silently), and then the connection is not
    /// handed out again.
    waiting_since: Option<Instant>,
}

/// Makes the store's own connections (`tokio-postgres`, the same as `bb8-postgres` does, plus a
/// statement cache per connection).
///
/// Each connect runs through the pool's [`Connects`](session_pool::Connects): a failed one
/// reaches the checkouts waiting for a connection at once, and a refusal by the server holds
/// new connects off (see [`Server`]).
pub(crate) struct Manager {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) connects: Arc<session_pool::Connects<Server>>,
    /// A call dropped after waiting this long for an answer leaves its connection retired:
    /// the server's `statement_timeout` plus a margin, by when the server answers even a
    /// statement it cancels. (A call dropped sooner, its caller gone, leaves the connection
    /// in use: retiring it would turn cancelled requests into reconnects.)
    pub(crate) stalled_after: Duration,
    /// TLS through rustls (feature `tls`); `None`: plain TCP.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

fn spawn_connection<F>(connection: F)
where
    F: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(target: "session::postgres", error = %e, "a connection ended");
        }
    });
}

/// PostgreSQL as the store's own pool sees it: what its failed connects say to the waiting
/// checkouts (bb8 calls its error sink for each failed connect; this pool tests no connection
/// on checkout, so nothing else reaches it), which refusals hold new connects off, and the
/// pool's debug events "connecting" and "connects held off" (a fault test reads them).
pub(crate) struct Server;

/// How long the pool tries no new connection after the server itself refused one (its
/// connection limit, a login it refuses): each attempt costs the server
/// a process and, with a password, a SCRAM exchange, so a pool that kept trying on every
/// request (as many as the requests waiting) loaded a full or misconfigured server the most
/// when it could least take it. Calls meanwhile get a pooled connection if one is open, or
/// the refusal's error at once. A refused TCP connect (no server) costs nothing and is not
/// held off, nor is a server starting up (57P03): a restarted server is used again as soon
/// as it takes connections.
pub(crate) const HOLD_OFF: Duration = Duration::from_millis(500);

impl session_pool::Backend for Server {
    type Error = tokio_postgres::Error;
    type Failure = Failure;

    fn failure(&self, e: &tokio_postgres::Error, last: Option<&Failure>) -> Failure {
        let refused = std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        let failure = match e.code() {
            _ if refused => Failure::Outage("postgres refused the connection".to_owned()),
            Some(code) if login_refused(code) => Failure::Login(code.code().to_owned()),
            // The server's reason by its code (too many connections, starting up): never the
            // connection string.
            Some(code) => {
                Failure::Outage(format!("could not connect to postgres ({})", code.code()))
            }
            None => Failure::Outage("could not connect to postgres".to_owned()),
        };
        // tokio-postgres shows a server's refusal as "db error": its code and message (no
        // credential in either) say what happened. A refused login is logged at `error` once
        // per run of the same refusal (a request per hold-off would repeat it otherwise).
        let reason = e.as_db_error().map(|d| d.message()).unwrap_or_default();
        let code = e.code().map(SqlState::code).unwrap_or_default();
        match &failure {
            Failure::Login(now) if !matches!(last, Some(Failure::Login(was)) if was == now) => {
                tracing::error!(target: "session::postgres", code, reason, "postgres refused the store's login")
            }
            _ => {
                tracing::debug!(target: "session::postgres", error = %e, code, reason, "a connect failed")
            }
        }
        failure
    }

    /// A refusal by the server itself (it answered with a code) holds connects off, except a
    /// server starting up (57P03): it is about to take connections, and every restart would
    /// fail calls for the hold-off after the server is ready.
    fn hold_off(&self, e: &tokio_postgres::Error) -> Option<Duration> {
        e.code()
            .is_some_and(|c| *c != SqlState::CANNOT_CONNECT_NOW)
            .then_some(HOLD_OFF)
    }

    fn connecting(&self) {
        tracing::debug!(target: "session::postgres", "connecting");
    }

    fn holding_off(&self) {
        tracing::debug!(target: "session::postgres", "connects held off");
    }
}

/// What a failed connect says to the checkouts waiting for it.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The server is down, refusing connections, full or starting: worth a retry later.
    Outage(String),
    /// The server refused the login (its SQLSTATE): the connection string's user, password
    /// or database is wrong, which no retry mends.
    Login(String),
}

impl Failure {
    fn to_error(&self) -> StoreError {
        match self {
            Failure::Outage(kind) => StoreError::Unavailable(kind.clone()),
            Failure::Login(code) => login_error(code),
        }
    }
}

/// Whether the server refused the login itself (a wrong user or password, a database that
/// doesn't exist, no right to connect to it), as opposed to being unable to serve now.
fn login_refused(code: &SqlState) -> bool {
    [
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        SqlState::INVALID_PASSWORD,
        SqlState::INVALID_CATALOG_NAME,
        SqlState::INSUFFICIENT_PRIVILEGE,
    ]
    .contains(code)
}

/// A refused login as a store error: not transient (a 500, not a 503 that invites retries),
/// and naming what to check, never the connection string.
fn login_error(code: &str) -> StoreError {
    StoreError::Backend(format!(
        "postgres refused the login ({code}): check the user, password and database of the \
         connection string"
    ))
}

/// A pooled connection as bb8 holds it: counted by the pool while it lives.
type Pooled = session_pool::Connection<PgConn>;

/// What a connect, or a test of a connection, reports to bb8.
type ConnectError = session_pool::ConnectError<tokio_postgres::Error>;

impl bb8::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = ConnectError;

    /// Not tried while a refusal holds connects off; the events "connecting" and "connects
    /// held off" under the hold-off's lock, the hold-off set before bb8 frees the slot, and a
    /// connect that succeeds lifts no hold-off (see `session_pool::Backend::hold_off`).
    async fn connect(&self) -> Result<Pooled, ConnectError> {
        self.connects.connect(self.open()).await
    }

    async fn is_valid(&self, conn: &mut Pooled) -> Result<(), ConnectError> {
        conn.client
            .simple_query("")
            .await
            .map(|_| ())
            .map_err(session_pool::ConnectError::Failed)
    }

    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.client.is_closed()
            || conn
                .waiting_since
                .is_some_and(|t| t.elapsed() >= self.stalled_after)
    }
}

impl Manager {
    async fn open(&self) -> Result<PgConn, tokio_postgres::Error> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let (client, connection) = self.config.connect(tls.clone()).await?;
            spawn_connection(connection);
            return Ok(PgConn {
                client,
                prepared: HashMap::new(),
                waiting_since: None,
            });
        }
        let (client, connection) = self.config.connect(NoTls).await?;
        spawn_connection(connection);
        Ok(PgConn {
            client,
            prepared: HashMap::new(),
            waiting_since: None,
        })
    }
}

/// The store's pool: its own (statements prepared once per connection), or an app's
/// `bb8-postgres` pool (statements sent with their types each time: no cache to keep there).
#[derive(Clone)]
pub(crate) enum Pools {
    Own(session_pool::Pool<Manager, Server>),
    Shared(PgPool),
}

/// A pooled connection of either kind.
pub(crate) enum Conn {
    Own(PooledConnection<'static, Manager>),
    Shared(PooledConnection<'static, PostgresConnectionManager<NoTls>>),
}

impl Conn {
    fn is_closed(&self) -> bool {
        match self {
            Conn::Own(c) => c.client.is_closed(),
            Conn::Shared(c) => c.is_closed(),
        }
    }

    /// Runs one statement: on the store's own connections, a statement prepared once per
    /// connection (one round trip after the first); else sent with its types (one round trip).
    pub(crate) async fn query(
        mut self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        match &mut self {
            Conn::Own(c) => {
                c.waiting_since = Some(Instant::now());
                let statement = match c.prepared.get(sql) {
                    Some(s) => s.clone(),
                    None => {
                        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                        let s = c.client.prepare_typed(sql, &types).await;
                        let s = s.inspect_err(|_| c.waiting_since = None)?;
                        c.prepared.insert(sql.to_owned(), s.clone());
                        s
                    }
                };
                let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
                let rows = c.client.query(&statement, &values).await;
                c.waiting_since = None;
                rows
            }
            Conn::Shared(c) => c.query_typed(sql, params).await,
        }
    }

    /// Runs `op` on the connection's client (several statements, a transaction), marking the
    /// connection busy meanwhile (see [`PgConn`]'s `waiting_since`).
    pub(crate) async fn with_client<T, F>(mut self, op: F) -> Result<T, tokio_postgres::Error>
    where
        F: AsyncFnOnce(&mut Client) -> Result<T, tokio_postgres::Error>,
    {
        match &mut self {
            Conn::Own(c) => {
                c.waiting_since = Some(Instant::now());
                let done = op(&mut c.client).await;
                c.waiting_since = None;
                done
            }
            Conn::Shared(c) => op(c).await,
        }
    }

    /// Statements without parameters (the schema).
    pub(crate) async fn batch_execute(mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        match &mut self {
            Conn::Own(c) => {
                c.waiting_since = Some(Instant::now());
                let done = c.client.batch_execute(sql).await;
                c.waiting_since = None;
                done
            }
            Conn::Shared(c) => c.batch_execute(sql).await,
        }
    }
}

/// A Postgres failure as a [`StoreError`]: a statement cancelled by `statement_timeout` is a
/// timeout, a read-only server (a replica, or a primary demoted) refuses writes, a lost
/// connection is an outage; the message is Postgres's, which names no credential.
pub(crate) fn store_error(e: &tokio_postgres::Error, limit: Duration) -> StoreError {
    if let Some(code) = e.code() {
        return match *code {
            SqlState::QUERY_CANCELED => StoreError::Timeout(limit),
            SqlState::READ_ONLY_SQL_TRANSACTION => {
                StoreError::Rejected("the server is read-only (a replica?)".into())
            }
            SqlState::ADMIN_SHUTDOWN
            | SqlState::CRASH_SHUTDOWN
            | SqlState::CANNOT_CONNECT_NOW
            | SqlState::TOO_MANY_CONNECTIONS => StoreError::Unavailable(code.code().to_owned()),
            SqlState::DISK_FULL | SqlState::OUT_OF_MEMORY => {
                StoreError::Rejected(code.code().to_owned())
            }
            // At connect only (a shared pool's connect error comes here).
            ref c
                if login_refused(c)
                    && e.as_db_error().and_then(|d| d.parsed_severity())
                        == Some(tokio_postgres::error::Severity::Fatal) =>
            {
                login_error(c.code())
            }
            _ => StoreError::Backend(format!("postgres error {}", code.code())),
        };
    }
    if e.is_closed() {
        return StoreError::Unavailable("the connection to postgres was closed".into());
    }
    StoreError::Unavailable("postgres could not be reached".into())
}

/// Whether the call failed because its connection is gone (worth one retry on another).
fn lost_connection(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || matches!(
            e.code(),
            Some(c) if *c == SqlState::ADMIN_SHUTDOWN || *c == SqlState::CRASH_SHUTDOWN
        )
}

/// Tries of one call when its connection turns out dead.
const TRIES: u32 = 3;

/// The pool and the time limit of one call.
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) pool: Pools,
    /// Bounds a whole call: checkout plus statement.
    pub(crate) limit: Duration,
    /// The server's `statement_timeout` (what a cancelled statement reports).
    pub(crate) statement_timeout: Duration,
    /// The pool's checkout time limit (what a checkout that found no connection reports).
    pub(crate) checkout_timeout: Duration,
    /// One permit per pooled connection, handed out first come first served: bb8 hands a
    /// returned connection to whichever task asks next, so under load a task that loops
    /// (every request: a load, then a save) can take it again ahead of those waiting, and
    /// they time out. With the permits, at most one task per connection asks the pool.
    pub(crate) permits: Option<Arc<Semaphore>>,
}

impl Db {
    /// Connections open, and idle.
    pub(crate) fn connections(&self) -> usize {
        self.state().0
    }

    pub(crate) fn state(&self) -> (usize, usize) {
        let s = match &self.pool {
            Pools::Own(p) => p.state(),
            Pools::Shared(p) => p.state(),
        };
        (s.connections as usize, s.idle_connections as usize)
    }

    /// Runs `op` on a pooled connection within the time limit. With `retry` (reads only), a
    /// call that failed because its connection died (a restarted server,
    /// `pg_terminate_backend`) is tried again on another one, up to [`TRIES`] times in all. A
    /// write is never sent twice: its connection may have died after the server committed it,
    /// and a second run would answer for the changed row (a destroy finding nothing, a create
    /// colliding with itself); it fails with a transient error instead. Connections already
    /// known dead are skipped before anything is sent.
    pub(crate) async fn run<T, F, Fut>(&self, retry: bool, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let (limit, statement) = (self.limit, self.statement_timeout);
        let attempt = async {
            let _permit = match &self.permits {
                Some(p) => Some(
                    tokio::time::timeout(self.checkout_timeout, Arc::clone(p).acquire_owned())
                        .await
                        .map_err(|_| StoreError::Timeout(self.checkout_timeout))?
                        .map_err(|_| StoreError::Unavailable("the pool is closed".into()))?,
                ),
                None => None,
            };
            let mut tries = 0;
            loop {
                tries += 1;
                let conn = self.checkout().await?;
                match op(conn).await {
                    Ok(v) => return Ok(v),
                    Err(e) if retry && tries < TRIES && lost_connection(&e) => {
                        tracing::debug!(target: "session::postgres", "a pooled connection died; retrying on another");
                    }
                    Err(e) => return Err(store_error(&e, statement)),
                }
            }
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout(limit)),
        }
    }

    /// A connection from the pool, skipping those already known dead (their socket closed:
    /// a restart or a terminated backend), which the pool then replaces. No round trip.
    async fn checkout(&self) -> Result<Conn, StoreError> {
        let map = |e: RunError<tokio_postgres::Error>| match e {
            RunError::TimedOut => StoreError::Timeout(self.checkout_timeout),
            RunError::User(e) => store_error(&e, self.limit),
        };
        let observe = |c: session_pool::Checkout| {
            telemetry::pool_checkout("postgresql", c.secs, c.waited, c.in_use);
        };
        let observe = telemetry::ENABLED.then_some(&observe as &(dyn Fn(_) + Sync));
        for _ in 0..=self.connections() {
            let conn = match &self.pool {
                // A connect that fails while this checkout waits ends the wait when no
                // connection can come to it any more (the server refused or is unreachable);
                // only silence waits out the timeout.
                Pools::Own(p) => Conn::Own(p.get_observed(observe).await.map_err(|e| match e {
                    CheckoutError::TimedOut => StoreError::Timeout(self.checkout_timeout),
                    CheckoutError::Connect(e) => store_error(&e, self.limit),
                    CheckoutError::Failed(failure) => failure.to_error(),
                    CheckoutError::HeldOff => StoreError::Unavailable(format!(
                        "no connect tried: postgres refused one less than {HOLD_OFF:?} ago"
                    )),
                })?),
                Pools::Shared(p) => Conn::Shared(p.get_owned().await.map_err(map)?),
            };
            if !conn.is_closed() {
                return Ok(conn);
            }
            // Dropped as broken: bb8-postgres checks `is_closed` when a connection comes back.
        }
        Err(StoreError::Unavailable(
            "every pooled connection to postgres was closed".into(),
        ))
    }
}
