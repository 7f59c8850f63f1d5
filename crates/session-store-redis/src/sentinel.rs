//! Redis Sentinel ([`RedisStore::sentinel`](crate::RedisStore::sentinel)): which server is the
//! master now, and what the store does while the Sentinels replace it.
//!
//! - **Finding the master.** Every new connection (the pool's, the client cache's tracking
//!   connection) asks every Sentinel at once for the master (`SENTINEL MASTER <name>`) and
//!   takes the answer of the highest configuration epoch, then checks with `ROLE` on its own
//!   connection that the server is a master. redis-rs's `Sentinel` client takes the first
//!   Sentinel in list order whose master passes a role check; right after a switch a Sentinel
//!   that has not heard of it yet names the old master, which still answers `ROLE` "master"
//!   until the Sentinels demote it (seconds later), and writes sent there are lost. So the
//!   lookup is ours; the connections are redis-rs's.
//! - **Listening.** One subscription per Sentinel (`+try-failover`,
//!   `+failover-state-send-slaveof-noone`, `+promoted-slave`, `+switch-master`,
//!   `-failover-abort-*`), each `PING`ed every [`HEARTBEAT`]. A failover of our master started
//!   by any Sentinel closes the gate ([`Sentinel::gate`]): every call fails at once (a 503)
//!   instead of writing to a master about to be replaced. Once the Sentinel sends the chosen
//!   replica `REPLICAOF NO ONE`, calls go to that replica: they fail fast while its `ROLE` is
//!   not yet "master", and it is used from the moment it answers as one (the Sentinel itself
//!   announces the promotion only after its next `INFO` of the replica, up to a second later).
//!   An abort, or [`GATE_MAX`] without a promotion, ends the gate and the candidate. Each
//!   change moves the [`Sentinel::generation`] on: connections made before it are dropped as
//!   they come out of the pool, and the client cache drops its tracking connection and
//!   everything it holds.
//! - **Refusals.** A connection that fails forgets the address a promotion named, so the next
//!   one asks the Sentinels again ([`Sentinel::forget`]); a server that is not a master, or a
//!   `READONLY` answer (the server was turned into a replica), also retires every connection
//!   made so far ([`Sentinel::demoted`]). A candidate the Sentinel is still promoting is kept
//!   through both.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisError, RedisResult};

/// How often each Sentinel subscription is proved alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(500);
/// The longest the gate stays closed without a promotion or an abort.
pub(crate) const GATE_MAX: Duration = Duration::from_secs(10);
/// Least time between two attempts to subscribe to one Sentinel.
const RESUBSCRIBE_EVERY: Duration = Duration::from_millis(500);

/// The master behind a set of Sentinels. Shared by the pool's manager, the client cache and
/// the store's calls.
pub(crate) struct Sentinel {
    name: String,
    sentinels: Vec<redis::Client>,
    /// The master's login and database (its address comes from the Sentinels).
    settings: redis::RedisConnectionInfo,
    /// Bounds each Sentinel's connect and reply.
    timeout: Duration,
    state: Mutex<State>,
    generation: AtomicU64,
    /// Per Sentinel: whether its subscription is up and answered its latest `PING`.
    listening: Vec<Arc<AtomicBool>>,
    started: AtomicBool,
    /// Dropped with the store: the subscriptions end.
    stop: tokio::sync::watch::Sender<()>,
}

#[derive(Default)]
struct State {
    /// Per Sentinel: the failover it started, and when its gate opens at the latest.
    gates: Vec<Option<Instant>>,
    /// The address a promotion or a switch named, used before asking the Sentinels.
    pinned: Option<Pin>,
}

/// A master's address the Sentinels announced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pin {
    addr: (String, u16),
    /// Until when it is a replica being promoted (its `ROLE` may not say "master" yet); `None`
    /// once the Sentinel announced the promotion.
    candidate_until: Option<Instant>,
}

impl Pin {
    fn promoting(&self) -> bool {
        self.candidate_until.is_some_and(|u| Instant::now() < u)
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An error of the lookup, read as an outage (a 503).
fn unavailable(why: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::NotConnected, why))
}

impl Sentinel {
    /// Sentinels at `urls` watching the master `name`; `settings` are the master's login and
    /// database.
    pub(crate) fn new(
        urls: &[String],
        name: String,
        settings: redis::RedisConnectionInfo,
        timeout: Duration,
    ) -> Result<Self, String> {
        if urls.is_empty() {
            return Err("no Sentinel given".to_owned());
        }
        if name.is_empty() {
            return Err("no master name given".to_owned());
        }
        let sentinels = urls
            .iter()
            .map(|u| redis::Client::open(u.as_str()).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let n = sentinels.len();
        Ok(Self {
            name,
            sentinels,
            settings,
            timeout,
            state: Mutex::new(State {
                gates: vec![None; n],
                pinned: None,
            }),
            generation: AtomicU64::new(0),
            listening: (0..n).map(|_| Arc::new(AtomicBool::new(false))).collect(),
            started: AtomicBool::new(false),
            stop: tokio::sync::watch::Sender::new(()),
        })
    }

    /// Moves on with every change of master (or a failover starting): connections made in an
    /// earlier generation are not used again.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a failover of the master is under way and no replica is being promoted yet:
    /// every call then fails at once.
    pub(crate) fn gate(self: &Arc<Self>) -> Option<session_core::store::StoreError> {
        self.listen();
        self.closed().then(|| {
            session_core::store::StoreError::Unavailable(
                "Redis Sentinel failover under way".to_owned(),
            )
        })
    }

    /// Whether the gate is closed (see [`Self::gate`]): the client cache neither serves nor
    /// reconnects meanwhile.
    pub(crate) fn closed(&self) -> bool {
        let now = Instant::now();
        let state = lock(&self.state);
        let promoting = state.pinned.as_ref().is_some_and(Pin::promoting);
        !promoting
            && state
                .gates
                .iter()
                .any(|g| g.is_some_and(|until| until > now))
    }

    /// Whether every Sentinel's subscription is up and answering: only then does the client
    /// cache serve entries (a change of master it might not hear of would leave them stale).
    pub(crate) fn hears_all(&self) -> bool {
        self.listening.iter().all(|l| l.load(Ordering::Acquire))
    }

    /// A connection to the server named as master failed: the next one asks the Sentinels,
    /// unless it is a replica being promoted.
    pub(crate) fn forget(&self) {
        let mut state = lock(&self.state);
        if !state.pinned.as_ref().is_some_and(Pin::promoting) {
            state.pinned = None;
        }
    }

    /// The server named as master is a replica (`ROLE`, or a write answered `READONLY`) on a
    /// connection made in generation `since`: forget it as [`Self::forget`] does, and retire
    /// every connection made so far, once (the other calls that saw the same demotion find
    /// the generation moved on already).
    pub(crate) fn demoted(&self, since: u64) {
        self.forget();
        let _ =
            self.generation
                .compare_exchange(since, since + 1, Ordering::AcqRel, Ordering::Acquire);
    }

    /// A connection to the master (checked with `ROLE`), with `config`; `resp3` for the client
    /// cache's tracking connection. Also the generation it belongs to.
    pub(crate) async fn connect(
        self: &Arc<Self>,
        config: &AsyncConnectionConfig,
        resp3: bool,
    ) -> RedisResult<(MultiplexedConnection, u64)> {
        self.listen();
        let generation = self.generation();
        let (host, port) = self.master().await?;
        let mut settings = self.settings.clone();
        if resp3 {
            settings = settings.set_protocol(redis::ProtocolVersion::RESP3);
        }
        let info = ConnectionAddr::Tcp(host, port)
            .into_connection_info()?
            .set_redis_settings(settings);
        let client = redis::Client::open(info)?;
        let mut conn = match client
            .get_multiplexed_async_connection_with_config(config)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                self.forget();
                return Err(e);
            }
        };
        let role: redis::Value = redis::cmd("ROLE").query_async(&mut conn).await?;
        let is_master = match &role {
            redis::Value::Array(parts) => {
                matches!(parts.first(), Some(redis::Value::BulkString(r)) if r.as_slice() == b"master")
            }
            _ => false,
        };
        if !is_master {
            // A replica still being promoted is kept: it is asked again on the next call.
            self.demoted(generation);
            return Err(unavailable(
                "the server the Sentinels name is not a master (yet)",
            ));
        }
        Ok((conn, generation))
    }

    /// The master's address: the one a promotion named, else the highest configuration
    /// epoch's among the Sentinels' answers.
    async fn master(&self) -> RedisResult<(String, u16)> {
        if let Some(p) = lock(&self.state).pinned.as_ref() {
            return Ok(p.addr.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        // Each Sentinel within half the budget: a silent one costs every connect that much, and
        // the others' answers still count.
        let budget = self.timeout / 2;
        let asks = self.sentinels.iter().map(|client| {
            let config = config.clone();
            let ask = async move {
                let mut c = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .ok()?;
                let reply: HashMap<String, String> = redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(&self.name)
                    .query_async(&mut c)
                    .await
                    .ok()?;
                let epoch = reply.get("config-epoch")?.parse::<u64>().ok()?;
                let port = reply.get("port")?.parse::<u16>().ok()?;
                Some((epoch, reply.get("ip")?.clone(), port))
            };
            async move { tokio::time::timeout(budget, ask).await.ok().flatten() }
        });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            // The highest epoch; the first Sentinel in list order among equals.
            .fold(None::<(u64, String, u16)>, |best, a| match best {
                Some(b) if b.0 >= a.0 => Some(b),
                _ => Some(a),
            })
            .map(|(_, host, port)| (host, port))
            .ok_or_else(|| unavailable("no Sentinel named the master"))
    }

    /// Starts the subscriptions, once (they need the runtime, which building doesn't).
    fn listen(self: &Arc<Self>) {
        // Every call passes here: a read, and a write only the first time.
        if self.started.load(Ordering::Acquire) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        for i in 0..self.sentinels.len() {
            tokio::spawn(subscribe(Arc::downgrade(self), i, self.stop.subscribe()));
        }
    }

    /// A message of Sentinel `i` on `channel`.
    fn heard(&self, i: usize, channel: &str, payload: &str) {
        let words: Vec<&str> = payload.split_whitespace().collect();
        // `+switch-master <name> <old ip> <old port> <new ip> <new port>`; the others carry an
        // instance: `master <name> <ip> <port>`, or `<kind> <id> <ip> <port> @ <name> ...`.
        let (name, addr) = if channel == "+switch-master" {
            (words.first().copied(), words.get(3..5))
        } else if words.first() == Some(&"master") {
            (words.get(1).copied(), words.get(2..4))
        } else {
            let at = words.iter().position(|w| *w == "@");
            (at.and_then(|a| words.get(a + 1)).copied(), words.get(2..4))
        };
        if name != Some(self.name.as_str()) {
            return;
        }
        let addr = addr.and_then(|a| Some((a[0].to_owned(), a[1].parse::<u16>().ok()?)));
        let mut state = lock(&self.state);
        match channel {
            "+try-failover" => {
                if let Some(g) = state.gates.get_mut(i) {
                    *g = Some(Instant::now() + GATE_MAX);
                }
                tracing::warn!(target: "session::redis", "Redis Sentinel failover started: calls fail until a replica is promoted");
            }
            "+failover-state-send-slaveof-noone" => {
                let Some(addr) = addr else { return };
                state.pinned = Some(Pin {
                    addr,
                    candidate_until: Some(Instant::now() + GATE_MAX),
                });
            }
            "+promoted-slave" | "+switch-master" => {
                state.gates.iter_mut().for_each(|g| *g = None);
                let Some(addr) = addr else { return };
                let same = state.pinned.as_ref().is_some_and(|p| p.addr == addr);
                state.pinned = Some(Pin {
                    addr,
                    candidate_until: None,
                });
                if same {
                    return; // connections already go there
                }
                tracing::warn!(target: "session::redis", "Redis Sentinel promoted a new master");
            }
            // `-failover-abort-*`: this Sentinel's failover is over; a replica it was promoting
            // is not the master.
            _ => {
                if let Some(g) = state.gates.get_mut(i) {
                    *g = None;
                }
                if !state.pinned.as_ref().is_some_and(Pin::promoting) {
                    return;
                }
                state.pinned = None;
            }
        }
        drop(state);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Listens to Sentinel `i` until the store is gone: subscribes, proves the subscription alive,
/// hands on its messages, and subscribes again after a failure.
async fn subscribe(sentinel: Weak<Sentinel>, i: usize, mut stop: tokio::sync::watch::Receiver<()>) {
    // Whether a subscription of this Sentinel was lost before.
    let mut lost = false;
    loop {
        let Some(s) = sentinel.upgrade() else { return };
        let (client, timeout, listening) = (
            s.sentinels[i].clone(),
            s.timeout,
            Arc::clone(&s.listening[i]),
        );
        drop(s);
        let opened = tokio::time::timeout(timeout, async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&[
                "+try-failover",
                "+failover-state-send-slaveof-noone",
                "+promoted-slave",
                "+switch-master",
            ])
            .await?;
            ps.psubscribe("-failover-abort-*").await?;
            Ok::<_, RedisError>(ps)
        })
        .await;
        if let Ok(Ok(ps)) = opened {
            let (mut sink, mut messages) = ps.split();
            if lost {
                // A failover may have gone unheard meanwhile: every connection looks again.
                let Some(s) = sentinel.upgrade() else { return };
                s.generation.fetch_add(1, Ordering::AcqRel);
            }
            listening.store(true, Ordering::Release);
            let mut beat = tokio::time::interval(HEARTBEAT);
            loop {
                tokio::select! {
                    msg = messages.next() => {
                        let Some(msg) = msg else { break };
                        let Some(s) = sentinel.upgrade() else { return };
                        let payload: String = msg.get_payload().unwrap_or_default();
                        s.heard(i, msg.get_channel_name(), &payload);
                    }
                    _ = beat.tick() => {
                        let pong = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            break;
                        }
                    }
                    _ = stop.changed() => return,
                }
            }
            listening.store(false, Ordering::Release);
            lost = true;
            tracing::debug!(target: "session::redis", sentinel = i, "lost a Sentinel subscription");
        }
        tokio::select! {
            () = tokio::time::sleep(RESUBSCRIBE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinel() -> Sentinel {
        Sentinel::new(
            &[
                "redis://127.0.0.1:1".to_owned(),
                "redis://127.0.0.1:2".to_owned(),
            ],
            "main".to_owned(),
            redis::RedisConnectionInfo::default(),
            Duration::from_millis(100),
        )
        .unwrap()
    }

    fn gated(s: &Sentinel) -> bool {
        s.closed()
    }

    #[test]
    fn a_failover_closes_the_gate_until_the_promotion() {
        let s = sentinel();
        s.heard(1, "+try-failover", "master main 127.0.0.1 6379");
        assert!(gated(&s));
        assert_eq!(s.generation(), 1);
        // The replica is told to become master: calls go to it from now on.
        let replica = "slave 127.0.0.1:6380 127.0.0.1 6380 @ main 127.0.0.1 6379";
        s.heard(1, "+failover-state-send-slaveof-noone", replica);
        assert!(!gated(&s));
        assert_eq!(s.generation(), 2);
        let pinned = || lock(&s.state).pinned.clone().map(|p| p.addr);
        assert_eq!(pinned(), Some(("127.0.0.1".to_owned(), 6380)));
        // Not a master yet: it is kept. Two calls seeing it retire connections once.
        s.demoted(2);
        s.demoted(2);
        assert_eq!(pinned(), Some(("127.0.0.1".to_owned(), 6380)));
        assert_eq!(s.generation(), 3);
        s.heard(1, "+promoted-slave", replica);
        assert_eq!(s.generation(), 3, "connections already go there");
        // The switch names the same master: nothing more to drop.
        s.heard(1, "+switch-master", "main 127.0.0.1 6379 127.0.0.1 6380");
        assert_eq!(s.generation(), 3);
        // Promoted: a failed connection forgets it.
        s.forget();
        assert_eq!(pinned(), None);
    }

    #[test]
    fn another_masters_failover_and_an_abort() {
        let s = sentinel();
        s.heard(0, "+try-failover", "master other 127.0.0.1 7000");
        assert!(!gated(&s));
        s.heard(0, "+try-failover", "master main 127.0.0.1 6379");
        s.heard(1, "+try-failover", "master main 127.0.0.1 6379");
        s.heard(
            0,
            "-failover-abort-not-elected",
            "master main 127.0.0.1 6379",
        );
        assert!(gated(&s), "Sentinel 1's failover still runs");
        s.heard(
            1,
            "-failover-abort-no-good-slave",
            "master main 127.0.0.1 6379",
        );
        assert!(!gated(&s));
        // An abort after the replica was chosen: it is not the master.
        s.heard(0, "+try-failover", "master main 127.0.0.1 6379");
        s.heard(
            0,
            "+failover-state-send-slaveof-noone",
            "slave 127.0.0.1:6380 127.0.0.1 6380 @ main 127.0.0.1 6379",
        );
        s.heard(
            0,
            "-failover-abort-slave-timeout",
            "master main 127.0.0.1 6379",
        );
        assert!(!gated(&s));
        assert!(lock(&s.state).pinned.is_none());
        // A malformed message changes nothing.
        s.heard(0, "+switch-master", "main 127.0.0.1");
        assert!(lock(&s.state).pinned.is_none());
    }

    #[test]
    fn bad_configurations_fail_at_construction() {
        let none: [String; 0] = [];
        assert!(Sentinel::new(&none, "m".into(), Default::default(), Duration::ZERO).is_err());
        assert!(
            Sentinel::new(
                &["redis://h:1".into()],
                String::new(),
                Default::default(),
                Duration::ZERO
            )
            .is_err()
        );
        assert!(
            Sentinel::new(
                &["nope://h".into()],
                "m".into(),
                Default::default(),
                Duration::ZERO
            )
            .is_err()
        );
    }
}
