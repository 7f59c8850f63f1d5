//! The demo's flash messages over real TCP: `POST /flash` adds one, `GET /flash` shows them and
//! takes them only where the request is a page load, `GET /session` never shows them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use serde_json::{Value, json as j};
use session_testkit::client::{browser, send};

mod support;
use support::pages::{data, flash, messages, same_origin_put};
use support::start;

/// A message is seen by every request but a prefetch, and taken only by a page load (no fetch
/// metadata, or `navigate` to a `document`): shown there once, then gone. `GET /session`
/// never shows it, and another visitor never sees it.
async fn page_loads_take_the_messages(args: &[&str]) {
    let store = args.join(" ");
    let d = start(args).await;
    let (c, url) = (browser(), d.url.as_str());
    assert_eq!(flash(&c, url, "success", "Saved.", &[]).await, 204);
    assert_eq!(
        flash(&c, url, "warning", "Look <here> & \"there\"", &[]).await,
        204
    );
    let both = j!([
        {"level": "success", "text": "Saved."},
        {"level": "warning", "text": "Look <here> & \"there\""},
    ]);
    // Out of the data: the view of the session shows none of it.
    assert_eq!(data(&c, url).await, j!({}), "{store}");
    same_origin_put(&c, url, "user").await;
    assert_eq!(data(&c, url).await, j!({"user": true}), "{store}");
    assert_eq!(messages(&browser(), url, &[]).await, j!([]), "{store}");

    // Seen, and left, by requests that are not page loads; a prefetch sees none.
    let leave: [&[(&str, &str)]; 6] = [
        &[("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty")],
        &[("sec-fetch-mode", "cors")],
        &[("sec-fetch-dest", "iframe")],
        &[("x-requested-with", "XMLHttpRequest")],
        &[("hx-request", "true")],
        &[("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "script")],
    ];
    let prefetch: [&[(&str, &str)]; 3] = [
        &[("sec-purpose", "prefetch")],
        &[
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
            ("sec-purpose", "prefetch;prerender"),
        ],
        &[("purpose", "prefetch")],
    ];
    let none = j!([]);
    let (mut checked, mut failures) = (0, Vec::new());
    for round in 0..2 {
        for (headers, want) in leave
            .iter()
            .map(|h| (h, &both))
            .chain(prefetch.iter().map(|h| (h, &none)))
        {
            checked += 1;
            let got = messages(&c, url, headers).await;
            if got != *want {
                failures.push(format!("{store} round {round} {headers:?}: {got}"));
            }
        }
    }
    assert_eq!(checked, 18);
    assert!(failures.is_empty(), "{failures:#?}");

    // A page load without fetch metadata takes them: shown once.
    assert_eq!(messages(&c, url, &[]).await, both, "{store}");
    assert_eq!(messages(&c, url, &[]).await, j!([]), "{store}");
    assert_eq!(
        messages(&c, url, &[("sec-fetch-mode", "cors")]).await,
        j!([])
    );

    // A page load that says so takes them too.
    let nav = [
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-site", "same-origin"),
    ];
    assert_eq!(flash(&c, url, "info", "Signed in.", &[]).await, 204);
    let one = j!([{"level": "info", "text": "Signed in."}]);
    assert_eq!(messages(&c, url, &nav).await, one, "{store}");
    assert_eq!(messages(&c, url, &nav).await, j!([]), "{store}");
    assert_eq!(data(&c, url).await, j!({"user": true}), "{store}");
}

#[tokio::test]
async fn page_loads_take_the_messages_in_a_store() {
    page_loads_take_the_messages(&["--store", "memory"]).await;
}

/// Cookie mode, signed and encrypted: the messages ride in the cookie (this test found that
/// koa's JSON left out their `_flash.…` keys, with every `_` key).
#[tokio::test]
async fn page_loads_take_the_messages_in_cookie_mode() {
    page_loads_take_the_messages(&["--store", "cookie"]).await;
    page_loads_take_the_messages(&["--store", "cookie", "--encrypt"]).await;
}

/// `POST /flash` answers 400 for a body that is not `{"level", "text"}` with a known level
/// (and adds nothing), 413 past 64 KiB; every level is accepted.
#[tokio::test]
async fn bad_messages_are_refused() {
    let d = start(&["--store", "memory"]).await;
    let (c, url) = (browser(), d.url.as_str());
    let bad = [
        "",
        "{",
        "[]",
        r#""info""#,
        r#"{"level":"loud","text":"x"}"#,
        r#"{"level":"INFO","text":"x"}"#,
        r#"{"level":1,"text":"x"}"#,
        r#"{"level":"info"}"#,
        r#"{"text":"x"}"#,
        r#"{"level":"info","text":7}"#,
    ];
    let (mut checked, mut failures) = (0, Vec::new());
    for body in bad {
        checked += 1;
        let r = send(c.post(format!("{url}/flash")).body(body)).await;
        if r.status != 400 || r.body.is_empty() {
            failures.push(format!("{body}: {} {}", r.status, r.body));
        }
    }
    assert_eq!(checked, bad.len());
    assert!(failures.is_empty(), "{failures:?}");
    let big = j!({"level": "info", "text": "x".repeat(65 * 1024)}).to_string();
    assert_eq!(
        send(c.post(format!("{url}/flash")).body(big)).await.status,
        413
    );
    assert_eq!(messages(&c, url, &[]).await, j!([]));

    let levels = ["debug", "info", "success", "warning", "error"];
    for (i, level) in levels.iter().enumerate() {
        assert_eq!(flash(&c, url, level, &format!("m{i}"), &[]).await, 204);
    }
    let all: Vec<Value> = levels
        .iter()
        .enumerate()
        .map(|(i, l)| j!({"level": l, "text": format!("m{i}")}))
        .collect();
    assert_eq!(messages(&c, url, &[]).await, Value::Array(all));
}

/// Messages of two requests in the same millisecond keep their order (this test found that a
/// per-request counter let a random tag order them).
#[tokio::test]
async fn messages_added_in_one_millisecond_keep_their_order() {
    const ROUNDS: usize = 50;
    let d = start(&["--store", "memory"]).await;
    let (c, url) = (browser(), d.url.as_str());
    let mut out_of_order = 0;
    for _ in 0..ROUNDS {
        for text in ["first", "second"] {
            assert_eq!(flash(&c, url, "info", text, &[]).await, 204);
        }
        let shown = messages(&c, url, &[]).await;
        if shown != j!([{"level": "info", "text": "first"}, {"level": "info", "text": "second"}]) {
            out_of_order += 1;
        }
    }
    assert_eq!(
        out_of_order, 0,
        "{out_of_order} of {ROUNDS} rounds out of order"
    );
}
