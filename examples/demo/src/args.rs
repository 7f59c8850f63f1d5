//! The demo's command line: its flags (the module docs of `main.rs` say what each does) and
//! their parsing.

use session_core::{Algorithm, MaxAge, OverLimit};
use session_store_redis::RedisStore;

pub(crate) const USAGE: &str =
    "usage: demo [--port P] [--store cookie|memory|redis://HOST:PORT[/DB]|postgres://...
                    |redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER
                    |redis+cluster://HOST:PORT[,HOST:PORT...]] [--keys k1,k2]
            [--algorithm sha1|sha256|sha512] [--cookie-name NAME] [--max-age MS|session]
            [--prefix P] [--koa-compat] [--rolling] [--renew] [--guest] [--trust-proxy]
            [--encrypt] [--client-cache BYTES]
            [--migrate-from redis://HOST:PORT[/DB]|postgres://...
                            |tower-sessions+redis://HOST:PORT[/DB]|tower-sessions+postgres://...
                            |actix+redis://HOST:PORT[/DB]|express+redis://HOST:PORT[/DB]]
            [--migrate-key BASE64] [--migrate-secret SECRET]... [--migrate-cookie NAME]
            [--drain [--drain-clear-after UNIX_SECONDS]]
            [--max-sessions N [--over-limit refuse|end-oldest]] [--csrf]
            [--metrics-addr HOST:PORT] [--audit-log FILE]

routes: GET / (views); GET|PUT|DELETE /session; POST /session/regenerate; PUT /session/owner;
        GET|DELETE /owners/NAME/sessions[/HANDLE]; POST /flash {\"level\",\"text\"}; GET /flash;
        GET /csrf {\"token\"} (with --csrf; 404 without it)
--csrf: every unsafe request (not GET, HEAD, OPTIONS) passes with Sec-Fetch-Site: same-origin,
        is refused (403) cross-site, and otherwise needs the token of GET /csrf in the
        X-CSRF-Token header or a form's _csrf field
--metrics-addr HOST:PORT: the library's metrics as Prometheus text at GET /metrics on that
        address (a listener of its own; port 0 picks one; prints `metrics on http://ADDR/metrics`
        on stderr)
--audit-log FILE: every session lifecycle event appended to FILE as a JSON line (no ids, cookies
        or data; a FILE that can't be opened stops the demo at startup)";

#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) port: u16,
    pub(crate) store: String,
    pub(crate) keys: Option<Vec<String>>,
    pub(crate) algorithm: Option<Algorithm>,
    pub(crate) cookie_name: Option<String>,
    pub(crate) max_age: Option<MaxAge>,
    pub(crate) prefix: Option<String>,
    pub(crate) koa_compat: bool,
    pub(crate) rolling: bool,
    pub(crate) renew: bool,
    pub(crate) guest: bool,
    pub(crate) trust_proxy: bool,
    pub(crate) encrypt: bool,
    /// Redis: the client cache's size in bytes (0: off).
    pub(crate) client_cache: usize,
    /// The store sessions move from.
    pub(crate) migrate_from: Option<String>,
    /// The old tower-sessions app's `Key` (standard base64).
    pub(crate) migrate_key: Option<String>,
    /// The old library's cookie name.
    pub(crate) migrate_cookie: Option<String>,
    /// The old express app's secrets, newest first.
    pub(crate) migrate_secrets: Vec<String>,
    /// Drain the source instead of serving.
    pub(crate) drain: bool,
    /// From then on, the drain clears instead of moving.
    pub(crate) drain_clear_after: Option<u64>,
    /// The most sessions per owner.
    pub(crate) max_sessions: Option<usize>,
    /// What a login over `max_sessions` does.
    pub(crate) over_limit: Option<OverLimit>,
    /// `GET /csrf` gives tokens, and every unsafe request is checked.
    pub(crate) csrf: bool,
    /// Where `GET /metrics` is served (Prometheus text), if anywhere.
    pub(crate) metrics_addr: Option<String>,
    /// The file lifecycle events are appended to as JSON lines, if any.
    pub(crate) audit_log: Option<String>,
}

pub(crate) fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        port: 3000,
        store: "memory".into(),
        keys: None,
        algorithm: None,
        cookie_name: None,
        max_age: None,
        prefix: None,
        koa_compat: false,
        rolling: false,
        renew: false,
        guest: false,
        trust_proxy: false,
        encrypt: false,
        client_cache: 0,
        migrate_from: None,
        migrate_key: None,
        migrate_cookie: None,
        migrate_secrets: Vec::new(),
        drain: false,
        drain_clear_after: None,
        max_sessions: None,
        over_limit: None,
        csrf: false,
        metrics_addr: None,
        audit_log: None,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => a.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--store" => a.store = value()?,
            "--keys" => a.keys = Some(value()?.split(',').map(str::to_owned).collect()),
            "--algorithm" => {
                a.algorithm = Some(match value()?.as_str() {
                    "sha1" => Algorithm::Sha1,
                    "sha256" => Algorithm::Sha256,
                    "sha512" => Algorithm::Sha512,
                    other => return Err(format!("--algorithm: unknown {other:?}")),
                })
            }
            "--cookie-name" => a.cookie_name = Some(value()?),
            "--max-age" => {
                let v = value()?;
                a.max_age = Some(if v == "session" {
                    MaxAge::Session
                } else {
                    MaxAge::Ms(v.parse().map_err(|e| format!("--max-age: {e}"))?)
                })
            }
            "--prefix" => a.prefix = Some(value()?),
            "--koa-compat" => a.koa_compat = true,
            "--rolling" => a.rolling = true,
            "--renew" => a.renew = true,
            "--guest" => a.guest = true,
            "--trust-proxy" => a.trust_proxy = true,
            "--encrypt" => a.encrypt = true,
            "--csrf" => a.csrf = true,
            "--client-cache" => {
                a.client_cache = value()?
                    .parse()
                    .map_err(|e| format!("--client-cache: {e}"))?
            }
            "--migrate-from" => a.migrate_from = Some(value()?),
            "--migrate-key" => a.migrate_key = Some(value()?),
            "--migrate-cookie" => a.migrate_cookie = Some(value()?),
            "--migrate-secret" => a.migrate_secrets.push(value()?),
            "--drain" => a.drain = true,
            "--drain-clear-after" => {
                a.drain_clear_after = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--drain-clear-after: {e}"))?,
                )
            }
            "--max-sessions" => {
                a.max_sessions = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--max-sessions: {e}"))?,
                )
            }
            "--over-limit" => {
                a.over_limit = Some(match value()?.as_str() {
                    "refuse" => OverLimit::Refuse,
                    "end-oldest" => OverLimit::EndOldest,
                    other => return Err(format!("--over-limit: unknown {other:?}")),
                })
            }
            "--metrics-addr" => a.metrics_addr = Some(value()?),
            "--audit-log" => a.audit_log = Some(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

/// The Redis store `--store` names: one server (`redis://`, `rediss://`), a master behind
/// Sentinels (`redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER`) or a Cluster
/// (`redis+cluster://HOST:PORT[,HOST:PORT...]`, seed nodes).
pub(crate) fn redis_builder(s: &str) -> Result<session_store_redis::RedisStoreBuilder, String> {
    let nodes = |list: &str| -> Result<Vec<String>, String> {
        let nodes: Vec<String> = list
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|n| format!("redis://{n}"))
            .collect();
        if nodes.is_empty() {
            return Err("no HOST:PORT given".to_owned());
        }
        Ok(nodes)
    };
    if let Some(rest) = s.strip_prefix("redis+sentinel://") {
        let (list, master) = rest
            .split_once('/')
            .filter(|(_, m)| !m.is_empty())
            .ok_or("redis+sentinel:// needs /MASTER (the name the Sentinels monitor)")?;
        return Ok(RedisStore::sentinel(nodes(list)?, master));
    }
    if let Some(rest) = s.strip_prefix("redis+cluster://") {
        return Ok(RedisStore::cluster(nodes(rest.trim_end_matches('/'))?));
    }
    Ok(RedisStore::builder(s))
}
