//! Sessions that hold nothing write nothing, and guest cookies never lead to another
//! visitor's data.

use super::*;

/// Regenerating a session that holds nothing writes nothing (guest mode included).
#[test]
fn anonymous_regenerate_writes_nothing() {
    attack(|_| async move {
        for v in variants(Guest).await {
            let app = v.app(|b| b).await;
            let mut cookies = 0;
            for _ in 0..400 {
                let r = app.regenerate(&Jar::default()).await;
                assert_eq!(r.status, 204);
                cookies += r.set_cookies.len();
            }
            let created = v.backend.take_created().len();
            eprintln!(
                "{}: 400 anonymous regenerates: {created} records, {cookies} cookies",
                v.label()
            );
            assert_eq!((created, cookies), (0, 0));
            // Guest mode, with and without a guest cookie: still no record.
            let guest_app = v.app(|b| b.guest(true)).await;
            let mut guest = Jar::default();
            for i in 0..200 {
                let r = guest_app.regenerate(&guest).await;
                assert_eq!(r.status, 204);
                if i == 0 {
                    guest.apply(&guest_app.get("/session", &Jar::default()).await);
                }
            }
            assert_eq!(v.backend.take_created().len(), 0, "guest mode");
            assert_eq!(v.backend.redis_keys().await.len(), 0);
            // Nothing above raises an event (no session was written or ended); one write
            // shows the layers carry the suite's recorder.
            let r = guest_app.put(&serde_json::json!({"n": 1}), &guest).await;
            assert!(r.status < 300, "{}", r.status);
        }
    });
}

/// Guest sessions get the same scrutiny: a flood of new visitors writes no record, and a guest
/// cookie planted in a victim's browser never leads to the victim's data.
#[test]
fn guest_cookies_never_lead_to_another_visitors_data() {
    attack(|secrets| async move {
        for v in variants(Guest).await {
            let app = v.app(|b| b.guest(true)).await;
            // A flood of new visitors: each gets a cookie, none gets a record.
            let mut guests = 0;
            for _ in 0..400 {
                let r = app.get("/session", &Jar::default()).await;
                guests += usize::from(r.sets_id().is_some());
            }
            assert_eq!(guests, 400);
            assert_eq!(v.backend.take_created().len(), 0, "guests write no record");
            // Fixation with a guest cookie: the attacker keeps a copy of a guest cookie and
            // plants it in the victim's browser; the victim's data never lands under it.
            let mut leaks = 0;
            for _ in 0..RACES {
                let mut attacker = Jar::default();
                attacker.apply(&app.get("/session", &Jar::default()).await);
                let mut victim = attacker.clone();
                let secret = unique("card");
                secrets.add(&secret);
                let card = json!({ "card": secret });
                let (a, b) = tokio::join!(app.put(&card, &victim), app.put(&card, &victim));
                for r in [&a, &b] {
                    assert_eq!(r.status, 204);
                    assert_ne!(
                        r.sets_id().as_deref(),
                        attacker.id(),
                        "a fresh id on the first write"
                    );
                }
                victim.apply(&a);
                let seen = app.get("/session", &attacker).await;
                leaks += usize::from(seen.body.contains(&secret));
                assert!(app.get("/session", &victim).await.body.contains(&secret));
            }
            eprintln!(
                "{}: {RACES} planted guest cookies: leaks {leaks}",
                v.label()
            );
            assert_eq!(leaks, 0);
        }
    });
}
