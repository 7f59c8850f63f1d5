//! Moving in from express-session: every old session here is made by a real express app
//! (`fixtures/express`: express-session 1.18 with connect-redis 7, installed by
//! `cargo xtask ci`, its script's path in `EXPRESS_FIXTURE`) on Redis, its `connect.sid` cookie
//! signed under the app's secrets. The app of ours in front (the test kit's JSON session app)
//! moves them; the attacks (in `support`) try to break the move.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(feature = "migrate-tests")]

use std::sync::Arc;

use session_core::Config;
use session_hyper::{MemoryStore, SessionLayer};
use session_migrate::Express;
use session_testkit::capture::{KEY1, Secrets, attack};
use session_testkit::process::Running;
use session_testkit::redis::Server;
use session_testkit::stores::Recorder;

mod support;
use support::new_app;

/// The old app's secrets, newest first.
const SECRETS: [&str; 2] = ["the newest express secret", "an older express secret"];
const NAME: &str = "connect.sid";

fn script() -> String {
    std::env::var("EXPRESS_FIXTURE").expect("EXPRESS_FIXTURE: run through `cargo xtask ci`")
}

/// The express app on the Redis at `url` (its keys under `prefix`), signing with `secrets`.
async fn old_app(url: &str, prefix: &str, secrets: &[&str]) -> Running {
    let mut args = vec!["--redis", url, "--prefix", prefix];
    for s in secrets {
        args.extend(["--secret", s]);
    }
    session_testkit::process::start(&script(), &args)
        .await
        .expect("the express fixture started")
}

/// A user logged in on the old app: its `Cookie` header.
async fn old_login(old: &Running, user: &str, secrets: &Secrets) -> String {
    support::login(&old.url, NAME, user, secrets).await
}

/// The source for the old app's Redis, knowing both secrets (newest first).
fn source(url: &str, prefix: &str) -> Express {
    Express::builder()
        .secret(SECRETS[0])
        .secret(SECRETS[1])
        .prefix(prefix)
        .redis(url)
        .unwrap()
}

/// A key prefix no other test uses on the shared server.
fn prefix() -> String {
    format!("{}:", session_testkit::values::unique("express"))
}

/// A user logged in under express-session, with either secret having signed the cookie (the
/// app rotated), moves: same data, a new id of ours, the old cookie removed, the old record
/// gone, a replay anonymous.
#[test]
fn a_session_moves_from_express_session() {
    attack(|secrets| async move {
        let url = session_testkit::redis::shared_url();
        for signer in [&SECRETS[..], &SECRETS[1..]] {
            let p = prefix();
            let old = old_app(&url, &p, signer).await;
            let app = new_app(Arc::new(MemoryStore::new()), source(&url, &p)).await;
            let cookie = old_login(&old, "ann", &secrets).await;
            support::moves(&app, &old.url, &cookie, NAME, signer[0]).await;
        }
    });
}

#[test]
fn requests_racing_a_move_make_one_session() {
    attack(|secrets| async move {
        let (url, p) = (session_testkit::redis::shared_url(), prefix());
        let old = old_app(&url, &p, &SECRETS).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&url, &p)).await;
        support::racing_moves(&app, &new, || old_login(&old, "bob", &secrets)).await;
    });
}

#[test]
fn a_logout_with_the_old_cookie_racing_the_move_ends_it() {
    attack(|secrets| async move {
        let (url, p) = (session_testkit::redis::shared_url(), prefix());
        let old = old_app(&url, &p, &SECRETS).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&url, &p)).await;
        let login = || old_login(&old, "eve", &secrets);
        support::logout_racing_moves(&app, &new, &old.url, login).await;
    });
}

/// Forged cookies: one signed with a secret the new app doesn't know, a tampered signature,
/// the bare id without `s:`, `s:` + id without a signature.
#[test]
fn forged_old_cookies_are_anonymous_and_cost_the_old_store_nothing() {
    attack(|secrets| async move {
        let server = Server::start(&[]);
        let p = prefix();
        let old = old_app(&server.url(), &p, &SECRETS).await;
        let impostor = old_app(&server.url(), &p, &["a secret of somebody else"]).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&server.url(), &p)).await;
        let real = old_login(&old, "carol", &secrets).await;
        let value = real.strip_prefix("connect.sid=").unwrap();
        let mut tampered = value.to_owned();
        let last = if tampered.ends_with('A') { 'B' } else { 'A' };
        tampered.pop();
        tampered.push(last);
        let bare = value
            .strip_prefix("s%3A")
            .and_then(|v| v.rsplit_once('.'))
            .map(|(id, _)| id.to_owned())
            .unwrap();
        let forged = [
            (
                "another secret",
                old_login(&impostor, "mallory", &secrets).await,
            ),
            ("tampered", format!("{NAME}={tampered}")),
            ("no s:", format!("{NAME}={bare}")),
            ("no signature", format!("{NAME}=s%3A{bare}")),
        ];
        support::forged(&app, &new, &server, &forged, &real).await;
    });
}

#[test]
fn the_old_store_down_is_a_fast_503_and_loses_nothing() {
    attack(|secrets| async move {
        let server = Server::start(&[]);
        let p = prefix();
        let old = old_app(&server.url(), &p, &SECRETS).await;
        let cookie = old_login(&old, "dan", &secrets).await;
        let closed = format!("redis://127.0.0.1:{}", session_testkit::net::free_port());
        let refusing = new_app(Arc::new(MemoryStore::new()), source(&closed, &p)).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&server.url(), &p)).await;
        support::store_down(&refusing, &app, &new, &server, &cookie).await;
    });
}

/// The drain on 2,000 sessions written through connect-redis's own store API (`--seed`).
#[test]
fn a_drain_moves_sessions_written_by_connect_redis() {
    attack(|_| async move {
        let server = Server::start(&[]);
        let p = prefix();
        let url = server.url();
        let args = ["--redis", &url, "--prefix", &p, "--secret", SECRETS[0]];
        let lines = support::seed(&script(), &args, 2000).await;
        let config = Config::builder().key(KEY1.to_vec()).build().unwrap();
        let layer = SessionLayer::store(config, MemoryStore::new())
            .migrate_from_source(source(&url, &p))
            .build()
            .unwrap();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        support::drains(layer, &server, NAME, &lines, 2000).await;
    });
}
