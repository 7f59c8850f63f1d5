//! What the flash and CSRF tests share: requests to `/flash`, `/csrf` and `/session`, and
//! unsafe requests with or without a token.

use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json as j};
use session_testkit::client::{Reply, send};

use super::json;

/// A form's content type.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// A request with any method, by name (`PATCH`).
pub fn req(c: &Client, method: &str, url: String) -> RequestBuilder {
    c.request(Method::from_bytes(method.as_bytes()).unwrap(), url)
}

/// `POST /flash` with `{"level", "text"}`, and headers.
pub async fn flash(
    c: &Client,
    url: &str,
    level: &str,
    text: &str,
    headers: &[(&str, &str)],
) -> u16 {
    let mut rb = c
        .post(format!("{url}/flash"))
        .body(j!({ "level": level, "text": text }).to_string());
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    send(rb).await.status
}

/// `GET /flash` with `headers`: the messages as JSON.
pub async fn messages(c: &Client, url: &str, headers: &[(&str, &str)]) -> Value {
    let mut rb = c.get(format!("{url}/flash"));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = send(rb).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    json(&r.body)
}

/// `GET /session`: the data as JSON.
pub async fn data(c: &Client, url: &str) -> Value {
    let r = send(c.get(format!("{url}/session"))).await;
    assert_eq!(r.status, 200);
    json(&r.body)
}

/// `GET /csrf`: a token.
pub async fn token(c: &Client, url: &str) -> String {
    let r = send(c.get(format!("{url}/csrf"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    let t = json(&r.body)["token"].as_str().unwrap().to_owned();
    assert_eq!(t.len(), 86, "{t}");
    t
}

/// `PUT /session` with `{key: true}`, sent as the page of the same origin would (no token).
pub async fn same_origin_put(c: &Client, url: &str, key: &str) {
    let r = send(
        c.put(format!("{url}/session"))
            .header("sec-fetch-site", "same-origin")
            .body(j!({ key: true }).to_string()),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
}

/// `method path` with the token in `X-CSRF-Token` (when given) and `Sec-Fetch-Site` (when
/// given); `PUT /session` sets `{mark: true}`, `POST /flash` adds a message saying `mark`.
pub async fn unsafe_call(
    c: &Client,
    url: &str,
    (method, path): (&str, &str),
    token: Option<&str>,
    site: Option<&str>,
    mark: &str,
) -> Reply {
    let mut rb = req(c, method, format!("{url}{path}"));
    if let Some(t) = token {
        rb = rb.header("x-csrf-token", t);
    }
    if let Some(s) = site {
        rb = rb.header("sec-fetch-site", s);
    }
    rb = match (method, path) {
        ("PUT", "/session") => rb.body(j!({ mark: true }).to_string()),
        ("POST", "/flash") => rb.body(j!({"level": "info", "text": mark}).to_string()),
        _ => rb,
    };
    send(rb).await
}
