//! actix-session, the other Rust peer: actix-web with its cookie store (`actix-cookie`, the
//! session in a signed cookie) or its Redis store (`actix-redis`, redis-rs through a
//! `ConnectionManager`), two workers like the tokio servers. Same routes: `GET /` increments
//! `views`, `GET /read` reads it. `BENCH_ROLLING=1`: a persistent session whose TTL every
//! request extends.

use actix_session::config::{PersistentSession, SessionLifecycle, TtlExtensionPolicy};
use actix_session::storage::{CookieSessionStore, RedisSessionStore, SessionStore};
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::Key;
use actix_web::{App, HttpServer, web};

async fn inc(session: Session) -> String {
    let n: u64 = session.get("views").ok().flatten().unwrap_or(0);
    let _ = session.insert("views", n + 1);
    format!("{} views", n + 1)
}

async fn read(session: Session) -> String {
    let n: u64 = session.get("views").ok().flatten().unwrap_or(0);
    format!("{n} views")
}

fn lifecycle(rolling: bool) -> SessionLifecycle {
    if rolling {
        PersistentSession::default()
            .session_ttl(actix_web::cookie::time::Duration::days(1))
            .session_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest)
            .into()
    } else {
        // actix-session's default: a browser-session cookie (its state kept a day).
        SessionLifecycle::BrowserSession(Default::default())
    }
}

async fn run<S, F>(store: F, port: u16, rolling: bool)
where
    S: SessionStore + 'static,
    F: Fn() -> S + Clone + Send + 'static,
{
    let key = Key::from(&[7u8; 64]);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(
                SessionMiddleware::builder(store(), key.clone())
                    .cookie_secure(false)
                    .session_lifecycle(lifecycle(rolling))
                    .build(),
            )
            .route("/", web::get().to(inc))
            .route("/read", web::get().to(read))
    })
    .workers(2)
    .bind(("127.0.0.1", port))
    .expect("bind");
    println!("ready");
    server.run().await.expect("actix server");
}

/// Runs the actix kind `kind` on `port` (blocks).
pub fn serve(kind: &str, port: u16, redis_url: &str, rolling: bool) {
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        match kind {
            "actix-cookie" => run(CookieSessionStore::default, port, rolling).await,
            "actix-redis" => {
                let store = RedisSessionStore::new(redis_url)
                    .await
                    .expect("actix-session redis store");
                run(move || store.clone(), port, rolling).await
            }
            other => panic!("unknown server kind {other:?}"),
        }
    });
}
