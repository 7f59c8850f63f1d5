//! Request `Cookie` header parsing: several header fields, tolerant of junk, over raw bytes (a
//! header that is not UTF-8 must not hide the session cookie or cause a panic).

/// The `(name, value)` pairs of one `Cookie` header field, in order.
///
/// Pairs without `=` or with an empty name are skipped; whitespace around names and values is
/// trimmed; a value wrapped in double quotes has them removed, as Node's `cookies` package
/// does (so the quoted form of a cookie is the same cookie, never a different session).
pub fn pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&b| b == b';').filter_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let name = trim(&pair[..eq]);
        if name.is_empty() {
            return None;
        }
        let mut value = trim(&pair[eq + 1..]);
        if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
            value = &value[1..value.len() - 1];
        }
        Some((name, value))
    })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Every value of cookie `name` (exact, case-sensitive match) across all header fields, in the
/// order the client sent them.
pub fn values_of<'a, I>(headers: I, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: 'a,
{
    headers
        .into_iter()
        .flat_map(pairs)
        .filter(move |(n, _)| *n == name.as_bytes())
        .map(|(_, v)| v)
}

/// Whether every byte is an RFC 6265 `cookie-octet` (no CTLs, whitespace, `"`, `,`, `;`, `\`).
pub use session_core::driver::is_cookie_value;

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(h: &[u8]) -> Vec<(String, String)> {
        pairs(h)
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn tolerant_parsing() {
        assert_eq!(
            collect(b" a=1 ;b = 2;;noeq; =x;c=d=e; q=\"quoted\";__proto__=p;"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("c".into(), "d=e".into()),
                ("q".into(), "quoted".into()),
                ("__proto__".into(), "p".into()),
            ]
        );
        assert_eq!(collect(b"x=\""), vec![("x".into(), "\"".into())]);
        assert!(collect(b"").is_empty());
        assert_eq!(collect(b"a=\xff\xfe; b=2").len(), 2);
    }

    #[test]
    fn several_headers_and_exact_names() {
        let h: [&[u8]; 3] = [b"a=1", b"id=first; ID=upper", b"__HOST-id=x; id=second"];
        let got: Vec<&[u8]> = values_of(h, "id").collect();
        assert_eq!(got, vec![&b"first"[..], &b"second"[..]]);
        assert_eq!(values_of(h, "__Host-id").count(), 0);
    }

    #[test]
    fn octet_table_matches_rfc_6265() {
        for b in 0..=255u8 {
            let rfc = b == 0x21
                || (0x23..=0x2B).contains(&b)
                || (0x2D..=0x3A).contains(&b)
                || (0x3C..=0x5B).contains(&b)
                || (0x5D..=0x7E).contains(&b);
            assert_eq!(is_cookie_value(&[b]), rfc, "byte {b:#x}");
        }
    }

    #[test]
    fn cookie_octets() {
        assert!(is_cookie_value(b"abc+/=-_.!#"));
        for bad in [
            &b"a b"[..],
            b"a;b",
            b"a,b",
            b"a\"b",
            b"a\\b",
            b"a\x7f",
            b"\xc3\xa9",
        ] {
            assert!(!is_cookie_value(bad), "{bad:?}");
        }
    }
}
