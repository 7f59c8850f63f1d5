//! Browser tests of the login example and the demo, in headless Chromium driven through
//! WebDriver: cookies as the browser keeps them (`HttpOnly` ones included), logout, the back
//! button, id regeneration, key rotation across restarts, two tabs, the 4096-byte cookie limit
//! and the `__Host-` prefix, a flash message that a `<link rel="prefetch">` of its page does
//! not take, and forms of another site or another port that the CSRF check refuses. The tests
//! are in `tests/`; run them with `cargo xtask test-browser`, which finds Chromium and
//! chromedriver (or says how to install them), starts chromedriver and Redis, builds the
//! examples, and keeps a screenshot of every page each test saw under
//! `target/tmp/browser/<test>/`.
