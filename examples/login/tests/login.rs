//! The login example: regenerate on login, protected page, destroy on logout.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn login_private_logout() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_login"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next_line()
        .await
        .unwrap()
        .unwrap();
    let url = line.split_whitespace().nth(2).unwrap().to_owned();
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    assert_eq!(
        c.get(format!("{url}/private"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = c
        .post(format!("{url}/login"))
        .body("user=ada")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "welcome, ada");
    assert_eq!(
        c.get(format!("{url}/private"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "secret page for ada"
    );
    assert_eq!(
        c.post(format!("{url}/logout"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{url}/private"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}
