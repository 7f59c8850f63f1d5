//! What the browser tests share: a Chromium session over WebDriver that keeps a screenshot of
//! each page it looks at, an example server started for one test, the Redis the examples
//! store their sessions in, and a recording front for an example ([`front`]: the requests the
//! browser makes by itself, seen as they reach the app).
#![allow(dead_code)]

pub mod front;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cookie::Cookie;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a page may take to show what a step waits for.
const PATIENCE: Duration = Duration::from_secs(15);

/// A phone's screen in CSS pixels (an iPhone 12 to 15's size): [`Browser::open_phone`].
pub const PHONE: (u64, u64) = (390, 844);

/// The user agent [`Browser::open_phone`] sends: Chrome on an Android phone (what the login
/// example's account page then names it).
const PHONE_UA: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36";

/// A headless Chromium, its own profile (cookies, cache, history) for this test.
pub struct Browser {
    client: Option<Client>,
    shots: PathBuf,
    taken: AtomicUsize,
}

impl Browser {
    /// A new browser window for `test`, 1000x700; its screenshots go to
    /// `target/tmp/browser/<test>/` (emptied first).
    pub async fn open(test: &str) -> Browser {
        Browser::open_with(test, None).await
    }

    /// [`Browser::open`] as a phone: Chromium's mobile emulation at [`PHONE`]'s size, with a
    /// phone's user agent and touch, so a page is laid out as a phone lays it out (its
    /// `<meta name="viewport">` heeded; without one it would be drawn 980 pixels wide and
    /// scaled down).
    pub async fn open_phone(test: &str) -> Browser {
        let (width, height) = PHONE;
        let emulation = json!({
            "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2.0, "touch": true },
            "userAgent": PHONE_UA,
        });
        Browser::open_with(test, Some(emulation)).await
    }

    async fn open_with(test: &str, mobile: Option<Value>) -> Browser {
        let webdriver = std::env::var("WEBDRIVER_URL").unwrap_or_else(|_| {
            panic!(
                "WEBDRIVER_URL is not set: run the browser tests with `cargo xtask test-browser`"
            )
        });
        let mut options = json!({
            "args": [
                "--headless=new",
                // Root in a container has no user namespace to sandbox in.
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1000,700",
            ],
        });
        if let Some(emulation) = mobile {
            options["mobileEmulation"] = emulation;
        }
        if let Ok(bin) = std::env::var("CHROME_BIN") {
            options["binary"] = Value::String(bin);
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| panic!("could not open Chromium through {webdriver}: {e}"));
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("browser")
            .join(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client: Some(client),
            shots,
            taken: AtomicUsize::new(0),
        }
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("could not open {url}: {e}"));
    }

    /// Saves what the window shows as `NN-name.png`.
    pub async fn shot(&self, name: &str) {
        let n = self.taken.fetch_add(1, Ordering::Relaxed);
        if let Ok(png) = self.client().screenshot().await {
            let _ = std::fs::write(self.shots.join(format!("{n:02}-{name}.png")), png);
        }
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        match self.client().find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the page's text contains `needle`, and answers the text.
    pub async fn wait_text(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            if start.elapsed() > PATIENCE {
                self.shot("timed-out").await;
                panic!("the page never showed {needle:?}; it shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every cookie the browser holds for the current page, `HttpOnly` ones included (the
    /// browser's own store, not `document.cookie`).
    pub async fn cookies(&self) -> Vec<Cookie<'static>> {
        self.client().get_all_cookies().await.unwrap()
    }

    /// The names of the cookies the browser holds.
    pub async fn cookie_names(&self) -> Vec<String> {
        self.cookies()
            .await
            .iter()
            .map(|c| c.name().to_owned())
            .collect()
    }

    pub async fn cookie(&self, name: &str) -> Option<Cookie<'static>> {
        self.cookies().await.into_iter().find(|c| c.name() == name)
    }

    /// Types `user` and `password` into the sign-in form and sends it.
    pub async fn log_in(&self, user: &str, password: &str) {
        let c = self.client();
        let field = c
            .wait()
            .for_element(Locator::Css("input[name=username]"))
            .await;
        let field = field.unwrap_or_else(|e| panic!("no sign-in form: {e}"));
        // The form may have the name filled in already (after a sign-up).
        field.clear().await.unwrap();
        field.send_keys(user).await.unwrap();
        self.type_into("password", password).await;
        self.click(Locator::Css("form[action='/login'] button"))
            .await;
    }

    /// Makes the account `user` with `password` through the sign-up form of the app at `url`,
    /// and waits for the sign-in form it answers with (signing up makes no session).
    pub async fn sign_up(&self, url: &str, user: &str, password: &str) {
        self.goto(&format!("{url}/signup")).await;
        self.type_into("username", user).await;
        self.type_into("password", password).await;
        self.click(Locator::Css("form[action='/signup'] button"))
            .await;
        self.wait_text("Your account was created").await;
    }

    /// Types `text` into the page's input named `name`.
    pub async fn type_into(&self, name: &str, text: &str) {
        let css = format!("input[name='{name}']");
        let field = self.client().wait().for_element(Locator::Css(&css)).await;
        let field = field.unwrap_or_else(|e| panic!("no input {name}: {e}"));
        field.send_keys(text).await.unwrap();
    }

    /// The HTTP status of the page shown (the navigation's response).
    pub async fn status(&self) -> u16 {
        let status = self
            .client()
            .execute(
                "return performance.getEntriesByType('navigation')[0].responseStatus",
                vec![],
            )
            .await
            .unwrap();
        status.as_u64().unwrap_or(0) as u16
    }

    /// The width the page is laid out at, and the width of its content (wider: the page
    /// scrolls sideways).
    pub async fn widths(&self) -> (u64, u64) {
        let w = self
            .client()
            .execute(
                "return [window.innerWidth, document.documentElement.scrollWidth]",
                vec![],
            )
            .await
            .unwrap();
        (w[0].as_u64().unwrap_or(0), w[1].as_u64().unwrap_or(0))
    }

    /// Clicks the button labelled `label`.
    pub async fn press(&self, label: &str) {
        let xpath = format!("//button[normalize-space()='{label}']");
        self.click(Locator::XPath(&xpath)).await;
    }

    async fn click(&self, at: Locator<'_>) {
        let el = self
            .client()
            .find(at)
            .await
            .unwrap_or_else(|e| panic!("nothing to click at {at:?}: {e}"));
        el.click().await.unwrap();
    }

    /// Submits a form the page did not show: `POST action` with `fields`, as a navigation
    /// (what a second login form in the same browser would send).
    pub async fn post_form(&self, action: &str, fields: &[(&str, &str)]) {
        let fields: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        self.client()
            .execute(
                "const f = document.createElement('form');
                 f.method = 'post'; f.action = arguments[0];
                 for (const [k, v] of Object.entries(arguments[1])) {
                   const i = document.createElement('input');
                   i.name = k; i.value = v; f.appendChild(i);
                 }
                 document.body.appendChild(f); f.submit();",
                vec![json!(action), Value::Object(fields)],
            )
            .await
            .unwrap();
    }

    /// A `fetch` from the page (same origin, its cookies): the status and the body.
    pub async fn fetch(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let r = self
            .client()
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 fetch(arguments[1], { method: arguments[0], body: arguments[2] })
                   .then(async r => done([r.status, await r.text()]))
                   .catch(e => done([0, String(e)]));",
                vec![json!(method), json!(path), json!(body)],
            )
            .await
            .unwrap();
        (
            r[0].as_u64().unwrap_or(0) as u16,
            r[1].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Runs a script in the page and waits for the value it passes to its last argument.
    pub async fn run_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.client().execute_async(script, args).await.unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let failing = std::thread::panicking();
        let shots = self.shots.clone();
        // A multi-thread runtime (every browser test uses one): end the WebDriver session
        // now, so no Chromium outlives its test, whether it passed or not.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async move {
                if failing && let Ok(png) = client.screenshot().await {
                    let _ = std::fs::write(shots.join("failed.png"), png);
                }
                let _ = client.close().await;
            })
        });
    }
}

/// An example server (`login` or `demo`) running for one test; killed when dropped.
pub struct App {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _running: session_testkit::process::Running,
}

impl App {
    /// Starts the example `name` with `--port 0`, `args` and `SESSION_KEYS=keys`.
    pub async fn start(name: &str, args: &[&str], keys: &str) -> App {
        let bin = example(name);
        // The tests provoke warnings on purpose (oversized sessions); errors still show.
        let env = [("SESSION_KEYS", keys), ("RUST_LOG", "error")];
        let running = session_testkit::process::start_with_env(&bin.to_string_lossy(), args, &env)
            .await
            .unwrap_or_else(|| panic!("{} did not start", bin.display()));
        App {
            url: running.url.clone(),
            _running: running,
        }
    }

    /// The same server under the name `localhost` (a secure context for `Secure` cookies).
    pub fn localhost(&self) -> String {
        self.url.replace("127.0.0.1", "localhost")
    }
}

/// The example binary `name`: `<NAME>_BIN`, or beside this test's own directory
/// (`target/debug/`), where `cargo xtask test-browser` builds it.
fn example(name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(format!("{}_BIN", name.to_uppercase())) {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: run the browser tests with `cargo xtask test-browser` (it builds the examples)",
        bin.display()
    );
    bin
}

/// The Redis the examples store sessions in (`REDIS_URL`).
pub use session_testkit::redis::shared_url as redis_url;

pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The Redis key of the session whose id the browser holds in its cookie.
pub fn store_key(id: &str) -> String {
    session_core::driver::KeyDerivation::default()
        .derive(&session_core::driver::SessionId::new_unchecked(
            id.to_owned(),
        ))
        .as_str()
        .to_owned()
}

/// The fields of a session's Redis hash (empty when there is no record).
pub async fn record(id: &str) -> std::collections::HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(store_key(id))
        .query_async(&mut redis().await)
        .await
        .unwrap()
}

/// A name unique to this run: the tests share one Redis with each other and with other
/// suites, and a user's owner index is keyed by the name.
pub use session_testkit::unique;

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
