//! The test app served for an attack ([`App`]): its URL, the [`Gate`] of its held routes, and
//! an exact client whose pooled connections belong to the attack's runtime; requests carry the
//! cookies of a [`Jar`] the attack keeps by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper::Method;
use serde_json::{Value, json};
use session_hyper::SessionLayer;

use crate::app::{Gate, serve_gated};
use crate::capture::Secrets;
use crate::client::{Jar, Reply, raw, send};

/// The test app on one or more servers, and a client for it.
#[derive(Clone)]
pub struct App {
    urls: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    /// Where its gated routes hold requests.
    pub gate: Arc<Gate>,
    /// One client per app: its pooled connections belong to this test's runtime.
    pub client: reqwest::Client,
}

impl App {
    /// The app behind `layer`, on a fresh loopback port.
    pub async fn serve(layer: SessionLayer) -> App {
        App::serve_all(vec![layer]).await
    }

    /// The app behind each of `layers`, each on a port of its own (app servers sharing a
    /// store): requests go to them in turn.
    pub async fn serve_all(layers: Vec<SessionLayer>) -> App {
        let gate = Arc::new(Gate::default());
        let mut urls = Vec::new();
        for layer in layers {
            urls.push(serve_gated(layer, Arc::clone(&gate)).await);
        }
        App {
            urls: Arc::new(urls),
            next: Arc::default(),
            gate,
            client: raw(),
        }
    }

    /// The URL of the server the next request goes to.
    pub fn url(&self) -> &str {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.urls[i % self.urls.len()]
    }

    /// `method path` with exactly `cookie` (none when empty) and `body`.
    pub async fn req(
        &self,
        method: Method,
        path: &str,
        cookie: &str,
        body: Option<String>,
    ) -> Reply {
        let mut rb = self.client.request(method, format!("{}{path}", self.url()));
        if !cookie.is_empty() {
            rb = rb.header("cookie", cookie);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        send(rb).await
    }

    /// [`App::req`] in a task of its own (for a request a test holds at the [`Gate`] or in the
    /// store while it sends others).
    pub fn spawn(&self, method: Method, path: &str, jar: &Jar) -> tokio::task::JoinHandle<Reply> {
        let (app, path, cookie) = (self.clone(), path.to_owned(), jar.header());
        tokio::spawn(async move { app.req(method, &path, &cookie, None).await })
    }

    /// `GET path` with the jar's cookies.
    pub async fn get(&self, path: &str, jar: &Jar) -> Reply {
        self.req(Method::GET, path, &jar.header(), None).await
    }

    /// `PUT /session` merging `json`.
    pub async fn put(&self, json: &Value, jar: &Jar) -> Reply {
        let body = Some(json.to_string());
        self.req(Method::PUT, "/session", &jar.header(), body).await
    }

    /// `POST /session/regenerate`.
    pub async fn regenerate(&self, jar: &Jar) -> Reply {
        let path = "/session/regenerate";
        self.req(Method::POST, path, &jar.header(), None).await
    }

    /// `DELETE /session`.
    pub async fn logout(&self, jar: &Jar) -> Reply {
        self.req(Method::DELETE, "/session", &jar.header(), None)
            .await
    }

    /// A logged-in browser: a session holding `user`.
    pub async fn logged_in(&self, user: &str, secrets: &Secrets) -> Jar {
        let mut jar = Jar::default();
        let r = self.put(&json!({ "user": user }), &jar).await;
        assert_eq!(r.status, 204, "{}", r.body);
        secrets.note(&r);
        jar.apply(&r);
        assert!(jar.id().is_some());
        jar
    }

    /// A browser with a session the way the migration tests make one on the app being left:
    /// `user` and a counter at 41, bound first to `owner` when one is given.
    pub async fn signed_in(&self, user: &str, owner: Option<&str>, secrets: &Secrets) -> Jar {
        let mut jar = Jar::default();
        if let Some(owner) = owner {
            let r = self.get(&format!("/login?owner={owner}"), &jar).await;
            assert_eq!(r.status, 200, "{}", r.body);
            jar.apply(&r);
        }
        let r = self.put(&json!({ "user": user, "views": 41 }), &jar).await;
        assert_eq!(r.status, 204, "{}", r.body);
        secrets.note(&r);
        jar.apply(&r);
        assert!(!jar.0.is_empty());
        jar
    }

    /// `n` `GET /session` at once with the jar (requests racing a session's first use): each
    /// must answer 200 with `user`'s data or an anonymous session, and remove no cookie of the
    /// default name. Answers the new ids the replies set.
    pub async fn race_first_use(
        &self,
        jar: &Jar,
        n: usize,
        user: &str,
        round: usize,
    ) -> Vec<String> {
        let racing: Vec<_> = (0..n)
            .map(|_| self.spawn(Method::GET, "/session", jar))
            .collect();
        let mut ids = Vec::new();
        for r in racing {
            let r = r.await.unwrap();
            assert_eq!(r.status, 200, "round {round}: {}", r.body);
            assert!(
                !r.removes(),
                "round {round}: a loser removed the cookie: {:?} {}",
                r.set_cookies,
                r.body
            );
            let data: Value = serde_json::from_str(&r.body).unwrap();
            assert!(
                data["user"] == user || data == json!({}),
                "round {round}: {data}"
            );
            ids.extend(r.sets_id());
        }
        ids
    }

    /// A cookie pair the site gave a visitor, dead now (logged out).
    pub async fn dead_pair(&self, secrets: &Secrets) -> Jar {
        let mut attacker = Jar::default();
        let r = self.put(&json!({ "a": 1 }), &attacker).await;
        secrets.note(&r);
        attacker.apply(&r);
        assert_eq!(self.logout(&attacker).await.status, 204);
        attacker
    }
}
