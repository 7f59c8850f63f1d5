//! The auth layer end to end over real TCP, with axum-login's own example backend ported
//! (`tests/port/users.rs`: its `use` lines changed and its storage replaced by a map, which
//! also proves such a backend compiles against this crate): route layers, login and logout,
//! the auth-hash backstop, a password change that ends the other sessions at once (racing
//! logins and requests of those sessions), a deleted user, permissions, the session limit,
//! and cookie mode.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "port/users.rs"]
mod users;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use axum::extract::{Form, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use session_auth::{
    AuthManagerLayerBuilder, AuthUser, AuthzBackend, login_required, permission_required, safe_next,
};
use session_hyper::{Config, MemoryStore, OverLimit, SessionLayer, SessionLimit};
use users::{AuthSession, Backend, Credentials, User};

type Users = Arc<RwLock<HashMap<i64, User>>>;

const KEY: &[u8] = b"auth test key, 32 bytes or more!!";

impl AuthzBackend for Backend {
    type Permission = String;

    async fn get_user_permissions(&self, user: &User) -> Result<HashSet<String>, Self::Error> {
        Ok(if user.username == "ada" {
            HashSet::from(["admin".to_owned()])
        } else {
            HashSet::new()
        })
    }
}

fn hash(password: &str) -> String {
    password_auth::generate_hash(password)
}

fn users() -> Users {
    let map = HashMap::from([
        (1, User::new(1, "ada", hash("ada-pw"))),
        (2, User::new(2, "bob", hash("bob-pw"))),
    ]);
    Arc::new(RwLock::new(map))
}

async fn login(mut auth: AuthSession, Form(creds): Form<Credentials>) -> Response {
    let next = safe_next(creds.next.as_deref()).to_owned();
    let user = match auth.authenticate(creds).await {
        Ok(Some(user)) => user,
        Ok(None) => return StatusCode::UNAUTHORIZED.into_response(),
        Err(e) => return e.into_response(),
    };
    match auth.login(&user).await {
        Ok(()) => Redirect::to(&next).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn logout(mut auth: AuthSession) -> Response {
    match auth.logout().await {
        Ok(_) => "bye".into_response(),
        Err(e) => e.into_response(),
    }
}

/// Another tab renews its session id (a token refresh, a step-up).
async fn rotate(auth: AuthSession) -> Response {
    match auth.session().regenerate().await {
        Ok(()) => "rotated".into_response(),
        Err(e) => e.into_response(),
    }
}

async fn me(auth: AuthSession) -> String {
    auth.user()
        .await
        .map_or_else(|| "anonymous".to_owned(), |u| u.username.clone())
}

async fn status(auth: AuthSession) -> Json<serde_json::Value> {
    let user = auth.user().await.map(|u| u.username.clone());
    let ended = auth.ended().await.unwrap().map(|r| r.name());
    Json(serde_json::json!({ "user": user, "ended": ended }))
}

#[derive(Deserialize)]
struct NewPassword {
    password: String,
}

async fn change_password(
    axum::extract::State(db): axum::extract::State<Users>,
    mut auth: AuthSession,
    Form(p): Form<NewPassword>,
) -> Response {
    let Some(user) = auth.user().await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let changed = User::new(user.id(), &user.username, hash(&p.password));
    db.write().unwrap().insert(user.id(), changed.clone());
    match auth.password_changed(&changed).await {
        Ok(n) => n.to_string().into_response(),
        Err(e) => e.into_response(),
    }
}

async fn delete_user(
    axum::extract::State(db): axum::extract::State<Users>,
    mut auth: AuthSession,
    Path(id): Path<i64>,
) -> Response {
    db.write().unwrap().remove(&id);
    match auth.user_deleted(&id).await {
        Ok(n) => n.to_string().into_response(),
        Err(e) => e.into_response(),
    }
}

async fn sessions(auth: AuthSession) -> Response {
    let Some(user) = auth.user().await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match auth.session().list_sessions(&user.id().to_string()).await {
        Ok(list) => list.len().to_string().into_response(),
        Err(e) => e.into_response(),
    }
}

/// The app on `sessions`; its URL and its users.
async fn serve(layer: SessionLayer) -> (String, Users) {
    let db = users();
    let backend = Backend::new(Arc::clone(&db));
    let auth = AuthManagerLayerBuilder::new(backend, layer).build();
    let pages = Router::new()
        .route("/me", get(me))
        .route_layer(login_required!(Backend, login_url = "/login"));
    let api = Router::new()
        .route("/api/me", get(me))
        .route_layer(login_required!(Backend));
    let admin = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(permission_required!(Backend, login_url = "/login", "admin"));
    let app = Router::new()
        .merge(pages)
        .merge(api)
        .merge(admin)
        .route("/login", post(login))
        .route("/logout", get(logout))
        .route("/rotate", get(rotate))
        .route("/status", get(status))
        .route("/sessions", get(sessions))
        .route("/password", post(change_password))
        .route("/users/{id}", axum::routing::delete(delete_user))
        .layer(auth)
        .with_state(Arc::clone(&db));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, db)
}

fn store_layer(limit: Option<SessionLimit>) -> SessionLayer {
    let config = Config::builder().key(KEY.to_vec()).build().unwrap();
    let mut b = SessionLayer::store(config, MemoryStore::new());
    if let Some(l) = limit {
        b = b.max_sessions_per_owner(l);
    }
    b.build().unwrap()
}

/// A browser that does not follow redirects (to see them).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sign_in(c: &reqwest::Client, url: &str, user: &str, pw: &str) -> reqwest::Response {
    c.post(format!("{url}/login"))
        .form(&[("username", user), ("password", pw), ("next", "/me")])
        .send()
        .await
        .unwrap()
}

async fn text(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn status_of(c: &reqwest::Client, url: &str) -> serde_json::Value {
    serde_json::from_str(&text(c, &format!("{url}/status")).await.1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_layers_redirect_pages_and_refuse_api_calls() {
    let (url, _) = serve(store_layer(None)).await;
    let c = browser();
    // A page load is sent to the login page with the page asked for.
    let r = c
        .get(format!("{url}/me?tab=1"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=%2Fme%3Ftab%3D1");
    // An API call gets 401, with or without a login URL.
    let r = c
        .get(format!("{url}/me"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(text(&c, &format!("{url}/api/me")).await.0, 401);
    // Wrong password: still nobody.
    assert_eq!(sign_in(&c, &url, "ada", "wrong").await.status(), 401);
    // Logged in: through, and redirected where asked (never off-site).
    let r = sign_in(&c, &url, "ada", "ada-pw").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/me");
    assert_eq!(text(&c, &format!("{url}/me")).await, (200, "ada".into()));
    assert_eq!(
        text(&c, &format!("{url}/api/me")).await,
        (200, "ada".into())
    );
    let r = c
        .post(format!("{url}/login"))
        .form(&[
            ("username", "ada"),
            ("password", "ada-pw"),
            ("next", "//evil.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/");
    // Permissions: ada has "admin", bob does not (403: logging in again would not help).
    assert_eq!(
        text(&c, &format!("{url}/admin")).await,
        (200, "admin".into())
    );
    let b = browser();
    sign_in(&b, &url, "bob", "bob-pw").await;
    assert_eq!(text(&b, &format!("{url}/admin")).await.0, 403);
    // Logout: anonymous again.
    assert_eq!(text(&c, &format!("{url}/logout")).await.1, "bye");
    assert_eq!(text(&c, &format!("{url}/api/me")).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_gives_a_new_id_and_never_stores_the_auth_hash() {
    let (url, db) = serve(store_layer(None)).await;
    let c = browser();
    let r = sign_in(&c, &url, "ada", "ada-pw").await;
    let sets: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        sets.iter().any(|s| s.starts_with("koa.sess=")),
        "a new id: {sets:?}"
    );
    // The session's data holds the user's id and a digest, never the password hash.
    let pw_hash = db.read().unwrap()[&1].session_auth_hash().to_vec();
    let pw_hash = String::from_utf8(pw_hash).unwrap();
    let shown = text(&c, &format!("{url}/status")).await.1;
    assert!(!shown.contains(&pw_hash));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_hash_is_checked_on_every_request() {
    let (url, db) = serve(store_layer(None)).await;
    let c = browser();
    sign_in(&c, &url, "bob", "bob-pw").await;
    assert_eq!(status_of(&c, &url).await["user"], "bob");
    // The password changes behind the app's back (another service, a database console).
    db.write()
        .unwrap()
        .insert(2, User::new(2, "bob", hash("new-pw")));
    assert_eq!(status_of(&c, &url).await["user"], serde_json::Value::Null);
    // The old session ended: logging in with the new password works.
    sign_in(&c, &url, "bob", "new-pw").await;
    assert_eq!(status_of(&c, &url).await["user"], "bob");
}

/// Three browsers of one user; one changes the password while the others make requests, another
/// of its own tabs renews its session id, and a fourth browser logs in with the old password
/// meanwhile: 100 rounds. The caller stays logged in whichever id its browser ends up holding;
/// none of the others does (the revoked ones at once; a login that checked the old password
/// before the change is caught by the auth-hash backstop on its next request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_every_other_session_at_once() {
    let (url, _) = serve(store_layer(None)).await;
    let mut survivors = 0;
    let mut callers_lost = 0;
    let mut retried = 0;
    for round in 0..100 {
        let pw = format!("pw-{round}");
        let old = if round == 0 {
            "ada-pw".to_owned()
        } else {
            format!("pw-{}", round - 1)
        };
        let me = browser();
        let others = [browser(), browser()];
        for c in std::iter::once(&me).chain(&others) {
            assert_eq!(sign_in(c, &url, "ada", &old).await.status(), 303);
        }
        let late = browser();
        let change = me
            .post(format!("{url}/password"))
            .form(&[("password", pw.as_str())])
            .send();
        let busy = futures_util::future::join_all(
            others.iter().map(|c| c.get(format!("{url}/status")).send()),
        );
        // The caller's other tabs: one renews its id, one looks the user up (a page behind
        // "login required") while the change is stored.
        let (changed, _, _, _, _) = tokio::join!(
            change,
            busy,
            me.get(format!("{url}/rotate")).send(),
            me.get(format!("{url}/status")).send(),
            sign_in(&late, &url, "ada", &old)
        );
        if changed.unwrap().status() == 401 {
            // The other tab's new id reached the store before this request read its session:
            // the request came with a superseded id and was anonymous, as any would be. The
            // browser holds the new id now; the change goes again with it.
            retried += 1;
            let again = me
                .post(format!("{url}/password"))
                .form(&[("password", pw.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(again.status(), 200);
        }
        if status_of(&me, &url).await["user"] != "ada" {
            eprintln!("round {round}: the caller was logged out");
            callers_lost += 1;
        }
        for (i, c) in others.iter().chain([&late]).enumerate() {
            if status_of(c, &url).await["user"] != serde_json::Value::Null {
                eprintln!("round {round}: browser {i} survived");
                survivors += 1;
            }
        }
        // Once each has made its next request, the caller's listing shows only its own.
        let listed = text(&me, &format!("{url}/sessions")).await.1;
        if listed != "1" {
            eprintln!("round {round}: {listed} listed");
            survivors += 1;
        }
    }
    eprintln!("password changes sent again after the other tab's renewal won: {retried}");
    assert_eq!((callers_lost, survivors), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_user_has_no_session_left() {
    let (url, _) = serve(store_layer(None)).await;
    let (a, b, admin) = (browser(), browser(), browser());
    sign_in(&a, &url, "bob", "bob-pw").await;
    sign_in(&b, &url, "bob", "bob-pw").await;
    sign_in(&admin, &url, "ada", "ada-pw").await;
    let r = admin.delete(format!("{url}/users/2")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "2");
    for c in [&a, &b] {
        assert_eq!(status_of(c, &url).await["user"], serde_json::Value::Null);
    }
    assert_eq!(status_of(&admin, &url).await["user"], "ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_limit_refuses_or_ends_the_oldest() {
    // Refuse: the fourth login is a 409, and that browser keeps its anonymous session.
    let limit = SessionLimit::new(3, OverLimit::Refuse).unwrap();
    let (url, _) = serve(store_layer(Some(limit))).await;
    let browsers: Vec<_> = (0..4).map(|_| browser()).collect();
    for b in &browsers[..3] {
        assert_eq!(sign_in(b, &url, "ada", "ada-pw").await.status(), 303);
    }
    let r = sign_in(&browsers[3], &url, "ada", "ada-pw").await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers().get_all("set-cookie").iter().count(), 0);
    assert_eq!(
        status_of(&browsers[3], &url).await["user"],
        serde_json::Value::Null
    );
    for b in &browsers[..3] {
        assert_eq!(status_of(b, &url).await["user"], "ada");
    }

    // End-oldest: the fourth login goes in, the first browser is out and told why.
    let limit = SessionLimit::new(3, OverLimit::EndOldest).unwrap();
    let (url, _) = serve(store_layer(Some(limit))).await;
    let browsers: Vec<_> = (0..4).map(|_| browser()).collect();
    for b in &browsers {
        assert_eq!(sign_in(b, &url, "ada", "ada-pw").await.status(), 303);
    }
    // Its next page needs a login: sent there, with why.
    let r = browsers[0]
        .get(format!("{url}/me"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Fme&ended=newer-login"
    );
    // Told once: the marker went with that request.
    let first = status_of(&browsers[0], &url).await;
    assert_eq!(first, serde_json::json!({"user": null, "ended": null}));
    for b in &browsers[1..] {
        assert_eq!(status_of(b, &url).await["user"], "ada");
    }
    assert_eq!(text(&browsers[1], &format!("{url}/sessions")).await.1, "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_mode_logs_in_without_an_index() {
    let config = Config::builder().key(KEY.to_vec()).build().unwrap();
    let (url, db) = serve(SessionLayer::cookie(config.clone()).build().unwrap()).await;
    let (a, b) = (browser(), browser());
    sign_in(&a, &url, "bob", "bob-pw").await;
    sign_in(&b, &url, "bob", "bob-pw").await;
    assert_eq!(status_of(&a, &url).await["user"], "bob");
    // A password change answers 0 (no index); the other browser ends on its next request.
    let r = a
        .post(format!("{url}/password"))
        .form(&[("password", "new")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "0");
    assert_eq!(status_of(&a, &url).await["user"], "bob");
    assert_eq!(status_of(&b, &url).await["user"], serde_json::Value::Null);
    assert!(db.read().unwrap().contains_key(&2));
    // A limit can't be configured where no index is kept.
    let limit = SessionLimit::new(3, OverLimit::Refuse).unwrap();
    let built = SessionLayer::cookie(config)
        .max_sessions_per_owner(limit)
        .build();
    assert!(matches!(
        built,
        Err(session_hyper::LayerBuildError::LimitWithoutIndex)
    ));
}
