//! Moving in from actix-session: every old session here is made by a real actix-web app
//! (`fixtures/actix`: actix-session 0.11 with its Redis store, built by `cargo xtask ci`, its
//! path in `ACTIX_FIXTURE`), its cookie private (the default) or signed under the app's `Key`.
//! The app of ours in front (the test kit's JSON session app) moves them; the attacks (in
//! `support`) try to break the move.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(feature = "migrate-tests")]

use std::sync::Arc;

use session_core::Config;
use session_hyper::{MemoryStore, SessionLayer};
use session_migrate::Actix;
use session_testkit::capture::{KEY1, Secrets, attack};
use session_testkit::process::Running;
use session_testkit::redis::Server;
use session_testkit::stores::Recorder;

mod support;
use support::new_app;

/// The old app's `Key` (64 bytes), and another one.
const KEY: [u8; 64] = [7; 64];
const OTHER_KEY: [u8; 64] = [9; 64];
const NAME: &str = "id";

fn bin() -> String {
    std::env::var("ACTIX_FIXTURE").expect("ACTIX_FIXTURE: run through `cargo xtask ci`")
}

fn b64(key: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// The actix app on the Redis at `url` under `key`, its cookie signed or private.
async fn old_app(url: &str, key: &[u8], signed: bool) -> Running {
    let key = b64(key);
    let mut args = vec!["--redis", url, "--key", &key];
    if signed {
        args.push("--signed");
    }
    session_testkit::process::start(&bin(), &args)
        .await
        .expect("the actix fixture started")
}

/// A user logged in on the old app: its `Cookie` header.
async fn old_login(old: &Running, user: &str, secrets: &Secrets) -> String {
    support::login(&old.url, NAME, user, secrets).await
}

fn source(url: &str) -> Actix {
    Actix::builder(&KEY).redis(url).unwrap()
}

/// A database of the shared server that no other test of this file writes: each test keeps
/// its sessions apart by the server it uses or by this number.
fn shared_db(n: u8) -> String {
    let url = session_testkit::redis::shared_url();
    let base = url
        .rsplit_once('/')
        .map_or(url.as_str(), |(b, _)| b)
        .to_owned();
    format!("{base}/{n}")
}

/// A user logged in under actix-session, its cookie private or signed, moves: same data (each
/// value decoded from its JSON text), a new id of ours, the old cookie removed, the old record
/// gone, a replay anonymous.
#[test]
fn a_session_moves_from_actix_session() {
    attack(|secrets| async move {
        let url = shared_db(12);
        for signed in [false, true] {
            let old = old_app(&url, &KEY, signed).await;
            let app = new_app(Arc::new(MemoryStore::new()), source(&url)).await;
            let cookie = old_login(&old, "ann", &secrets).await;
            let what = if signed { "signed" } else { "private" };
            support::moves(&app, &old.url, &cookie, NAME, what).await;
        }
    });
}

#[test]
fn requests_racing_a_move_make_one_session() {
    attack(|secrets| async move {
        let url = shared_db(13);
        let old = old_app(&url, &KEY, false).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&url)).await;
        support::racing_moves(&app, &new, || old_login(&old, "bob", &secrets)).await;
    });
}

#[test]
fn a_logout_with_the_old_cookie_racing_the_move_ends_it() {
    attack(|secrets| async move {
        let url = shared_db(14);
        let old = old_app(&url, &KEY, true).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&url)).await;
        let login = || old_login(&old, "eve", &secrets);
        support::logout_racing_moves(&app, &new, &old.url, login).await;
    });
}

/// Forged cookies: private and signed ones under another key, a tampered private one, a
/// session key sent bare.
#[test]
fn forged_old_cookies_are_anonymous_and_cost_the_old_store_nothing() {
    attack(|secrets| async move {
        let server = Server::start(&[]);
        let url = server.url();
        let old = old_app(&url, &KEY, false).await;
        let other_private = old_app(&url, &OTHER_KEY, false).await;
        let other_signed = old_app(&url, &OTHER_KEY, true).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&url)).await;
        let real = old_login(&old, "carol", &secrets).await;
        let mut chars: Vec<char> = real.chars().collect();
        chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        let lines = support::seed(&bin(), &["--redis", &url, "--key", &b64(&KEY)], 1).await;
        let bare = lines[0].split_once(' ').unwrap().0.to_owned();
        let forged = [
            (
                "private, another key",
                old_login(&other_private, "mallory", &secrets).await,
            ),
            (
                "signed, another key",
                old_login(&other_signed, "mallory", &secrets).await,
            ),
            ("tampered", tampered),
            ("bare session key", format!("{NAME}={bare}")),
        ];
        support::forged(&app, &new, &server, &forged, &real).await;
    });
}

#[test]
fn the_old_store_down_is_a_fast_503_and_loses_nothing() {
    attack(|secrets| async move {
        let server = Server::start(&[]);
        let old = old_app(&server.url(), &KEY, false).await;
        let cookie = old_login(&old, "dan", &secrets).await;
        let closed = format!("redis://127.0.0.1:{}", session_testkit::net::free_port());
        let refusing = new_app(Arc::new(MemoryStore::new()), source(&closed)).await;
        let new = Recorder::new(MemoryStore::new());
        let app = new_app(Arc::new(new.clone()), source(&server.url())).await;
        support::store_down(&refusing, &app, &new, &server, &cookie).await;
    });
}

/// The drain on 2,000 sessions written through actix-session's own store API (`--seed`).
#[test]
fn a_drain_moves_sessions_written_by_actix_session() {
    attack(|_| async move {
        let server = Server::start(&[]);
        let url = server.url();
        let lines = support::seed(&bin(), &["--redis", &url, "--key", &b64(&KEY)], 2000).await;
        let config = Config::builder().key(KEY1.to_vec()).build().unwrap();
        let layer = SessionLayer::store(config, MemoryStore::new())
            .migrate_from_source(source(&url))
            .build()
            .unwrap();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        support::drains(layer, &server, NAME, &lines, 2000).await;
    });
}
