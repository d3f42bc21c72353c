"""Public JWKs: strict validation, RFC 7638 thumbprints, and conversion to key objects.

Only the two signature key types the API accepts are modelled: Ed25519 (OKP) and
P-256 (EC). Anything else (RSA, other curves, private members) is refused here,
once, for every caller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from typing import Any, Literal

import msgspec
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import (
    crypto_core_ed25519_is_valid_point,
    crypto_scalarmult_ed25519_base_noclamp,
)
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

SigningAlg = Literal["EdDSA", "ES256"]

#: Members of a JWK that describe a public key; anything else is refused.
_ALLOWED = {"kty", "crv", "x", "y", "kid", "use", "alg", "key_ops"}
_PRIVATE = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


class JwkError(ValueError):
    """The JWK is not an acceptable public signing key; the message says why."""


_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: base64url to standard base64; "+", "/" and "=" become a character no decoder takes.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
#: The value of each base64url character, to see the unused low bits of the last one.
_VALUE = {c: i for i, c in enumerate(_B64URL_ALPHABET)}


def b64url_decode(value: str) -> bytes:
    """Strict: only the base64url alphabet, no padding, and the one canonical spelling
    (so one key has one thumbprint, and nothing odd reaches storage).

    Canonical means the bits of the last character that encode nothing are zero; checked
    on that character rather than by encoding the result again, and the alphabet by
    binascii's strict mode rather than a regex: every JWS is decoded here, and this is
    half the cost of the earlier way on a submission's payload."""
    if not isinstance(value, str) or not value:
        raise JwkError("key coordinates must be unpadded base64url strings")
    try:
        data = value.encode("ascii").translate(_TO_STANDARD)
    except UnicodeEncodeError:
        raise JwkError("key coordinates must be unpadded base64url strings") from None
    spare = len(data) % 4  # characters past the last whole group of four
    if spare == 1:
        raise JwkError("key coordinates must be unpadded base64url strings")
    if spare and _VALUE.get(value[-1], 0) & (0x0F if spare == 2 else 0x03):
        raise JwkError("key coordinates must be canonical base64url")
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4), strict_mode=True)
    except binascii.Error as exc:
        raise JwkError("key coordinates must be unpadded base64url strings") from exc


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def ed25519_verifier(key: ed25519.Ed25519PublicKey) -> Callable[[bytes, bytes], bool]:
    """``verify(message, signature)`` for an Ed25519 key, checked by libsodium (PyNaCl):
    half the CPU of OpenSSL's check through cryptography (55 us against 113 us here)."""
    sodium = VerifyKey(key.public_bytes(Encoding.Raw, PublicFormat.Raw))

    def verify(message: bytes, signature: bytes) -> bool:
        try:
            sodium.verify(message, signature)
        except (BadSignatureError, ValueError, TypeError):  # forged, or not 64 bytes
            return False
        return True

    return verify


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint over the required members, canonically serialised."""
    members = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


class PublicKey(msgspec.Struct, frozen=True):
    kid: str
    alg: SigningAlg
    kty: str
    jwk: dict[str, Any]
    key: Any  # ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


#: Private scalars anyone can guess: 1 to 16 and their negatives. A report signed with
#: such a key proves nothing about who made it (found by review: the curves' base points
#: registered).
_GUESSABLE = range(1, 17)
_ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493
_WEAK_ED25519 = frozenset(
    crypto_scalarmult_ed25519_base_noclamp(scalar.to_bytes(32, "little"))
    for k in _GUESSABLE
    for scalar in (k, _ED25519_ORDER - k)
)
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_WEAK_P256 = frozenset(
    ec.derive_private_key(scalar, ec.SECP256R1())
    .public_key()
    .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    for k in _GUESSABLE
    for scalar in (k, _P256_ORDER - k)
)


def parse_public_jwk(jwk: object) -> PublicKey:
    """Validate ``jwk`` and return its canonical public form and key object."""
    if not isinstance(jwk, dict):
        raise JwkError("the JWK must be a JSON object")
    if found := _PRIVATE & jwk.keys():
        raise JwkError(
            f"this is a private key (member {sorted(found)[0]!r}); register only the public key"
        )
    kty, crv = jwk.get("kty"), jwk.get("crv")
    # The key type first: an RSA key's members (n, e) are not what is wrong with it.
    if kty == "RSA":
        raise JwkError("RSA keys are not accepted; use Ed25519 (OKP) or P-256 (EC)")
    if kty not in ("OKP", "EC"):
        raise JwkError("kty must be 'OKP' (Ed25519) or 'EC' (P-256)")
    if unknown := set(jwk) - _ALLOWED:
        raise JwkError(f"unexpected JWK members: {', '.join(sorted(unknown))}")
    if kty == "OKP":
        if crv != "Ed25519":
            raise JwkError(f"OKP keys must use the Ed25519 curve, not {crv!r}")
        x = b64url_decode(jwk.get("x", ""))
        if len(x) != 32:
            raise JwkError("an Ed25519 public key is 32 bytes")
        # libsodium checks every signature (api.signatures) and refuses small-order and
        # non-canonical points outright: refuse such a key now rather than each report.
        if not crypto_core_ed25519_is_valid_point(x):
            raise JwkError("x is not a valid Ed25519 public key (small order or non-canonical)")
        if x in _WEAK_ED25519:
            raise JwkError("this public key's private key is publicly known; make a new key")
        key: Any = ed25519.Ed25519PublicKey.from_public_bytes(x)
        alg: SigningAlg = "EdDSA"
        canonical = {"kty": "OKP", "crv": "Ed25519", "x": jwk["x"]}
    else:  # EC
        if crv != "P-256":
            raise JwkError(f"EC keys must use the P-256 curve, not {crv!r}")
        x, y = b64url_decode(jwk.get("x", "")), b64url_decode(jwk.get("y", ""))
        if len(x) != 32 or len(y) != 32:
            raise JwkError("P-256 coordinates are 32 bytes each")
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise JwkError("the point is not on the P-256 curve") from exc
        if b"\x04" + x + y in _WEAK_P256:
            raise JwkError("this public key's private key is publicly known; make a new key")
        alg = "ES256"
        canonical = {"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]}
    if "alg" in jwk and jwk["alg"] != alg:
        raise JwkError(f"alg {jwk['alg']!r} does not match the key type (expected {alg})")
    if "use" in jwk and jwk["use"] != "sig":
        raise JwkError("use must be 'sig'")
    if "key_ops" in jwk:  # RFC 7517 4.3: an array of distinct operations, here "verify"
        ops = jwk["key_ops"]
        if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
            raise JwkError("key_ops must be an array of strings")
        if len(set(ops)) != len(ops):
            raise JwkError("key_ops must not repeat an operation")
        if "verify" not in ops:
            raise JwkError("key_ops must include 'verify': this key verifies signatures")
    kid = thumbprint(canonical)
    if "kid" in jwk and jwk["kid"] != kid:
        raise JwkError("kid, when given, must be the key's RFC 7638 thumbprint")
    return PublicKey(kid=kid, alg=alg, kty=canonical["kty"], jwk={**canonical, "kid": kid}, key=key)
