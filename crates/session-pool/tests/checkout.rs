//! The shared checkout against a fake server whose connects fail on command: waiting
//! checkouts fail at once when no connection can come, one refused connect fails nobody while
//! other connections serve, a connect that succeeded counts until bb8 has its connection, and
//! the hold-off (set before the slot is freed, lifted by time only). Counted over hundreds of
//! rounds; the only time limit is a checkout timeout far beyond anything the work needs, so a
//! busy machine slows these tests down but fails none.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use session_pool::{Backend, CheckoutError, ConnectError, Connection, Connects, Pool};

/// Far beyond what any checkout here needs: a checkout that ends by it has missed a failure.
const PATIENCE: Duration = Duration::from_secs(60);

/// A fake server: refuses every connect while `down`, and any beyond `limit` open connections.
#[derive(Default)]
struct Server {
    down: AtomicBool,
    limit: AtomicUsize,
    open: Arc<AtomicUsize>,
    refused: AtomicUsize,
}

impl Server {
    fn new(limit: usize) -> Arc<Self> {
        let s = Self::default();
        s.limit.store(limit, Ordering::SeqCst);
        Arc::new(s)
    }

    async fn connect(&self) -> Result<Open, Refused> {
        // A connect takes a turn of the runtime, as a real one takes a round trip.
        tokio::task::yield_now().await;
        let limit = self.limit.load(Ordering::SeqCst);
        let taken = !self.down.load(Ordering::SeqCst)
            && self
                .open
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < limit).then_some(n + 1)
                })
                .is_ok();
        if taken {
            Ok(Open(Arc::clone(&self.open)))
        } else {
            self.refused.fetch_add(1, Ordering::SeqCst);
            Err(Refused)
        }
    }
}

/// An open connection of the fake server.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Refused;

/// The test's backend: every failure reads "refused"; holds connects off for `hold` if set;
/// records when connects began and were held off (under the pool's lock).
#[derive(Default)]
struct Test {
    hold: Option<Duration>,
    announced: AtomicUsize,
    events: Mutex<Vec<(Instant, &'static str)>>,
}

impl Test {
    fn times(&self, what: &str) -> Vec<Instant> {
        let events = self.events.lock().unwrap();
        let mut t: Vec<_> = events.iter().filter(|e| e.1 == what).map(|e| e.0).collect();
        t.sort();
        t
    }
}

impl Backend for Test {
    type Error = Refused;
    type Failure = &'static str;
    fn failure(&self, _: &Refused, _: Option<&&'static str>) -> &'static str {
        self.announced.fetch_add(1, Ordering::SeqCst);
        "refused"
    }
    fn hold_off(&self, _: &Refused) -> Option<Duration> {
        self.hold
    }
    fn connecting(&self) {
        self.events
            .lock()
            .unwrap()
            .push((Instant::now(), "connecting"));
    }
    fn holding_off(&self) {
        self.events
            .lock()
            .unwrap()
            .push((Instant::now(), "held off"));
    }
}

struct Manager {
    server: Arc<Server>,
    connects: Arc<Connects<Test>>,
}

impl bb8::ManageConnection for Manager {
    type Connection = Connection<Open>;
    type Error = ConnectError<Refused>;
    async fn connect(&self) -> Result<Connection<Open>, Self::Error> {
        self.connects.connect(self.server.connect()).await
    }
    async fn is_valid(&self, _: &mut Connection<Open>) -> Result<(), Self::Error> {
        Ok(())
    }
    fn has_broken(&self, _: &mut Connection<Open>) -> bool {
        false
    }
}

type TestPool = Pool<Manager, Test>;

fn pool(server: &Arc<Server>, backend: Test, size: u32) -> (TestPool, Arc<Connects<Test>>) {
    pool_with(server, backend, bb8::Pool::builder().max_size(size))
}

fn pool_with(
    server: &Arc<Server>,
    backend: Test,
    builder: bb8::Builder<Manager>,
) -> (TestPool, Arc<Connects<Test>>) {
    let connects = Connects::new(backend);
    let manager = Manager {
        server: Arc::clone(server),
        connects: Arc::clone(&connects),
    };
    let builder = builder.connection_timeout(PATIENCE);
    (Pool::new(builder, &connects, manager), connects)
}

/// What a checkout came to, as a word for counting.
fn outcome<T>(r: &Result<T, CheckoutError<Refused, &'static str>>) -> &'static str {
    match r {
        Ok(_) => "served",
        Err(CheckoutError::Failed("refused")) => "refused",
        Err(CheckoutError::Failed(_)) => "other failure",
        Err(CheckoutError::HeldOff) => "held off",
        Err(CheckoutError::TimedOut) => "timed out",
        Err(CheckoutError::Connect(_)) => "connect error",
    }
}

/// `n` checkouts at once, each holding its connection for a turn of the runtime; how many
/// came to what.
async fn burst(pool: &TestPool, n: usize) -> Vec<&'static str> {
    let calls = (0..n).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let got = pool.get().await;
            tokio::task::yield_now().await;
            outcome(&got)
        })
    });
    let done = futures_util::future::join_all(calls).await;
    done.into_iter().map(Result::unwrap).collect()
}

fn count(outcomes: &[&str], what: &str) -> usize {
    outcomes.iter().filter(|&&o| o == what).count()
}

/// A server that refuses everything: every checkout, one at a time or 20 at once, ends with
/// the refusal (none by the 60 s timeout), 200 rounds; and once the server takes connections
/// again, the next checkout gets one. (Without the fast failure, the first round's checkouts
/// all wait out the timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_checkouts_fail_at_once_when_no_connection_can_come() {
    let server = Server::new(usize::MAX);
    server.down.store(true, Ordering::SeqCst);
    let (pool, _) = pool(&server, Test::default(), 4);
    let mut checkouts = 0;
    for round in 0..200 {
        let mut outcomes = burst(&pool, 20).await;
        outcomes.push(outcome(&pool.get().await));
        checkouts += outcomes.len();
        assert_eq!(
            count(&outcomes, "refused"),
            outcomes.len(),
            "round {round}: {outcomes:?}"
        );
    }
    println!(
        "{checkouts} checkouts refused; the server refused {} connects",
        server.refused.load(Ordering::SeqCst)
    );
    assert!(server.refused.load(Ordering::SeqCst) >= 200);
    server.down.store(false, Ordering::SeqCst);
    assert_eq!(outcome(&pool.get().await), "served");
}

/// A server that takes 2 connections and refuses the rest, a pool of 8: from a cold pool, 50
/// checkouts at once are all served by the 2 (the refused connects end no wait while they
/// serve). 100 rounds, each on a new pool and server; the refusals happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_connect_fails_nobody_while_others_serve() {
    let (mut outcomes, mut refused) = (Vec::new(), 0);
    for _ in 0..100 {
        let server = Server::new(2);
        let (pool, _) = pool(&server, Test::default(), 8);
        outcomes.extend(burst(&pool, 50).await);
        outcomes.extend(burst(&pool, 50).await);
        refused += server.refused.load(Ordering::SeqCst);
    }
    println!("{} checkouts, {refused} connects refused", outcomes.len());
    assert!(refused > 0, "the server refused no connect");
    assert_eq!(
        count(&outcomes, "served"),
        outcomes.len(),
        "{} of {} not served: {} refused, {} timed out",
        outcomes.len() - count(&outcomes, "served"),
        outcomes.len(),
        count(&outcomes, "refused"),
        count(&outcomes, "timed out")
    );
}

/// Makes each new connection wait, after its connect succeeded and before bb8 counts it, until
/// the server refused the other connects of its wave: the moment a waiting checkout that heard
/// of a refusal must still count the connection on its way.
#[derive(Debug)]
struct AfterRefusals {
    connects: Arc<Connects<Test>>,
    refusals: usize,
}

impl bb8::CustomizeConnection<Connection<Open>, ConnectError<Refused>> for AfterRefusals {
    fn on_acquire<'a>(
        &'a self,
        _: &'a mut Connection<Open>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), ConnectError<Refused>>> + Send + 'a>>
    {
        Box::pin(async move {
            while self.connects.backend().announced.load(Ordering::SeqCst) < self.refusals {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(())
        })
    }
}

/// A connect that succeeded counts as a connection that can come until bb8 has it: a server
/// that takes 1 connection of a pool of 4, 10 checkouts at once from a cold pool, the new
/// connection held (between the connect and bb8) until the 3 other connects were refused and
/// announced. Every checkout is served, 100 rounds. (When the count ended with the connect,
/// and bb8's count of connections took over only once bb8 had it, 997 to 1000 of the 1000
/// checkouts failed with the refusal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_on_its_way_to_the_pool_still_counts() {
    let mut outcomes = Vec::new();
    for _ in 0..100 {
        let server = Server::new(1);
        let connects = Connects::new(Test::default());
        let manager = Manager {
            server: Arc::clone(&server),
            connects: Arc::clone(&connects),
        };
        let builder = bb8::Pool::builder()
            .max_size(4)
            .connection_timeout(PATIENCE)
            .connection_customizer(Box::new(AfterRefusals {
                connects: Arc::clone(&connects),
                refusals: 3,
            }));
        let pool = Pool::new(builder, &connects, manager);
        outcomes.extend(burst(&pool, 10).await);
        assert!(server.refused.load(Ordering::SeqCst) >= 3);
    }
    assert_eq!(
        count(&outcomes, "served"),
        outcomes.len(),
        "{} of {} not served",
        outcomes.len() - count(&outcomes, "served"),
        outcomes.len()
    );
}

/// A future that records whether it was polled, then fails or succeeds when told.
async fn told(
    polled: &AtomicBool,
    answer: tokio::sync::oneshot::Receiver<bool>,
) -> Result<Open, Refused> {
    polled.store(true, Ordering::SeqCst);
    if answer.await == Ok(true) {
        Ok(Open(Arc::new(AtomicUsize::new(1))))
    } else {
        Err(Refused)
    }
}

/// The hold-off: a refusal sets it inside the connect, a connect that began before the
/// refusal and succeeds after it does not lift it, and a connect during it fails without
/// being tried. (A one-hour hold-off: nothing here depends on how fast the machine is.)
#[tokio::test]
async fn a_refusal_holds_connects_off_and_a_success_does_not_lift_it() {
    let hold = Duration::from_secs(3600);
    let connects = Connects::new(Test {
        hold: Some(hold),
        ..Test::default()
    });
    let polled = [(); 3].map(|_| AtomicBool::new(false));
    let (ok, ok_rx) = tokio::sync::oneshot::channel();
    let (no, no_rx) = tokio::sync::oneshot::channel();
    let mut first = std::pin::pin!(connects.connect(told(&polled[0], ok_rx)));
    // The first connect is under way (it began before any refusal).
    assert!(futures_util::poll!(first.as_mut()).is_pending());
    let second = connects.connect(told(&polled[1], no_rx));
    no.send(false).unwrap();
    assert!(matches!(second.await, Err(ConnectError::Failed(Refused))));
    ok.send(true).unwrap();
    assert!(
        first.await.is_ok(),
        "the first connect succeeds after the refusal"
    );
    let (_, never) = tokio::sync::oneshot::channel();
    let third = connects.connect(told(&polled[2], never)).await;
    assert!(matches!(third, Err(ConnectError::HeldOff)), "{third:?}");
    assert!(
        !polled[2].load(Ordering::SeqCst),
        "a held-off connect is not tried"
    );
    let backend = connects.backend();
    assert_eq!(backend.times("connecting").len(), 2);
    assert_eq!(backend.times("held off").len(), 1);
}

/// The hold-off on a busy pool: a server that takes 2 connections, a pool of 8, a hold-off
/// of 20 ms after each refusal; 20 bursts of 50 checkouts. Nobody fails (the 2 serve), the
/// server refused some connects, and no connect began within the hold-off after the pool held
/// connects off (both moments are taken under the pool's lock, so their order is the pool's
/// own, however slow the machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connect_begins_during_a_hold_off() {
    let hold = Duration::from_millis(20);
    let server = Server::new(2);
    let backend = Test {
        hold: Some(hold),
        ..Test::default()
    };
    let (pool, connects) = pool(&server, backend, 8);
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        outcomes.extend(burst(&pool, 50).await);
    }
    let backend = connects.backend();
    let (begun, holds) = (backend.times("connecting"), backend.times("held off"));
    println!(
        "{} checkouts; {} connects began, {} refused, {} hold-offs",
        outcomes.len(),
        begun.len(),
        server.refused.load(Ordering::SeqCst),
        holds.len()
    );
    assert_eq!(count(&outcomes, "served"), outcomes.len());
    assert!(!holds.is_empty(), "no connect was refused");
    for &h in &holds {
        if let Some(c) = begun.iter().find(|&&c| h <= c && c < h + hold) {
            panic!("a connect began {:?} into a hold-off", *c - h);
        }
    }
}

/// With every connection gone and the server refusing, a checkout during the hold-off fails
/// at once with the refusal (no connect is tried), 200 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_during_a_hold_off_fails_at_once_with_the_refusal() {
    let server = Server::new(0);
    let backend = Test {
        hold: Some(Duration::from_secs(3600)),
        ..Test::default()
    };
    let (pool, connects) = pool(&server, backend, 4);
    let mut outcomes = Vec::new();
    for _ in 0..200 {
        outcomes.push(outcome(&pool.get().await));
    }
    assert_eq!(count(&outcomes, "refused"), outcomes.len(), "{outcomes:?}");
    assert_eq!(
        server.refused.load(Ordering::SeqCst),
        1,
        "one connect tried"
    );
    assert_eq!(connects.backend().times("connecting").len(), 1);
}
