"""Build and sign a progress submission (laporan capaian) as a compact JWS.

The payload is checked here, before it is signed and queued, because a report
typed in an office with poor connectivity may sit in the outbox for days: a
mistake the server would reject is better caught while the person is still at
the keyboard. The server re-checks everything; this is a courtesy, not a guard.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client.keys import SigningKey

#: The largest stated figure the API takes (``api.schemas.submissions``).
STATED_PCT_MAX = 1_000_000
#: The largest count the API stores (a 64-bit integer), and the longest note it takes.
COUNT_MAX = 2**63 - 1
NOTE_MAX = 4000

SUBMISSION_TYP = "kinerja-submission+jwt"
"""JWS ``typ`` header, so a submission cannot be replayed as any other kind of token."""

CHANNELS = ("office", "kecamatan", "mobile", "school", "hospital", "other")
"""Service channels a count can be broken down by (``mobile`` is "jemput bola")."""

#: The server's bounds on ``as_of`` (``api.submissions``): scorecards start in 2000, and
#: no date is taken before it is today in WIT (UTC+9), Indonesia's easternmost time.
EARLIEST_AS_OF = date(2000, 1, 1)
EASTERNMOST = timedelta(hours=9)

PAYLOAD_KEYS = ("jti", "iat", "district", "division", "as_of", "values", "note", "supersedes")

_DISTRICT_CODE = re.compile(r"\d{2}\.\d{2}")
_INDICATOR_CODE = re.compile(r"[a-z][a-z0-9_]{0,62}")
_VALUE_KEYS = frozenset({"numerator", "denominator", "stated_pct", "channels"})

ValueInput = tuple[int, int] | Mapping[str, Any]
"""``(numerator, denominator)``, or a mapping shaped like a payload value."""


def build_payload(
    district: str,
    as_of: date,
    values: Mapping[str, ValueInput],
    *,
    note: str | None = None,
    channels: Mapping[str, Mapping[str, int]] | None = None,
    stated: Mapping[str, float | None] | None = None,
    supersedes: Mapping[str, Any] | tuple[str | uuid.UUID, str] | None = None,
    division: str | None = None,
    now: float | None = None,
    jti: str | None = None,
) -> dict[str, Any]:
    """Build a validated submission payload; every key is present, absent ones as ``None``.

    Args:
        district: Kemendagri district code, e.g. ``"16.71"``.
        as_of: Date the cumulative counts refer to (a ``date``, not a ``datetime``).
        values: Per indicator code (``ktp_el``, ``kia``, ``akta_lahir``, ...):
            ``(numerator, denominator)`` or a mapping with ``numerator``,
            ``denominator`` and optionally ``stated_pct`` and ``channels``.
            Codes are not checked against the catalogue (the server owns it).
        note: Free text, e.g. a broken recording device.
        channels: Per indicator code, counts per service channel (see
            ``CHANNELS``); channels not given are sent as 0.
        stated: Per indicator code, the percentage printed in the report. Kept
            for comparison only: the server computes coverage from the counts.
        supersedes: The earlier submission this one corrects, as
            ``{"id": ..., "reason": ...}`` or ``(id, reason)``.
        division: Division id when a division head reports for their division.
        now: Unix time for ``iat``; defaults to the clock.
        jti: The report's identity, a fresh UUID unless given: a report signed again
            keeps its own, so a server that already holds it answers "already received"
            rather than storing it twice.

    Returns:
        The payload dict, ready for ``sign_submission``.

    Raises:
        ValueError: With a message naming the offending field.
    """
    if not isinstance(district, str) or not _DISTRICT_CODE.fullmatch(district):
        raise ValueError(f"district must be a district code like '16.71', got {district!r}")
    if division is not None and (not isinstance(division, str) or not division.strip()):
        raise ValueError("division must be a non-empty string or None")
    if not isinstance(as_of, date) or isinstance(as_of, datetime):
        raise ValueError(f"as_of must be a date (not a datetime), got {as_of!r}")
    if as_of < EARLIEST_AS_OF:
        raise ValueError(f"as_of {as_of} is before {EARLIEST_AS_OF}: no scorecard covers it")
    latest = (datetime.now(UTC) + EASTERNMOST).date()
    if as_of > latest:
        raise ValueError(f"as_of {as_of} is after today ({latest} in eastern Indonesia)")
    if note is not None and not isinstance(note, str):
        raise ValueError("note must be a string or None")
    if note is not None and (len(note) > NOTE_MAX or "\x00" in note):
        raise ValueError(f"note must be at most {NOTE_MAX:,} characters, without NUL")
    if jti is not None:
        try:
            jti = str(uuid.UUID(jti))
        except (ValueError, TypeError, AttributeError):
            raise ValueError(f"jti must be a UUID, got {jti!r}") from None
    payload_values = _values(values, channels or {}, stated or {})
    return {
        "jti": jti or str(uuid.uuid4()),
        "iat": int(time.time() if now is None else now),
        "district": district,
        "division": division,
        "as_of": as_of.isoformat(),
        "values": payload_values,
        "note": note if note and note.strip() else None,
        "supersedes": _supersedes(supersedes),
    }


def sign_submission(payload: Mapping[str, Any], private_key: SigningKey, kid: str) -> str:
    """Sign a payload as a compact JWS with the submitter's registered key.

    Args:
        payload: As built by ``build_payload``.
        private_key: Ed25519 (signs ``EdDSA``) or P-256 (signs ``ES256``).
        kid: Thumbprint of the registered public key, so the server can find it.

    Returns:
        The compact JWS, the body of ``POST /v1/submissions``.

    Raises:
        ValueError: Missing payload keys, an empty ``kid`` or an unsupported key.
    """
    missing = [name for name in PAYLOAD_KEYS if name not in payload]
    if missing:
        raise ValueError(f"payload lacks {', '.join(missing)}; build it with build_payload")
    if not isinstance(kid, str) or not kid:
        raise ValueError("kid must be a non-empty string")
    return jwt.encode(
        dict(payload),
        private_key,
        algorithm=algorithm_for(private_key),
        headers={"kid": kid, "typ": SUBMISSION_TYP},
    )


def algorithm_for(private_key: SigningKey) -> str:
    """JWS algorithm for a key; pinned per key type so no key signs under two algorithms."""
    if isinstance(private_key, Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        private_key.curve, ec.SECP256R1
    ):
        return "ES256"
    raise ValueError("unsupported key type; expected Ed25519 or EC P-256")


def _values(
    values: Mapping[str, ValueInput],
    channels: Mapping[str, Mapping[str, int]],
    stated: Mapping[str, float | None],
) -> dict[str, dict[str, Any]]:
    """Normalise the per-indicator values, merging the ``channels`` and ``stated`` extras."""
    if not isinstance(values, Mapping) or not values:
        raise ValueError("values must be a non-empty mapping of indicator code to counts")
    for extra_name, extra in (("channels", channels), ("stated", stated)):
        unknown = sorted(set(extra) - set(values))
        if unknown:
            raise ValueError(f"{extra_name} given for {', '.join(unknown)}, which has no values")
    result: dict[str, dict[str, Any]] = {}
    for code, raw in values.items():
        if not isinstance(code, str) or not _INDICATOR_CODE.fullmatch(code):
            raise ValueError(f"indicator code must be like 'ktp_el', got {code!r}")
        item = _value(code, raw)
        for name, extra, key in (
            ("channels", channels, "channels"),
            ("stated", stated, "stated_pct"),
        ):
            if code in extra:
                if item.get(key) is not None:
                    raise ValueError(f"{code}: {name} given twice (in values and in {name})")
                item[key] = extra[code]
        result[code] = {
            "numerator": item["numerator"],
            "denominator": item["denominator"],
            "stated_pct": _percent(code, item.get("stated_pct")),
            "channels": _channels(code, item.get("channels")),
        }
    return result


def _value(code: str, raw: ValueInput) -> dict[str, Any]:
    """One indicator's value as a dict with checked counts."""
    if isinstance(raw, tuple | list):
        if len(raw) != 2:
            raise ValueError(f"{code}: expected (numerator, denominator), got {raw!r}")
        item: dict[str, Any] = {"numerator": raw[0], "denominator": raw[1]}
    elif isinstance(raw, Mapping):
        unknown = sorted(set(raw) - _VALUE_KEYS)
        if unknown:
            raise ValueError(f"{code}: unknown value fields {', '.join(map(str, unknown))}")
        if "numerator" not in raw or "denominator" not in raw:
            raise ValueError(f"{code}: numerator and denominator are required")
        item = dict(raw)
    else:
        raise ValueError(f"{code}: expected (numerator, denominator) or a mapping, got {raw!r}")
    for field in ("numerator", "denominator"):
        _count(f"{code}.{field}", item[field])
    if item["denominator"] == 0:
        raise ValueError(f"{code}.denominator must be positive: coverage is counted out of it")
    return item


def _count(where: str, value: object) -> int:
    """Check a count is a non-negative int (``bool`` is not a count) the server can store
    (a 64-bit integer)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{where} must be a non-negative integer, got {value!r}")
    if value > COUNT_MAX:
        raise ValueError(f"{where} must be at most {COUNT_MAX:,}, got {value:,}")
    return value


def _percent(code: str, value: object) -> float | None:
    """Check a stated percentage: a number from 0 to 1000 (above 100 is real), or None;
    the API refuses anything else."""
    if value is None:
        return None
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0 <= value <= STATED_PCT_MAX
    ):
        raise ValueError(
            f"{code}.stated_pct must be a number from 0 to {STATED_PCT_MAX}, got {value!r}"
        )
    return float(value)


def _channels(code: str, value: object) -> dict[str, int] | None:
    """Check a channel breakdown and fill the channels not given with 0."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{code}.channels must be a mapping of channel to count")
    unknown = sorted(set(value) - set(CHANNELS), key=str)
    if unknown:
        raise ValueError(
            f"{code}.channels: unknown channel {', '.join(map(str, unknown))}; "
            f"known: {', '.join(CHANNELS)}"
        )
    return {name: _count(f"{code}.channels.{name}", value.get(name, 0)) for name in CHANNELS}


def _supersedes(
    value: Mapping[str, Any] | tuple[str | uuid.UUID, str] | None,
) -> dict[str, str] | None:
    """Normalise the reference to a corrected submission: a UUID and a non-empty reason."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"id", "reason"}, key=str)
        if unknown:
            raise ValueError(f"supersedes: unknown fields {', '.join(map(str, unknown))}")
        target, reason = value.get("id"), value.get("reason")
    elif isinstance(value, tuple) and len(value) == 2:
        target, reason = value
    else:
        raise ValueError("supersedes must be {'id': ..., 'reason': ...} or (id, reason)")
    try:
        target_id = target if isinstance(target, uuid.UUID) else uuid.UUID(str(target))
    except ValueError:
        raise ValueError(f"supersedes.id must be a UUID, got {target!r}") from None
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("supersedes.reason must be a non-empty string")
    return {"id": str(target_id), "reason": reason}
