//! The login example: regenerate on login, protected page, destroy on logout.
#![allow(clippy::unwrap_used, missing_docs)]

#[tokio::test]
async fn login_private_logout() {
    let app = example_support::start(env!("CARGO_BIN_EXE_login"), &[])
        .await
        .unwrap();
    let url = &app.url;
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(c.get(format!("{url}/private")).send().await.unwrap()),
        401
    );
    let r = c
        .post(format!("{url}/login"))
        .body("user=ada")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "welcome, ada");
    let r = c.get(format!("{url}/private")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "secret page for ada");
    assert_eq!(
        status(c.post(format!("{url}/logout")).send().await.unwrap()),
        200
    );
    assert_eq!(
        status(c.get(format!("{url}/private")).send().await.unwrap()),
        401
    );
}
