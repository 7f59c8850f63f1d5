//! A logout is never undone by a concurrent regenerate, nor by a concurrent save: whatever
//! order the answers reach the browser in, none leads back to the session, and no live record
//! keeps its data.

use super::*;

/// A regenerate racing a logout: the regenerate either ends as a destroy, or the destroy
/// follows its marker to the new id.
#[test]
fn a_logout_is_never_undone_by_a_concurrent_regenerate() {
    attack(|secrets| async move {
        for v in variants(LogoutRaces).await {
            let app = v.app(|b| b).await;
            let user = unique("ada");
            secrets.add(&user);
            let (mut undone, mut regen_lost, mut regen_won) = (0, 0, 0);
            for _ in 0..RACES {
                let jar = app.logged_in(&user, &secrets).await;
                let (r, d) = tokio::join!(app.regenerate(&jar), app.logout(&jar));
                secrets.note(&r);
                assert_eq!((r.status, d.status), (204, 204), "{} {}", r.body, d.body);
                assert!(d.removes(), "the logout removes the cookies");
                match r.sets_id() {
                    Some(_) => {
                        regen_won += 1;
                        let mut after = jar.clone();
                        after.apply(&r);
                        let s = app.get("/session", &after).await;
                        if s.body.contains(&user) {
                            undone += 1;
                        }
                    }
                    None => {
                        regen_lost += 1;
                        assert!(r.removes(), "a regenerate that lost ends as a destroy");
                    }
                }
                // Whatever the order, no record anywhere still holds the user.
                v.backend
                    .assert_no_live_record_holds(&user, v.label())
                    .await;
            }
            eprintln!(
                "{}: {RACES} regenerate/destroy races: {regen_lost} regenerates ended as a destroy, \
                 {regen_won} destroys followed the marker; logouts undone: {undone}",
                v.label()
            );
            assert_eq!(undone, 0, "{}: logouts undone", v.label());
            v.backend.assert_every_key_has_a_ttl().await;
        }
    });
}

/// A regenerate, a logout and a save at once never revive the session.
#[test]
fn regenerate_destroy_and_save_triples_never_revive_the_session() {
    attack(|secrets| async move {
        for v in variants(LogoutRaces).await {
            let app = v.app(|b| b).await;
            let user = unique("bob");
            secrets.add(&user);
            let mut revived = 0;
            for i in 0..RACES {
                let jar = app.logged_in(&user, &secrets).await;
                let cart = json!({ "cart": i });
                let (r, d, s) =
                    tokio::join!(app.regenerate(&jar), app.logout(&jar), app.put(&cart, &jar),);
                for reply in [&r, &d, &s] {
                    secrets.note(reply);
                    assert!(reply.status < 500, "{reply:?}");
                }
                // Every cookie any of the three handed out leads nowhere.
                for reply in [&r, &s] {
                    if reply.sets_id().is_some() {
                        let mut after = jar.clone();
                        after.apply(reply);
                        if app.get("/session", &after).await.body.contains(&user) {
                            revived += 1;
                        }
                    }
                }
                v.backend
                    .assert_no_live_record_holds(&user, v.label())
                    .await;
            }
            eprintln!(
                "{}: {RACES} regenerate/destroy/save triples: sessions revived: {revived}",
                v.label()
            );
            assert_eq!(revived, 0);
        }
    });
}

/// Two regenerates, a save and a view racing a logout, under each option that changes what a
/// commit writes (rolling, renew, guest): whatever order the browser applies the five answers
/// in, none leads back to the session, and no live record keeps its data.
#[test]
fn two_regenerates_a_save_and_a_view_racing_a_logout_never_revive_it() {
    attack(|secrets| async move {
        let (mut revived, mut failed) = (0, 0);
        for mode in ["default", "rolling", "renew", "guest"] {
            for v in variants(LogoutRaces).await {
                let app = v
                    .app(|b| match mode {
                        "rolling" => b.rolling(true),
                        "renew" => b.renew(true),
                        "guest" => b.guest(true),
                        _ => b,
                    })
                    .await;
                let user = unique("nick");
                secrets.add(&user);
                for i in 0..RACES / 4 {
                    let jar = app.logged_in(&user, &secrets).await;
                    let cart = json!({ "cart": i });
                    let (r1, r2, d, s, g) = tokio::join!(
                        app.regenerate(&jar),
                        app.regenerate(&jar),
                        app.logout(&jar),
                        app.put(&cart, &jar),
                        app.get("/", &jar),
                    );
                    let all = [&r1, &r2, &d, &s, &g];
                    for reply in all {
                        secrets.note(reply);
                        failed += usize::from(reply.status >= 500);
                    }
                    // Each answer alone, and all five in the order they were sent.
                    let mut orders: Vec<Vec<&Reply>> = all.iter().map(|r| vec![*r]).collect();
                    orders.push(all.to_vec());
                    for order in orders {
                        let mut after = jar.clone();
                        for reply in order {
                            after.apply(reply);
                        }
                        revived +=
                            usize::from(app.get("/session", &after).await.body.contains(&user));
                    }
                    v.backend
                        .assert_no_live_record_holds(&user, v.label())
                        .await;
                }
                v.backend.assert_every_key_has_a_ttl().await;
            }
        }
        eprintln!(
            "{} five-way races per backend over 4 modes: revived {revived}, 5xx {failed}",
            RACES
        );
        assert_eq!((revived, failed), (0, 0));
    });
}

/// A logout carrying an id that regenerates have moved on from (one login, or up to 8
/// regenerates within the grace time: the chain a destroy follows) ends the newest session.
#[test]
fn a_logout_carrying_the_old_id_ends_the_new_session() {
    attack(|secrets| async move {
        for v in variants(LogoutRaces).await {
            let app = v.app(|b| b).await;
            for hops in 1..=8 {
                let user = unique("carol");
                secrets.add(&user);
                let old = app.logged_in(&user, &secrets).await;
                let mut new = old.clone();
                for _ in 0..hops {
                    let r = app.regenerate(&new).await;
                    secrets.note(&r);
                    new.apply(&r);
                }
                assert_ne!(new.id(), old.id());
                assert!(app.get("/session", &new).await.body.contains(&user));
                // A logout tab that still had the old cookie.
                let d = app.logout(&old).await;
                assert!(d.removes());
                let s = app.get("/session", &new).await;
                assert_eq!(
                    s.is_new(),
                    Some(true),
                    "{}: after {hops} regenerates the new session must be over",
                    v.label()
                );
                assert!(!s.body.contains(&user));
                v.backend
                    .assert_no_live_record_holds(&user, v.label())
                    .await;
            }
        }
    });
}
