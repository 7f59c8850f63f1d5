//! The axum counter example runs and counts.
#![allow(clippy::unwrap_used, missing_docs)]

#[tokio::test]
async fn counts_views() {
    let app = example_support::start(env!("CARGO_BIN_EXE_axum-counter"), &[])
        .await
        .unwrap();
    example_support::assert_counts_views(&app.url).await;
}
