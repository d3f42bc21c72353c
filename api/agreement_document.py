"""The canonical document of an agreement version: the exact bytes both parties sign.

Definition (version 1):

- A JSON object encoded by msgspec with every object's keys sorted (``order="sorted"``),
  no insignificant whitespace, UTF-8.
- Members: ``schema`` (1), ``type`` (``"kinerja.perjanjian_kinerja"``), ``agreement_id``,
  ``lineage_id``, ``version``, ``year``, ``level``, ``first_party`` and ``second_party``
  (``area_code``, ``division_id``, ``official``, ``title``, ``acting``; absent values are
  ``null``), ``targets`` (a list sorted by ``indicator``; each with ``annual``,
  ``quarterly`` and ``weight``) and ``amendment`` (``of``, ``reason``, ``note``, or
  ``null``).
- Target values are decimal strings with two places (``"95.00"``), weights with six
  (``"0.333333"``), so no float formatting can change the bytes.

Its SHA-256 (lower-case hex) is ``document_sha256``; each party's signature is a compact
JWS over ``{"agreement_id", "document_sha256", "party", "iat"}``.
``GET /v1/agreements/{id}/document`` returns these bytes.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

DOCUMENT_TYPE = "kinerja.perjanjian_kinerja"
SCHEMA_VERSION = 1
SIGNATURE_TYP = "kinerja-agreement-signature+jwt"


def _fixed(value: Decimal | float | None, places: int) -> str | None:
    if value is None:
        return None
    return f"{Decimal(str(value)):.{places}f}"


def canonical_document(
    *,
    agreement_id: UUID,
    lineage_id: UUID,
    version: int,
    year: int,
    level: str,
    first_party: dict[str, Any],
    second_party: dict[str, Any],
    targets: list[dict[str, Any]],
    amendment: dict[str, Any] | None,
) -> bytes:
    """Serialise one agreement version deterministically (see the module docstring)."""
    document = {
        "schema": SCHEMA_VERSION,
        "type": DOCUMENT_TYPE,
        "agreement_id": str(agreement_id),
        "lineage_id": str(lineage_id),
        "version": version,
        "year": year,
        "level": level,
        "first_party": first_party,
        "second_party": second_party,
        "targets": [
            {
                "indicator": t["indicator"],
                "annual": _fixed(t["annual"], 2),
                "quarterly": None
                if t.get("quarterly") is None
                else [_fixed(q, 2) for q in t["quarterly"]],
                "weight": _fixed(t.get("weight"), 6),
            }
            for t in sorted(targets, key=lambda t: t["indicator"])
        ],
        "amendment": amendment,
    }
    return msgspec.json.encode(document, order="sorted")


def document_sha256(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()
