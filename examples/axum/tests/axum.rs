//! The axum counter example runs and counts.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn counts_views() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_axum-counter"))
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
    for n in 1..=3 {
        assert_eq!(
            c.get(&url).send().await.unwrap().text().await.unwrap(),
            format!("{n} views")
        );
    }
    // Another visitor has their own count.
    assert_eq!(
        reqwest::get(&url).await.unwrap().text().await.unwrap(),
        "1 views"
    );
}
