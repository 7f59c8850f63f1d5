//! The counter example runs and counts.
#![allow(missing_docs)]

#[tokio::test]
async fn counts_views() {
    session_testkit::client::assert_example_counts_views(env!("CARGO_BIN_EXE_counter")).await;
}
