//! Unit tests of `jar`.

use super::*;
use session_core::Config;

fn jar() -> (SessionCookies, String, String) {
    let config = Config::builder()
        .key(b"a key of thirty-two bytes or more".to_vec())
        .build()
        .unwrap();
    let jar = SessionCookies::from_config(&config).unwrap();
    let set = jar.write("realvalue", None, 0, false).unwrap();
    let sig = set.sig.unwrap().split(';').next().unwrap().to_owned();
    (jar, "koa.sess=realvalue".to_owned(), sig)
}

fn read(jar: &SessionCookies, header: &str) -> Incoming<'static> {
    let header: &'static str = Box::leak(header.to_owned().into_boxed_str());
    jar.read([header.as_bytes()])
}

#[test]
fn planted_signatures_ahead_of_the_real_pair_do_not_hide_it() {
    let (jar, value, sig) = jar();
    let junk = "koa.sess.sig=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for n in [1, 4, MAX_SIGNATURE_CANDIDATES - 1] {
        let planted = vec![junk; n].join("; ");
        let got = read(&jar, &format!("{planted}; {value}; {sig}"));
        assert!(
            matches!(
                got,
                Incoming::Valid {
                    value: "realvalue",
                    ..
                }
            ),
            "{n}: {got:?}"
        );
    }
    // More than are checked: anonymous, but never Invalid (which removes the .sig cookie).
    let planted = vec![junk; MAX_SIGNATURE_CANDIDATES].join("; ");
    let got = read(&jar, &format!("{planted}; {value}; {sig}"));
    assert_eq!(got, Incoming::Ambiguous);
}

#[test]
fn planted_values_ahead_of_the_real_pair_do_not_hide_it() {
    let (jar, value, sig) = jar();
    for n in [1, 4, MAX_CANDIDATES - 1] {
        let planted = vec!["koa.sess=planted"; n].join("; ");
        let got = read(&jar, &format!("{planted}; {value}; {sig}"));
        assert!(
            matches!(
                got,
                Incoming::Valid {
                    value: "realvalue",
                    ..
                }
            ),
            "{n}: {got:?}"
        );
    }
    let planted = ["koa.sess=planted"; MAX_CANDIDATES].join("; ");
    assert_eq!(
        read(&jar, &format!("{planted}; {value}; {sig}")),
        Incoming::Ambiguous
    );
    // All checked and none valid: Invalid (koa clears the .sig cookie then).
    assert_eq!(
        read(&jar, "koa.sess=planted; koa.sess.sig=AAAA"),
        Incoming::Invalid
    );
}

#[test]
fn every_value_that_verifies_is_a_candidate_in_order() {
    let (jar, value, sig) = jar();
    let other = jar.write("othervalue", None, 0, false).unwrap();
    let other_sig = other.sig.unwrap().split(';').next().unwrap().to_owned();
    // A validly signed pair planted ahead of the real one does not hide it.
    let header = format!("koa.sess=othervalue; {other_sig}; {value}; {sig}");
    let Incoming::Candidates {
        verified,
        unchecked: false,
    } = read(&jar, &header)
    else {
        panic!("{:?}", read(&jar, &header));
    };
    let values: Vec<&str> = verified.iter().map(|v| v.value).collect();
    assert_eq!(values, ["othervalue", "realvalue"]);
    // The same value twice (two paths) is one candidate.
    assert!(matches!(
        read(&jar, &format!("{value}; {value}; {sig}")),
        Incoming::Valid {
            value: "realvalue",
            ..
        }
    ));
    // One verified while more were sent than are checked: the caller decides.
    let planted = ["koa.sess=planted"; MAX_CANDIDATES].join("; ");
    let got = read(&jar, &format!("{value}; {planted}; {sig}"));
    assert!(
        matches!(&got, Incoming::Candidates { verified, unchecked: true } if verified.len() == 1),
        "{got:?}"
    );
}

#[test]
fn unsigned_values_are_all_candidates_and_bounded() {
    let config = Config::builder().unsigned().build().unwrap();
    let jar = SessionCookies::from_config(&config).unwrap();
    assert!(matches!(
        read(&jar, "koa.sess=a"),
        Incoming::Valid { value: "a", .. }
    ));
    let got = read(&jar, "koa.sess=a; koa.sess=b");
    assert!(
        matches!(&got, Incoming::Candidates { verified, unchecked: false } if verified.len() == 2),
        "{got:?}"
    );
    let many = ["koa.sess=x1", "koa.sess=x2"]
        .repeat(MAX_CANDIDATES)
        .join("; ");
    let got = read(&jar, &many);
    assert!(
        matches!(&got, Incoming::Candidates { verified, unchecked: true } if verified.len() == 2),
        "{got:?}"
    );
}

#[test]
fn a_destroy_reads_past_the_usual_bounds() {
    let (jar, value, sig) = jar();
    let planted = ["koa.sess=planted"; MAX_CANDIDATES].join("; ");
    let header = format!("{planted}; {value}; {sig}");
    assert_eq!(read(&jar, &header), Incoming::Ambiguous);
    let header: &'static str = Box::leak(header.into_boxed_str());
    assert!(matches!(
        jar.read_for_destroy([header.as_bytes()]),
        Incoming::Valid {
            value: "realvalue",
            ..
        }
    ));
    let beyond = ["koa.sess=planted"; MAX_DESTROY_CANDIDATES].join("; ");
    let header: &'static str = Box::leak(format!("{beyond}; {value}; {sig}").into_boxed_str());
    assert_eq!(
        jar.read_for_destroy([header.as_bytes()]),
        Incoming::Ambiguous
    );
}

#[test]
fn decimal_digits() {
    use super::push_u64;
    for n in [0, 7, 10, 86_400, 34_560_000, u64::MAX] {
        let mut s = String::new();
        push_u64(&mut s, n);
        assert_eq!(s, n.to_string());
    }
}
