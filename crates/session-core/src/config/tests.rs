//! Unit tests of `config`.

use super::*;

const K: &[u8] = b"0123456789abcdef0123456789abcdef";

fn base() -> ConfigBuilder {
    Config::builder().key(K.to_vec())
}

#[test]
fn defaults_follow_behaviour_md() {
    let c = base().build().unwrap();
    assert_eq!(c.cookie().name, "koa.sess");
    assert!(c.signed());
    assert_eq!(c.algorithm(), Algorithm::Sha256);
    assert_eq!(c.max_age(), MaxAge::Ms(ONE_DAY_MS));
    assert!(c.cookie().http_only);
    assert_eq!(c.cookie().secure, SecurePolicy::Auto);
    assert_eq!(c.cookie().same_site, SameSite::Lax);
    assert_eq!(c.cookie().path, "/");
    assert_eq!(c.cookie().domain, None);
    assert!(!c.rolling() && !c.renew() && !c.guest());
    assert_eq!(c.absolute_lifetime_ms(), None);
    assert!(matches!(c.key_derivation(), KeyDerivation::Hashed { prefix } if prefix == "sess:"));
}

#[test]
fn signed_without_keys_is_an_error() {
    assert_eq!(Config::builder().build().unwrap_err(), ConfigError::NoKeys);
    assert!(Config::builder().unsigned().build().is_ok());
}

#[test]
fn weak_keys_are_rejected_unless_legacy() {
    assert!(matches!(
        Config::builder().key("short").build().unwrap_err(),
        ConfigError::KeyTooShort {
            index: 0,
            len: 5,
            ..
        }
    ));
    assert_eq!(
        Config::builder().key("keyboard cat").build().unwrap_err(),
        ConfigError::PlaceholderKey { index: 0 }
    );
    assert_eq!(
        base().key(K.to_vec()).build().unwrap_err(),
        ConfigError::DuplicateKey { index: 1 }
    );
    assert!(matches!(
        Config::builder()
            .keys((0..5).map(|i| vec![i; 32]))
            .build()
            .unwrap_err(),
        ConfigError::TooManyKeys { count: 5, .. }
    ));
    assert!(Config::builder().key("k1").koa_compat(true).build().is_ok());
    assert!(
        Config::builder()
            .key("k1")
            .legacy_keys(true)
            .build()
            .is_ok()
    );
    assert!(Config::builder().key("").legacy_keys(true).build().is_err());
}

#[test]
fn same_site_none_needs_secure() {
    assert_eq!(
        base()
            .same_site(SameSite::None)
            .secure(SecurePolicy::Never)
            .build()
            .unwrap_err(),
        ConfigError::SameSiteNoneWithoutSecure
    );
    let c = base().same_site(SameSite::None).build().unwrap();
    assert!(c.cookie().secure_for(false));
}

#[test]
fn host_prefix_rules() {
    let host = || base().cookie_name("__Host-id");
    assert_eq!(
        host().domain("example.com").build().unwrap_err(),
        ConfigError::HostPrefixWithDomain
    );
    assert_eq!(
        host().path("/app").build().unwrap_err(),
        ConfigError::HostPrefixWithPath
    );
    assert_eq!(
        host().secure(SecurePolicy::Never).build().unwrap_err(),
        ConfigError::PrefixNeedsSecure("__Host-")
    );
    assert!(host().build().unwrap().cookie().secure_for(false));
    assert_eq!(
        base()
            .cookie_name("__Secure-id")
            .secure(SecurePolicy::Never)
            .build()
            .unwrap_err(),
        ConfigError::PrefixNeedsSecure("__Secure-")
    );
    // Browsers read the prefixes in any case.
    for name in ["__host-id", "__HOST-id", "__Host-"] {
        let host = || base().cookie_name(name);
        assert_eq!(
            host().secure(SecurePolicy::Never).build().unwrap_err(),
            ConfigError::PrefixNeedsSecure("__Host-"),
            "{name}"
        );
        assert_eq!(
            host().domain("example.com").build().unwrap_err(),
            ConfigError::HostPrefixWithDomain
        );
        assert!(host().build().unwrap().cookie().secure_for(false), "{name}");
    }
    assert_eq!(
        base()
            .cookie_name("__SECURE-id")
            .secure(SecurePolicy::Never)
            .build()
            .unwrap_err(),
        ConfigError::PrefixNeedsSecure("__Secure-")
    );
    assert!(
        !base()
            .cookie_name("_Host-id")
            .build()
            .unwrap()
            .cookie()
            .secure_for(false)
    );
}

#[test]
fn zero_lifetimes_are_errors() {
    assert_eq!(
        base().max_age(MaxAge::Ms(0)).build().unwrap_err(),
        ConfigError::ZeroDuration("max_age")
    );
    assert_eq!(
        base()
            .absolute_lifetime(Duration::ZERO)
            .build()
            .unwrap_err(),
        ConfigError::ZeroDuration("absolute_lifetime")
    );
    assert_eq!(
        base()
            .session_ttl(Duration::from_micros(10))
            .build()
            .unwrap_err(),
        ConfigError::ZeroDuration("session_ttl")
    );
}

#[test]
fn bad_names_paths_domains() {
    for name in ["", "a b", "a;b", "a=b", "a\u{1}", "sess\u{e9}"] {
        assert!(matches!(
            base().cookie_name(name).build().unwrap_err(),
            ConfigError::InvalidCookieName(_)
        ));
    }
    assert!(base().cookie_name("koa:sess").build().is_ok());
    assert!(base().path("app").build().is_err());
    assert!(base().path("/a;b").build().is_err());
    assert!(base().domain("a b").build().is_err());
    assert!(base().domain("").build().is_err());
    assert!(base().domain("example.com").build().is_ok());
}

#[test]
fn id_prefix_is_checked_at_construction() {
    for bad in ["a;b", "a b", "a,b", "a\"b", "a\\b", "\u{e9}", "a\u{1}"] {
        assert_eq!(
            base().id_prefix(bad).build().unwrap_err(),
            ConfigError::InvalidIdPrefix(bad.to_owned()),
            "{bad:?}"
        );
    }
    let long = "p".repeat(220);
    assert_eq!(
        base().id_prefix(long).build().unwrap_err(),
        ConfigError::IdTooLong { len: 263, max: 256 }
    );
    // The longest prefix that still fits works end to end.
    let fits = "p".repeat(256 - crate::id::ID_LEN);
    let c = base().id_prefix(fits).build().unwrap();
    let id = c.ids().generate().unwrap();
    assert!(c.ids().parse(id.as_str()).is_some());
    assert!(base().id_prefix("app1:").build().is_ok());
}

#[test]
fn generators_that_reject_their_own_ids_fail_at_construction() {
    struct Bad;
    impl IdGenerator for Bad {
        fn generate(&self) -> Result<String, getrandom::Error> {
            Ok("has space".into())
        }
        fn is_valid(&self, _: &str) -> bool {
            true
        }
    }
    struct Picky;
    impl IdGenerator for Picky {
        fn generate(&self) -> Result<String, getrandom::Error> {
            Ok("abc".into())
        }
        fn is_valid(&self, _: &str) -> bool {
            false
        }
    }
    assert!(matches!(
        base().id_generator(Arc::new(Bad)).build().unwrap_err(),
        ConfigError::IdGenerator(_)
    ));
    assert!(matches!(
        base().id_generator(Arc::new(Picky)).build().unwrap_err(),
        ConfigError::IdGenerator(_)
    ));
}

#[test]
fn lifetimes_a_store_cannot_keep_are_errors() {
    let year = Duration::from_secs(365 * 86_400);
    for (ttl, ok) in [
        (Duration::from_millis(MAX_AGE_CAP_MS), true),
        (Duration::from_millis(MAX_AGE_CAP_MS + 1), false),
        (10 * year, false),
        (Duration::MAX, false),
    ] {
        let got = base().session_ttl(ttl).build();
        assert_eq!(got.is_ok(), ok, "session_ttl {ttl:?}");
        if !ok {
            assert!(matches!(
                got.unwrap_err(),
                ConfigError::DurationTooLong {
                    what: "session_ttl",
                    ..
                }
            ));
        }
    }
    for (grace, ok) in [
        (crate::expiry::MAX_SUPERSEDE_GRACE, true),
        (
            crate::expiry::MAX_SUPERSEDE_GRACE + Duration::from_millis(1),
            false,
        ),
        (Duration::MAX, false),
    ] {
        let got = base().supersede_grace(grace).build();
        assert_eq!(got.is_ok(), ok, "supersede_grace {grace:?}");
    }
}

#[test]
fn max_age_beyond_the_browser_cap_is_clamped() {
    let ten_years = 10 * 365 * ONE_DAY_MS;
    let c = base().max_age(MaxAge::Ms(ten_years)).build().unwrap();
    assert_eq!(c.max_age(), MaxAge::Ms(MAX_AGE_CAP_MS));
    let c = base().max_age(MaxAge::Ms(MAX_AGE_CAP_MS)).build().unwrap();
    assert_eq!(c.max_age(), MaxAge::Ms(MAX_AGE_CAP_MS));
    assert_eq!(
        base().supersede_grace(Duration::ZERO).build().unwrap_err(),
        ConfigError::ZeroDuration("supersede_grace")
    );
}

#[test]
fn koa_compat_preset() {
    let c = Config::builder()
        .key("k1")
        .koa_compat(true)
        .build()
        .unwrap();
    assert_eq!(c.algorithm(), Algorithm::Sha1);
    assert_eq!(c.key_derivation(), &KeyDerivation::Raw);
    assert!(
        c.ids()
            .parse("3b241101-e2bb-4255-8caf-4136c566a962")
            .is_some()
    );
    let c = Config::builder()
        .key("k1")
        .koa_compat(true)
        .algorithm(Algorithm::Sha256)
        .build()
        .unwrap();
    assert_eq!(c.algorithm(), Algorithm::Sha256);
}

#[test]
fn debug_hides_keys() {
    let c = base().build().unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("0123456789abcdef"));
    assert!(!format!("{:?}", c.keys()[0]).contains("0123"));
}

#[test]
fn encrypted_cookie_mode_rules() {
    let c = base().cookie_mode(CookieMode::Encrypted).build().unwrap();
    assert_eq!(c.cookie_mode(), CookieMode::Encrypted);
    assert_eq!(base().build().unwrap().cookie_mode(), CookieMode::Signed);
    // No keys to derive from, or koa's readable format: refused, not silently signed.
    assert!(matches!(
        Config::builder()
            .unsigned()
            .cookie_mode(CookieMode::Encrypted)
            .build(),
        Err(ConfigError::Encryption(_))
    ));
    assert!(matches!(
        base()
            .koa_compat(true)
            .cookie_mode(CookieMode::Encrypted)
            .build(),
        Err(ConfigError::Encryption(_))
    ));
    // A short legacy key signs (with a warning) but never encrypts.
    let short = || Config::builder().key("k1").legacy_keys(true);
    assert!(short().build().is_ok());
    assert!(matches!(
        short().cookie_mode(CookieMode::Encrypted).build(),
        Err(ConfigError::KeyTooShort { .. })
    ));
    assert!(matches!(
        Config::builder()
            .key("keyboard cat")
            .legacy_keys(true)
            .cookie_mode(CookieMode::Encrypted)
            .build(),
        Err(ConfigError::KeyTooShort { .. } | ConfigError::PlaceholderKey { .. })
    ));
}

#[test]
fn cookie_refresh_is_checked_at_construction() {
    assert_eq!(base().build().unwrap().cookie_refresh(), 0.01);
    assert_eq!(
        base().koa_compat(true).build().unwrap().cookie_refresh(),
        0.0
    );
    assert_eq!(
        base().cookie_refresh(0.5).build().unwrap().cookie_refresh(),
        0.5
    );
    assert_eq!(
        base()
            .koa_compat(true)
            .cookie_refresh(0.0)
            .build()
            .unwrap()
            .cookie_refresh(),
        0.0
    );
    for bad in [f64::NAN, -0.01, 0.51, f64::INFINITY] {
        assert!(matches!(
            base().cookie_refresh(bad).build(),
            Err(ConfigError::CookieRefresh(_))
        ));
    }
    assert!(matches!(
        base().koa_compat(true).cookie_refresh(0.01).build(),
        Err(ConfigError::CookieRefresh(_))
    ));
}
