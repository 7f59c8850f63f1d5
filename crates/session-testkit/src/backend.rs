//! What an attack runs against: a [`Backend`] (a store of one [`Kind`] behind a
//! [`Recorder`]) and the configuration options of the app in front of it, together a
//! [`Variant`]. [`variants`] is the one place that lists them: an attack iterates over what it
//! returns, so a new store or a new option set (rolling, renew, guest, a cookie mode, app
//! servers sharing a store) is a new entry there, not a change to every attack.

use std::sync::Arc;

use serde_json::Value;
use session_core::store::{DynStore, Loaded, Store, StoreError, StoreKey};
use session_core::{Config, ConfigBuilder};
use session_hyper::{SessionLayer, SessionLayerBuilder};
use session_store_memory::MemoryStore;

use crate::app::too_large_is_413;
use crate::capture::KEY1;
use crate::served::App;
use crate::stores::{Pause, Recorder};

/// The kinds of store an attack can run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The memory store.
    Memory,
    /// Redis in the library's own format (`REDIS_URL`).
    RedisV1,
    /// Redis in koa's format (`REDIS_URL`).
    RedisKoa,
    /// Redis in the library's own format through the client cache (`REDIS_URL`).
    RedisCached,
    /// PostgreSQL, a fresh table (`DATABASE_URL`).
    Postgres,
    /// A six-node Redis Cluster started for the backend (stopped with its last clone).
    RedisCluster,
}

impl Kind {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::RedisV1 => "redis-v1",
            Kind::RedisKoa => "redis-koa",
            Kind::RedisCached => "redis-cached",
            Kind::Postgres => "postgres",
            Kind::RedisCluster => "redis-cluster",
        }
    }
}

/// A store an attack runs against, behind a [`Recorder`]; clones share it.
#[derive(Clone)]
pub struct Backend {
    kind: Kind,
    store: Recorder<Arc<dyn DynStore>>,
    #[cfg(feature = "redis")]
    redis: Option<RedisSide>,
}

/// What a Redis backend's raw checks need.
#[cfg(feature = "redis")]
#[derive(Clone)]
struct RedisSide {
    store: session_store_redis::RedisStore,
    prefix: String,
    /// The server's URL, or every node's of a cluster.
    nodes: Vec<String>,
    /// The cluster this backend runs on, stopped when the last backend on it goes.
    _cluster: Option<Arc<crate::redis::Cluster>>,
}

/// The Redis Cluster the cluster backends share while any of them lives: starting six nodes
/// for every attack would cost more than the attacks.
#[cfg(feature = "redis")]
async fn shared_cluster() -> Arc<crate::redis::Cluster> {
    static SHARED: std::sync::Mutex<std::sync::Weak<crate::redis::Cluster>> =
        std::sync::Mutex::new(std::sync::Weak::new());
    static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = STARTING.lock().await;
    if let Some(c) = SHARED.lock().unwrap().upgrade() {
        return c;
    }
    let c = Arc::new(crate::redis::Cluster::start().await);
    *SHARED.lock().unwrap() = Arc::downgrade(&c);
    c
}

impl Backend {
    fn with(kind: Kind, store: impl Store) -> Backend {
        let store: Arc<dyn DynStore> = Arc::new(store);
        Backend {
            kind,
            store: Recorder::new(store),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// A fresh memory store.
    pub fn memory() -> Backend {
        Backend::with(Kind::Memory, MemoryStore::new())
    }

    /// A fresh backend of `kind` (the servers from `REDIS_URL` and `DATABASE_URL`, under a
    /// prefix or table of its own). Panics for a kind whose feature this kit was built without.
    pub async fn new(kind: Kind) -> Backend {
        match kind {
            Kind::Memory => Backend::memory(),
            #[cfg(feature = "redis")]
            Kind::RedisV1 | Kind::RedisKoa | Kind::RedisCached => {
                use session_store_redis::Format;
                let format = if kind == Kind::RedisKoa {
                    Format::Koa
                } else {
                    Format::V1
                };
                let cache = if kind == Kind::RedisCached {
                    1 << 20
                } else {
                    0
                };
                let url = crate::redis::shared_url();
                let builder = session_store_redis::RedisStore::builder(url.clone());
                Backend::redis(kind, builder.format(format).client_cache(cache), vec![url]).await
            }
            #[cfg(feature = "redis")]
            Kind::RedisCluster => {
                let cluster = shared_cluster().await;
                let nodes = cluster.urls();
                let builder = session_store_redis::RedisStore::cluster(nodes.clone());
                let mut b = Backend::redis(kind, builder, nodes).await;
                if let Some(r) = &mut b.redis {
                    r._cluster = Some(cluster);
                }
                b
            }
            #[cfg(feature = "postgres")]
            Kind::Postgres => Backend::with(kind, crate::postgres::store("attack").await),
            #[allow(unreachable_patterns)]
            other => panic!(
                "{}: the test kit was built without its feature",
                other.name()
            ),
        }
    }

    /// A Redis store from `builder` under a fresh prefix, on the server (or cluster) `nodes`.
    #[cfg(feature = "redis")]
    pub async fn redis(
        kind: Kind,
        builder: session_store_redis::RedisStoreBuilder,
        nodes: Vec<String>,
    ) -> Backend {
        let prefix = format!("{}:", crate::values::unique("attack"));
        let store = builder.prefix(prefix.clone()).build().await.unwrap();
        let mut b = Backend::with(kind, store.clone());
        b.redis = Some(RedisSide {
            store,
            prefix,
            nodes,
            _cluster: None,
        });
        b
    }

    /// A second app server's view of this backend: for the Redis kind with the client cache,
    /// a store of its own (its own cache and tracking connection) on the same server and
    /// prefix, behind a recorder that shares this one's record and faults; for every other
    /// kind, the same store.
    pub async fn twin(&self) -> Backend {
        #[cfg(feature = "redis")]
        if let (Kind::RedisCached, Some(r)) = (self.kind, &self.redis) {
            let store = session_store_redis::RedisStore::builder(r.nodes[0].clone())
                .prefix(r.prefix.clone())
                .client_cache(1 << 20)
                .build()
                .await
                .unwrap();
            let erased: Arc<dyn DynStore> = Arc::new(store.clone());
            return Backend {
                kind: self.kind,
                store: self.store.sharing(erased),
                redis: Some(RedisSide { store, ..r.clone() }),
            };
        }
        self.clone()
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its name in messages.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The keys records were created under since the last call.
    pub fn take_created(&self) -> Vec<StoreKey> {
        self.store.take_created()
    }

    /// The store's faults and counters.
    pub fn pause(&self) -> &Pause {
        &self.store.pause
    }

    /// A load (counted by the recorder).
    pub async fn load(&self, k: &StoreKey) -> Result<Loaded, StoreError> {
        self.store.load(k).await
    }

    /// A layer on this store under `config`.
    pub fn layer(&self, config: Config) -> SessionLayerBuilder {
        SessionLayer::store(config, self.store.clone())
    }

    /// Panics if a record created since the last [`Backend::take_created`] (and still live)
    /// holds `needle`; how many of them are live.
    pub async fn assert_no_live_record_holds(&self, needle: &str, context: &str) -> usize {
        let mut live = 0;
        for k in self.take_created() {
            if let Loaded::Live(r) = self.load(&k).await.unwrap() {
                live += 1;
                let text = Value::Object(r.data).to_string();
                assert!(
                    !text.contains(needle),
                    "{context}: a live record still holds the destroyed data"
                );
            }
        }
        live
    }

    /// The Redis store of a Redis backend.
    #[cfg(feature = "redis")]
    pub fn redis_store(&self) -> Option<&session_store_redis::RedisStore> {
        self.redis.as_ref().map(|r| &r.store)
    }

    /// Every key of a Redis backend, with the URL of the node that holds it (a cluster's
    /// masters); none for other backends.
    #[cfg(feature = "redis")]
    pub async fn redis_keys(&self) -> Vec<(String, String)> {
        let Some(r) = &self.redis else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for url in &r.nodes {
            if r.nodes.len() > 1 {
                let role = crate::redis::cmd(url, &["INFO", "replication"]).await;
                let master = match role {
                    redis::Value::BulkString(b) => {
                        String::from_utf8_lossy(&b).contains("role:master")
                    }
                    redis::Value::VerbatimString { text, .. } => text.contains("role:master"),
                    _ => false,
                };
                if !master {
                    continue;
                }
            }
            for k in crate::redis::keys(url, &r.prefix).await {
                out.push((url.clone(), k));
            }
        }
        out
    }

    /// Every key of a Redis backend has a TTL (none is -1); how many there are (0 for other
    /// backends).
    pub async fn assert_every_key_has_a_ttl(&self) -> usize {
        #[cfg(feature = "redis")]
        {
            let keys = self.redis_keys().await;
            for (url, k) in &keys {
                let pttl = crate::redis::int(url, &["PTTL", k]).await;
                assert!(pttl > 0 || pttl == -2, "a key without a TTL (PTTL {pttl})");
            }
            keys.len()
        }
        #[cfg(not(feature = "redis"))]
        0
    }
}

/// Configuration options an app of a [`Variant`] is built with (before an attack's own).
pub type Options = Arc<dyn Fn(ConfigBuilder) -> ConfigBuilder + Send + Sync>;

/// The unit an attack iterates over: a backend, the options of the apps it serves, and how
/// many app servers share it (requests go to them in turn).
#[derive(Clone)]
pub struct Variant {
    /// The store.
    pub backend: Backend,
    options: Options,
    label: String,
    servers: usize,
}

impl Variant {
    /// `backend` under `options`, named `name` in messages (after the backend's name).
    pub fn new(backend: Backend, name: &str, options: Options) -> Variant {
        let label = if name.is_empty() {
            backend.name().to_owned()
        } else {
            format!("{} {name}", backend.name())
        };
        Variant {
            backend,
            options,
            label,
            servers: 1,
        }
    }

    /// The same, served by `n` app servers sharing the backend, each with a store of its own
    /// where the backend has one to give ([`Backend::twin`]): requests go to them in turn.
    pub fn on_servers(mut self, n: usize) -> Variant {
        self.servers = n.max(1);
        self
    }

    /// `backend` under the default options (an attack on one store only).
    pub fn plain(backend: Backend) -> Variant {
        Variant::new(backend, "", Arc::new(|b| b))
    }

    /// Its name in messages: the backend's, and the options'.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `base` with the attack's event recorder as its hooks
    /// ([`recording_hooks`](crate::capture::recording_hooks)), the variant's options, then
    /// `f`'s (hooks `f` sets replace the recorder's unless they start from them).
    pub fn config_with(
        &self,
        base: ConfigBuilder,
        f: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Config {
        let base = base.hooks(crate::capture::recording_hooks());
        f((self.options)(base)).build().unwrap()
    }

    /// A config under [`KEY1`] with the variant's options, then `f`'s.
    pub fn config(&self, f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
        self.config_with(Config::builder().key(KEY1.to_vec()), f)
    }

    /// A layer on the backend under [`Variant::config`].
    pub fn layer(&self, f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> SessionLayerBuilder {
        self.backend.layer(self.config(f))
    }

    /// The test app behind [`Variant::layer`] (on each of its app servers), answering 413 for
    /// a session grown past a limit.
    pub async fn app(&self, f: impl Fn(ConfigBuilder) -> ConfigBuilder) -> App {
        let mut layers = Vec::new();
        for i in 0..self.servers {
            let backend = if i == 0 {
                self.backend.clone()
            } else {
                self.backend.twin().await
            };
            let layer = backend.layer(self.config(&f)).on_error(too_large_is_413);
            layers.push(layer.build().unwrap());
        }
        App::serve_all(layers).await
    }
}

/// A fresh backend of each of `kinds`, under the default options: what an attack iterates
/// over when no option concerns it. An option matrix builds its own [`Variant`]s.
pub async fn variants(kinds: &[Kind]) -> Vec<Variant> {
    let mut out = Vec::new();
    for kind in kinds {
        out.push(Variant::plain(Backend::new(*kind).await));
    }
    out
}
