//! The counter example runs and counts.
#![allow(clippy::unwrap_used, missing_docs)]

#[tokio::test]
async fn counts_views() {
    let app = example_support::start(env!("CARGO_BIN_EXE_counter"), &[])
        .await
        .unwrap();
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    for n in 1..=3 {
        assert_eq!(
            c.get(&app.url).send().await.unwrap().text().await.unwrap(),
            format!("{n} views")
        );
    }
    // Another visitor has their own count.
    assert_eq!(
        reqwest::get(&app.url).await.unwrap().text().await.unwrap(),
        "1 views"
    );
}
