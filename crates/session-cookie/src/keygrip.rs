//! keygrip: an ordered key list (newest first) that signs with the newest key and verifies with
//! any, reporting which one matched so the caller can re-sign.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use session_core::driver::{Secret, validate_keys};
use session_core::{Algorithm, ConfigError};
use subtle::ConstantTimeEq;

/// Longest MAC (SHA-512) in bytes.
const MAX_MAC: usize = 64;
/// Longest encoded signature (SHA-512, base64url without padding).
pub const MAX_SIGNATURE_LEN: usize = 86;

/// A key whose HMAC inner and outer pads are computed once, at construction: signing clones
/// this state instead of re-hashing the key every time.
#[derive(Clone)]
enum MacKey {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha512(Hmac<sha2::Sha512>),
}

impl MacKey {
    fn new(alg: Algorithm, key: &[u8]) -> Self {
        // HMAC accepts keys of any length; `new_from_slice` can't fail for it.
        match alg {
            Algorithm::Sha1 => Self::Sha1(
                <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes any key length")),
            ),
            Algorithm::Sha256 => Self::Sha256(
                <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes any key length")),
            ),
            Algorithm::Sha512 => Self::Sha512(
                <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes any key length")),
            ),
        }
    }

    /// This key with `prefix` already absorbed: MACs then continue from there.
    fn absorbed(&self, prefix: &[u8]) -> Self {
        let mut k = self.clone();
        match &mut k {
            Self::Sha1(m) => m.update(prefix),
            Self::Sha256(m) => m.update(prefix),
            Self::Sha512(m) => m.update(prefix),
        }
        k
    }

    /// HMAC of the concatenation of `parts`, into `out`; returns the MAC length.
    fn mac(&self, parts: &[&[u8]], out: &mut [u8; MAX_MAC]) -> usize {
        fn run<M: Mac + Clone>(m: &M, parts: &[&[u8]], out: &mut [u8; MAX_MAC]) -> usize {
            let mut m = m.clone();
            for p in parts {
                m.update(p);
            }
            let tag = m.finalize().into_bytes();
            out[..tag.len()].copy_from_slice(&tag);
            tag.len()
        }
        match self {
            Self::Sha1(m) => run(m, parts, out),
            Self::Sha256(m) => run(m, parts, out),
            Self::Sha512(m) => run(m, parts, out),
        }
    }
}

/// A signature: base64url without padding, as keygrip writes it. Lives on the stack.
#[derive(Clone, Copy)]
pub struct Signature {
    buf: [u8; MAX_SIGNATURE_LEN],
    len: usize,
}

impl Signature {
    /// Wraps a signature that was just verified (so it is our canonical encoding).
    pub(crate) fn verified(text: &str) -> Option<Signature> {
        let bytes = text.as_bytes();
        if bytes.len() > MAX_SIGNATURE_LEN {
            return None;
        }
        let mut sig = Signature {
            buf: [0u8; MAX_SIGNATURE_LEN],
            len: bytes.len(),
        };
        sig.buf[..bytes.len()].copy_from_slice(bytes);
        Some(sig)
    }

    /// The signature text.
    pub fn as_str(&self) -> &str {
        // The buffer only ever holds base64url output, which is ASCII.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Constant time, so comparing signatures this way can't leak them.
impl PartialEq for Signature {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.as_str().as_bytes(), other.as_str().as_bytes())
    }
}

impl Eq for Signature {}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(<redacted>)")
    }
}

/// Which key verified a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch {
    /// The newest key (`keys[0]`): nothing to do.
    Newest,
    /// An older key at this index: the caller should re-sign with the newest.
    Older(usize),
}

impl KeyMatch {
    /// The index of the matching key (keygrip's `index()`).
    pub fn index(self) -> usize {
        match self {
            Self::Newest => 0,
            Self::Older(i) => i,
        }
    }
}

/// keygrip for Rust: sign with `keys[0]`, verify with every key in constant time.
///
/// ```
/// use session_cookie::Keygrip;
/// use session_core::Algorithm;
/// use session_core::driver::Secret;
/// let old = Keygrip::new(&[Secret::new([1u8; 32])], Algorithm::Sha256).unwrap();
/// let sig = old.sign(b"koa.sess=abc");
/// let rotated = Keygrip::new(&[Secret::new([2u8; 32]), Secret::new([1u8; 32])], Algorithm::Sha256).unwrap();
/// assert_eq!(rotated.verify(b"koa.sess=abc", sig.as_str()).map(|m| m.index()), Some(1));
/// ```
#[derive(Clone)]
pub struct Keygrip {
    keys: Vec<MacKey>,
    algorithm: Algorithm,
    sig_len: usize,
}

impl fmt::Debug for Keygrip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keygrip")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl Keygrip {
    /// A key list with the strict key rules (≥ 32 bytes, no placeholders, no repeats, ≤ 4 keys).
    pub fn new(keys: &[Secret], algorithm: Algorithm) -> Result<Self, ConfigError> {
        validate_keys(keys, false)?;
        Ok(Self::build(keys, algorithm))
    }

    /// A key list that also accepts the short keys a Koa app already uses (logged as a warning).
    pub fn new_legacy(keys: &[Secret], algorithm: Algorithm) -> Result<Self, ConfigError> {
        validate_keys(keys, true)?;
        Ok(Self::build(keys, algorithm))
    }

    fn build(keys: &[Secret], algorithm: Algorithm) -> Self {
        let sig_len = match algorithm {
            Algorithm::Sha1 => 27,
            Algorithm::Sha256 => 43,
            Algorithm::Sha512 => 86,
        };
        Self {
            keys: keys
                .iter()
                .map(|k| MacKey::new(algorithm, k.expose()))
                .collect(),
            algorithm,
            sig_len,
        }
    }

    /// A key list that signs and verifies `prefix ‖ data` given only `data`: the prefix is
    /// hashed once, here, instead of on every cookie (the session cookie's `NAME=` is fixed).
    pub fn with_prefix(&self, prefix: &[u8]) -> Keygrip {
        Keygrip {
            keys: self.keys.iter().map(|k| k.absorbed(prefix)).collect(),
            algorithm: self.algorithm,
            sig_len: self.sig_len,
        }
    }

    /// The hash in use.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Length of every signature this key list makes.
    pub fn signature_len(&self) -> usize {
        self.sig_len
    }

    /// Signs `data` with the newest key.
    pub fn sign(&self, data: &[u8]) -> Signature {
        self.sign_parts(&[data])
    }

    /// Signs the concatenation of `parts` (e.g. `name`, `=`, `value`) without joining them.
    pub fn sign_parts(&self, parts: &[&[u8]]) -> Signature {
        let mut mac = [0u8; MAX_MAC];
        // `build` rejects an empty key list, so keys[0] exists.
        let n = self.keys[0].mac(parts, &mut mac);
        let mut sig = Signature {
            buf: [0u8; MAX_SIGNATURE_LEN],
            len: 0,
        };
        sig.len = encode_b64url(&mac[..n], &mut sig.buf);
        sig
    }

    /// Which key, if any, signed `data` with `signature`.
    pub fn verify(&self, data: &[u8], signature: &str) -> Option<KeyMatch> {
        self.verify_parts(&[data], signature)
    }

    /// [`Keygrip::verify`] over the concatenation of `parts`.
    ///
    /// Only the exact canonical form verifies: base64url without padding, of exactly the MAC's
    /// length; anything else is rejected before any HMAC work. The MAC comparison is constant
    /// time.
    pub fn verify_parts(&self, parts: &[&[u8]], signature: &str) -> Option<KeyMatch> {
        self.verify_any(parts, &[signature.as_bytes()])
            .map(|(m, _)| m)
    }

    /// Checks `parts` against several candidate signatures at once (the `.sig` cookies of one
    /// request): one HMAC per key, whatever the number of candidates, each compared in
    /// constant time. Returns the key that matched and the index of the first signature that
    /// verifies with it (newest key first).
    pub fn verify_any(&self, parts: &[&[u8]], signatures: &[&[u8]]) -> Option<(KeyMatch, usize)> {
        // Wrong lengths are rejected before any HMAC work; anything else that is not our exact
        // encoding fails the comparison.
        if !signatures.iter().any(|s| s.len() == self.sig_len) {
            return None;
        }
        let mut mac = [0u8; MAX_MAC];
        let mut ours = [0u8; MAX_SIGNATURE_LEN];
        for (i, key) in self.keys.iter().enumerate() {
            let m = key.mac(parts, &mut mac);
            // Compared in encoded form: our encoding is canonical, so only the exact canonical
            // signature (no padding, no other alphabet, zero trailing bits) can be equal.
            let len = encode_b64url(&mac[..m], &mut ours);
            if let Some(at) = signatures.iter().position(|s| ct_eq(&ours[..len], s)) {
                let m = if i == 0 {
                    KeyMatch::Newest
                } else {
                    KeyMatch::Older(i)
                };
                return Some((m, at));
            }
        }
        None
    }
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding of a MAC (at most 64 bytes) into `out`; returns the length.
///
/// The `base64` crate does this too, but its general engine costs about as much again as the
/// rest of a sign+verify for 32-byte inputs; a table loop over fixed-size MACs keeps the
/// overhead over the bare HMAC work small (see the repository's BENCHMARKS.md). Equality with the crate's output
/// is tested.
fn encode_b64url(input: &[u8], out: &mut [u8; MAX_SIGNATURE_LEN]) -> usize {
    let full = input.len() / 3;
    // Zipped chunks let the compiler drop the bounds checks of the hot loop.
    for (c, o) in input.chunks_exact(3).zip(out.chunks_exact_mut(4)) {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        o[0] = B64URL[(n >> 18) as usize & 63];
        o[1] = B64URL[(n >> 12) as usize & 63];
        o[2] = B64URL[(n >> 6) as usize & 63];
        o[3] = B64URL[n as usize & 63];
    }
    let mut o = full * 4;
    match input[full * 3..] {
        [a] => {
            out[o] = B64URL[usize::from(a >> 2)];
            out[o + 1] = B64URL[usize::from((a & 3) << 4)];
            o += 2;
        }
        [a, b] => {
            out[o] = B64URL[usize::from(a >> 2)];
            out[o + 1] = B64URL[usize::from(((a & 3) << 4) | (b >> 4))];
            out[o + 2] = B64URL[usize::from((b & 15) << 2)];
            o += 3;
        }
        _ => {}
    }
    o
}

/// Constant-time equality of two equally long MACs: the bytes are folded into one word with
/// XOR/OR (no data-dependent branch), and only that word goes through `subtle`. Comparing byte
/// by byte with `subtle` costs an optimisation barrier per byte (measurable next to the HMAC).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut acc = 0u64;
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let mut wx = [0u8; 8];
        let mut wy = [0u8; 8];
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        acc |= u64::from_ne_bytes(wx) ^ u64::from_ne_bytes(wy);
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        acc |= u64::from(x ^ y);
    }
    bool::from(acc.ct_eq(&0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn grip(keys: &[&str], alg: Algorithm) -> Keygrip {
        let keys: Vec<Secret> = keys.iter().map(|k| Secret::new(k.as_bytes())).collect();
        Keygrip::new_legacy(&keys, alg).unwrap()
    }

    #[test]
    fn rfc4231_case_2_via_signature() {
        // Key "Jefe", data "what do ya want for nothing?" (RFC 4231 test case 2, SHA-256).
        let g = grip(&["Jefe"], Algorithm::Sha256);
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let mac = hex_decode(expected);
        assert_eq!(
            g.sign(b"what do ya want for nothing?").as_str(),
            URL_SAFE_NO_PAD.encode(mac)
        );
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn strict_constructor_rejects_weak_keys() {
        assert!(Keygrip::new(&[Secret::new("k1")], Algorithm::Sha256).is_err());
        assert!(Keygrip::new(&[], Algorithm::Sha256).is_err());
        assert!(Keygrip::new(&[Secret::new([0u8; 32])], Algorithm::Sha256).is_ok());
    }

    #[test]
    fn non_canonical_signatures_are_rejected() {
        let g = grip(&["k1"], Algorithm::Sha256);
        let data = b"foo=bar";
        let sig = g.sign(data);
        let s = sig.as_str();
        assert!(g.verify(data, s).is_some());
        let std_alphabet = s.replace('-', "+").replace('_', "/");
        for bad in [
            format!("{s}x"),
            format!("x{s}"),
            s[..s.len() - 1].to_owned(),
            format!("{s}="),
            String::new(),
            std_alphabet,
        ] {
            if bad != s {
                assert!(g.verify(data, &bad).is_none(), "accepted {bad:?}");
            }
        }
        // Same length, last char with non-zero trailing bits.
        let mut noncanon = s.as_bytes().to_vec();
        let last = noncanon.len() - 1;
        noncanon[last] = if noncanon[last] == b'A' { b'B' } else { b'A' };
        let noncanon = String::from_utf8(noncanon).unwrap();
        assert!(g.verify(data, &noncanon).is_none());
    }

    #[test]
    fn table_encoder_matches_the_base64_crate() {
        let mut out = [0u8; MAX_SIGNATURE_LEN];
        let mut x: u32 = 12345;
        for len in 0..=64 {
            for _ in 0..50 {
                let input: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                let n = encode_b64url(&input, &mut out);
                assert_eq!(&out[..n], URL_SAFE_NO_PAD.encode(&input).as_bytes());
            }
        }
    }

    #[test]
    fn prefixed_keys_sign_the_concatenation() {
        let g = grip(&["k1", "k2"], Algorithm::Sha256);
        let p = g.with_prefix(b"koa.sess=");
        assert_eq!(p.sign(b"abc").as_str(), g.sign(b"koa.sess=abc").as_str());
        let old = grip(&["k2"], Algorithm::Sha256).sign(b"koa.sess=abc");
        assert_eq!(p.verify(b"abc", old.as_str()), Some(KeyMatch::Older(1)));
        assert_eq!(p.verify(b"abd", old.as_str()), None);
    }

    #[test]
    fn ct_eq_compares_every_byte() {
        let a = [7u8; 43];
        assert!(ct_eq(&a, &a));
        for i in 0..a.len() {
            let mut b = a;
            b[i] ^= 1;
            assert!(!ct_eq(&a, &b), "byte {i}");
        }
        assert!(!ct_eq(&a, &a[..42]));
        assert!(ct_eq(&[], &[]));
    }

    #[test]
    fn debug_hides_keys() {
        let g = grip(&["supersecretkey"], Algorithm::Sha1);
        assert!(!format!("{g:?}").contains("supersecret"));
        assert!(!format!("{:?}", g.sign(b"x")).contains(g.sign(b"x").as_str()));
    }
}
