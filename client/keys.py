"""The district head's signing key: generation, loading, public JWK and key id.

The server identifies a registered key by its RFC 7638 thumbprint (``kid``), so
the client derives the same id from the same public JWK instead of asking for
one. New keys are Ed25519; an existing P-256 key (ES256) is also accepted, for
offices whose security policy mandates NIST curves.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from client.files import PathLike, ensure_home, resolve_home, write_private_file

PRIVATE_KEY_FILE = "signing-key.pem"
"""PKCS8 PEM file in the config folder; holds an Ed25519 or a P-256 private key."""

SigningKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey

_THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
}
"""RFC 7638 section 3.2 required members per key type, already in lexicographic order."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A loaded signing key with what the server needs to know about it.

    Attributes:
        private_key: The key that signs submissions.
        jwk: Public JWK to register with ``POST /v1/keys``.
        kid: RFC 7638 thumbprint of ``jwk``; the ``kid`` header of every JWS.
        path: File the private key lives in.
    """

    private_key: SigningKey
    jwk: dict[str, str]
    kid: str
    path: Path


def private_key_path(home: PathLike | None = None) -> Path:
    """Path of the private key file in the config folder (see ``files.resolve_home``)."""
    return resolve_home(home) / PRIVATE_KEY_FILE


def generate_keypair(home: PathLike | None = None, *, force: bool = False) -> KeyPair:
    """Generate an Ed25519 key and store it as an owner-only PKCS8 PEM file.

    Args:
        home: Config folder; defaults to ``$KINERJA_CLIENT_HOME`` or ``~/.config/kinerja``.
        force: Replace an existing key (atomically). The old key is lost, and the
            server must be given the new public key before the next submission.

    Returns:
        The new key pair.

    Raises:
        FileExistsError: A key exists and ``force`` is false; refusing protects a
            key the server already trusts.
    """
    path = ensure_home(home) / PRIVATE_KEY_FILE
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        write_private_file(path, pem, overwrite=force)
    except FileExistsError as exc:
        raise FileExistsError(
            errno.EEXIST, "a signing key already exists; pass force=True to replace it", str(path)
        ) from exc
    return _keypair(key, path)


def load_keypair(home: PathLike | None = None) -> KeyPair:
    """Load the key pair from the config folder.

    Raises:
        FileNotFoundError: No key has been generated yet.
        PermissionError: The key file is readable by other users.
        ValueError: The file holds no key, or one of an unsupported type.
    """
    path = private_key_path(home)
    return _keypair(load_private_key(path), path)


def load_private_key(path: PathLike) -> SigningKey:
    """Load an unencrypted PEM private key: Ed25519, or EC on P-256.

    Refuses a file other users can read, as ``ssh`` does: such a key may already
    be copied, and signing with it would vouch for reports it did not make.

    Raises:
        PermissionError: The file is group- or world-accessible (POSIX only).
        ValueError: Not a PEM private key, or an unsupported key type or curve.
    """
    path = Path(path)
    data = path.read_bytes()
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise PermissionError(
                f"{path} is accessible by other users (mode {mode:o}); run: chmod 600 {path}"
            )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's word for "encrypted, and no password given"
        raise ValueError(
            f"{path} is protected by a passphrase; the client signs unattended, so save the "
            "key without one (e.g. openssl pkey -in KEY -out KEY.pem) and keep it mode 600"
        ) from None
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise ValueError(f"{path}: unsupported key type; expected Ed25519 or EC P-256")


def public_jwk(key: SigningKey | PublicKey) -> dict[str, str]:
    """Public JWK of a key: OKP/Ed25519 (RFC 8037) or EC/P-256 (RFC 7518).

    Only the members the thumbprint covers are included, so the JWK the server
    stores and the ``kid`` the client sends are derived from the same data.
    """
    public = key.public_key() if isinstance(key, SigningKey) else key
    if isinstance(public, Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        numbers = public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
    raise ValueError("unsupported key type; expected Ed25519 or EC P-256")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint: SHA-256 over the canonical JSON of the required members.

    Canonical means the required members only, in lexicographic order, no
    whitespace, UTF-8; the digest is base64url without padding.

    Raises:
        ValueError: Unsupported ``kty`` (only OKP and EC) or a missing or
            non-string required member.
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError(f"unsupported JWK kty {kty!r}; expected one of OKP, EC")
    required: dict[str, str] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"JWK member {name!r} must be a non-empty string")
        required[name] = value
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def b64url(data: bytes) -> str:
    """Base64url without padding, as JOSE writes binary values."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _keypair(key: SigningKey, path: Path) -> KeyPair:
    """Bundle a private key with its public JWK and key id."""
    jwk = public_jwk(key)
    return KeyPair(private_key=key, jwk=jwk, kid=jwk_thumbprint(jwk), path=path)
