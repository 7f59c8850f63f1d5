#!/usr/bin/env python3
"""Known-answer vectors for the encrypted session-cookie format "v1".

Independent of the Rust implementation: Python 3 standard library plus the
`cryptography` package (written against version 48). `cryptography` has the
IETF ChaCha20-Poly1305 (RFC 8439) but no XChaCha20, so HChaCha20 is
implemented here and checked against draft-irtf-cfrg-xchacha-03.

Format v1:
  subkey = HKDF-SHA-256(salt = empty, ikm = secret,
                        info = "session-cookie v1 cookie encryption XChaCha20-Poly1305",
                        length = 32)
  aad    = "session-cookie v1" || 0x00 || cookie name
  sealed = XChaCha20-Poly1305(subkey of keys[0], 24-byte nonce, plaintext, aad)
  value  = "v1." || base64url-without-padding(nonce || ciphertext || tag)

Running `python3 encrypted_vectors.py` checks everything and writes
`encrypted-vectors.json` next to this file.
"""

import base64
import hashlib
import hmac
import json
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = "v1"
HKDF_INFO = b"session-cookie v1 cookie encryption XChaCha20-Poly1305"
AAD_PREFIX = b"session-cookie v1\x00"
PREFIX = "v1."
NONCE_LEN = 24
TAG_LEN = 16
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


# ---------------------------------------------------------------- HChaCha20

def _rotl32(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _quarter_round(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF
    s[d] = _rotl32(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF
    s[b] = _rotl32(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF
    s[d] = _rotl32(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF
    s[b] = _rotl32(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    assert len(key) == 32 and len(nonce16) == 16
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key))
    s += list(struct.unpack("<4I", nonce16))
    for _ in range(10):  # 20 rounds = 10 double rounds
        _quarter_round(s, 0, 4, 8, 12)
        _quarter_round(s, 1, 5, 9, 13)
        _quarter_round(s, 2, 6, 10, 14)
        _quarter_round(s, 3, 7, 11, 15)
        _quarter_round(s, 0, 5, 10, 15)
        _quarter_round(s, 1, 6, 11, 12)
        _quarter_round(s, 2, 7, 8, 13)
        _quarter_round(s, 3, 4, 9, 14)
    # No feed-forward of the input state.
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


# ---------------------------------------------------- XChaCha20-Poly1305

def _xchacha_parts(key, nonce24):
    assert len(nonce24) == NONCE_LEN
    return ChaCha20Poly1305(hchacha20(key, nonce24[:16])), b"\x00" * 4 + nonce24[16:]


def xchacha20poly1305_seal(key, nonce24, plaintext, aad):
    aead, nonce12 = _xchacha_parts(key, nonce24)
    return aead.encrypt(nonce12, plaintext, aad)  # ciphertext || tag


def xchacha20poly1305_open(key, nonce24, sealed, aad):
    aead, nonce12 = _xchacha_parts(key, nonce24)
    return aead.decrypt(nonce12, sealed, aad)  # raises InvalidTag


# ------------------------------------------------ draft self-checks (always)

H = bytes.fromhex

# draft-irtf-cfrg-xchacha-03, section 2.2.1 (HChaCha20).
HCHACHA_KEY = bytes(range(0x00, 0x20))
HCHACHA_NONCE = H("000000090000004a0000000031415927")
HCHACHA_OUT = H("82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")
assert hchacha20(HCHACHA_KEY, HCHACHA_NONCE) == HCHACHA_OUT, "HChaCha20 draft 2.2.1"

# draft-irtf-cfrg-xchacha-03, appendix A.3.1 (XChaCha20-Poly1305), checked in full.
A31_PT = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one "
          b"tip for the future, sunscreen would be it.")
A31_AAD = H("50515253c0c1c2c3c4c5c6c7")
A31_KEY = bytes(range(0x80, 0xA0))
A31_IV = bytes(range(0x40, 0x58))
A31_CT = H(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
    "21f9664c97637da9768812f615c68b13b52e"
)
A31_TAG = H("c0875924c1c7987947deafd8780acf49")
assert len(A31_CT) == len(A31_PT)
_a31 = xchacha20poly1305_seal(A31_KEY, A31_IV, A31_PT, A31_AAD)
assert _a31[:-TAG_LEN] == A31_CT, "XChaCha20-Poly1305 draft A.3.1 ciphertext"
assert _a31[-TAG_LEN:] == A31_TAG, "XChaCha20-Poly1305 draft A.3.1 tag"
assert xchacha20poly1305_open(A31_KEY, A31_IV, _a31, A31_AAD) == A31_PT


# --------------------------------------------------------------------- HKDF

def _hkdf_stdlib(ikm, salt, info, length):
    """RFC 5869 with hmac/hashlib, to cross-check `cryptography`'s HKDF."""
    prk = hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    return okm[:length]


# RFC 5869 test case 3 (SHA-256, zero-length salt and info).
assert _hkdf_stdlib(b"\x0b" * 22, b"", b"", 42) == H(
    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
assert HKDF(hashes.SHA256(), 42, b"", b"").derive(b"\x0b" * 22) == _hkdf_stdlib(
    b"\x0b" * 22, b"", b"", 42)


def subkey(secret):
    assert len(secret) >= 32
    a = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=HKDF_INFO).derive(secret)
    b = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret)
    c = _hkdf_stdlib(secret, b"", HKDF_INFO, 32)
    assert a == b == c
    return a


# ------------------------------------------------------------ cookie format

def aad_for(cookie_name):
    return AAD_PREFIX + cookie_name.encode("ascii")


def b64url_nopad(data):
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def seal(secret, cookie_name, nonce, plaintext):
    sealed = xchacha20poly1305_seal(subkey(secret), nonce, plaintext, aad_for(cookie_name))
    return PREFIX + b64url_nopad(nonce + sealed)


def strict_b64url_decode(text):
    """Unpadded base64url; rejects padding, other alphabets, impossible
    lengths and non-zero trailing bits. Returns None on any violation."""
    if any(ch not in B64URL for ch in text) or len(text) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_nopad(data) != text:  # non-canonical trailing bits
        return None
    return data


def open_value(keys, cookie_name, value):
    """Plaintext, or None if the value does not open under any key."""
    if not value.startswith(PREFIX):
        return None
    raw = strict_b64url_decode(value[len(PREFIX):])
    if raw is None or len(raw) < NONCE_LEN + TAG_LEN:
        return None
    nonce, sealed = raw[:NONCE_LEN], raw[NONCE_LEN:]
    for secret in keys:
        try:
            return xchacha20poly1305_open(subkey(secret), nonce, sealed, aad_for(cookie_name))
        except InvalidTag:
            continue
    return None


# ------------------------------------------------------------------ vectors

K1 = b"encrypted cookie test key number 1"
K2 = b"encrypted cookie test key number 2"
K3 = bytes(range(0x00, 0x20))

TAIL = ',"_expire":1700086400000,"_maxAge":86400000}'

VECTOR_SPECS = [
    ("counter", [K1], 0, "koa.sess", bytes(range(0x00, 0x18)),
     '{"views":1' + TAIL),
    ("browser-session", [K1], 0, "koa.sess", b"\xff" * 24,
     '{"user":"ada","_session":true}'),
    ("empty-object", [K1], 0, "koa.sess", b"\x00" * 24,
     '{"_expire":1700086400000,"_maxAge":86400000}'),
    ("unicode-and-nesting", [K1], 0, "__Host-sid", bytes(range(0x10, 0x28)),
     '{"name":"Zo\u00eb \u2713 \U0001F600","cart":[1,2.5,{"sku":"a\\"b"}],'
     '"flags":{"admin":false,"note":null}' + TAIL),
    ("rotated-older", [K2, K1], 1, "koa.sess", bytes(range(0x30, 0x48)),
     '{"views":7' + TAIL),
    ("binary-key", [K3], 0, "sess", bytes(range(0xA0, 0xB8)),
     '{"a":1' + TAIL),
    ("long", [K1], 0, "koa.sess", bytes(range(0x40, 0x58)),
     '{"blob":"' + "x" * 600 + '"' + TAIL),
]


def build():
    vectors = []
    for name, keys, sealed_with, cookie_name, nonce, plaintext in VECTOR_SPECS:
        assert len(nonce) == NONCE_LEN
        json.loads(plaintext)  # every plaintext is valid JSON
        pt = plaintext.encode("utf-8")
        value = seal(keys[sealed_with], cookie_name, nonce, pt)
        # Opens under its own list, and the decoded payload has the right shape.
        assert open_value(keys, cookie_name, value) == pt, name
        raw = strict_b64url_decode(value[len(PREFIX):])
        assert raw[:NONCE_LEN] == nonce and len(raw) == NONCE_LEN + len(pt) + TAG_LEN
        # Direct check with cryptography's ChaCha20Poly1305 under the sealing key.
        otk = hchacha20(subkey(keys[sealed_with]), nonce[:16])
        assert ChaCha20Poly1305(otk).decrypt(
            b"\x00" * 4 + nonce[16:], raw[NONCE_LEN:], aad_for(cookie_name)) == pt
        vectors.append({
            "name": name,
            "keys_hex": [k.hex() for k in keys],
            "sealed_with": sealed_with,
            "cookie_name": cookie_name,
            "nonce_hex": nonce.hex(),
            "plaintext": plaintext,
            "value": value,
        })
    by_name = {v["name"]: v for v in vectors}

    v1 = by_name["counter"]["value"]
    v5 = by_name["rotated-older"]["value"]
    payload1 = v1[len(PREFIX):]

    # Last character swapped for another canonical one: same decoded length,
    # different final (tag) byte.
    raw1 = strict_b64url_decode(payload1)
    tampered = None
    for ch in B64URL:
        cand = payload1[:-1] + ch
        if ch == payload1[-1]:
            continue
        dec = strict_b64url_decode(cand)
        if dec is not None and len(dec) == len(raw1) and dec[-TAG_LEN:] != raw1[-TAG_LEN:]:
            tampered = PREFIX + cand
            break
    assert tampered is not None

    k1 = [K1.hex()]
    rejects = [
        {"name": "wrong-cookie-name", "keys_hex": k1, "cookie_name": "other", "value": v1,
         "why": "the cookie name is in the associated data; vector 1 was sealed for koa.sess"},
        {"name": "tampered-tag", "keys_hex": k1, "cookie_name": "koa.sess", "value": tampered,
         "why": "last base64url character changed: same decoded length, last tag byte differs"},
        {"name": "wrong-version-prefix", "keys_hex": k1, "cookie_name": "koa.sess",
         "value": "v2." + payload1, "why": "only the v1. prefix is accepted"},
        {"name": "truncated", "keys_hex": k1, "cookie_name": "koa.sess", "value": v1[:-4],
         "why": "last 4 characters (3 bytes of the tag) removed"},
        {"name": "newer-key-only", "keys_hex": [K2.hex()], "cookie_name": "koa.sess", "value": v5,
         "why": "vector 5 was sealed under K1's subkey; K1 is no longer in the list"},
        {"name": "padded", "keys_hex": k1, "cookie_name": "koa.sess",
         "value": v1 + "=" * (-len(payload1) % 4),
         "why": "base64url must be unpadded; '=' padding appended"},
    ]
    assert -len(payload1) % 4 != 0  # the padding reject really appends '='
    if "-" in payload1 or "_" in payload1:
        rejects.append({
            "name": "standard-alphabet", "keys_hex": k1, "cookie_name": "koa.sess",
            "value": PREFIX + payload1.replace("-", "+").replace("_", "/"),
            "why": "payload re-encoded with the standard base64 alphabet (+ and /) instead of base64url"})
    for r in rejects:
        keys = [bytes.fromhex(k) for k in r["keys_hex"]]
        assert open_value(keys, r["cookie_name"], r["value"]) is None, r["name"]

    secrets = []
    for _, keys, _, _, _, _ in VECTOR_SPECS:
        for k in keys:
            if k not in secrets:
                secrets.append(k)
    subkeys = [{"secret_hex": k.hex(), "subkey_hex": subkey(k).hex()} for k in secrets]

    return {
        "format": FORMAT,
        "hkdf_info": HKDF_INFO.decode("ascii"),
        "aad_prefix_hex": AAD_PREFIX.hex(),
        "hchacha20_check": {
            "source": "draft-irtf-cfrg-xchacha-03 section 2.2.1",
            "key_hex": HCHACHA_KEY.hex(),
            "nonce_hex": HCHACHA_NONCE.hex(),
            "output_hex": HCHACHA_OUT.hex(),
        },
        "vectors": vectors,
        "rejects": rejects,
        "subkeys": subkeys,
    }


def main():
    doc = build()
    text = json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert json.loads(text) == doc
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "encrypted-vectors.json")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(out)


if __name__ == "__main__":
    main()
