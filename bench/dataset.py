"""A national dataset for the benchmarks: every province and district, agreements,
regions, and monthly signed submissions over as many years as asked.

History is written with COPY for speed, but in exactly the shapes the API writes:
real Ed25519 JWS, the same payload, the same hash chain (``api.ledger.entry_hash``),
the same ``submission_values`` rows the scorecards read.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from api.agreement_document import canonical_document, document_sha256
from api.auth.passwords import hash_password
from api.jwk import b64url_encode, thumbprint
from api.ledger import entry_hash
from api.submission_rules import SUBMISSION_TYP
from db.ledger import GENESIS_HASH

INDICATORS = ("ktp_el", "kia", "akta_lahir")
SHARES = {"ktp_el": 0.736, "kia": 0.28, "akta_lahir": 0.31}
TARGETS = {"ktp_el": 100.0, "kia": 30.0, "akta_lahir": 95.0}


@dataclass
class Head:
    user_id: uuid.UUID
    district: str
    key: ed25519.Ed25519PrivateKey
    kid: str
    seq: int = 0
    hash: str = GENESIS_HASH
    denominators: dict[str, int] = field(default_factory=dict)
    start: dict[str, float] = field(default_factory=dict)


@dataclass
class Dataset:
    year: int
    heads: dict[str, Head]
    admin_id: uuid.UUID
    ministry_id: uuid.UUID
    provinces: list[str]
    submissions: int = 0


def month_end(year: int, month: int) -> date:
    return (date(year, month, 28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


async def _users(conn: asyncpg.Connection, rows: list[tuple[str, str, str]], pw: str) -> list[Any]:
    return [
        await conn.fetchval(
            "INSERT INTO users (username, full_name, role, area_code, password_hash) "
            "VALUES ($1, $1, $2, $3, $4) RETURNING id",
            username,
            role,
            area,
            pw,
        )
        for username, role, area in rows
    ]


async def _agreement(
    conn: asyncpg.Connection, *, year: int, level: str, first: str, second: str, creator: Any
) -> None:
    agreement_id = uuid.uuid4()
    targets = [
        {"indicator": c, "annual": v, "quarterly": None, "weight": None} for c, v in TARGETS.items()
    ]
    document = canonical_document(
        agreement_id=agreement_id,
        lineage_id=agreement_id,
        version=1,
        year=year,
        level=level,
        first_party={
            "area_code": first,
            "division_id": None,
            "official": "bench",
            "title": None,
            "acting": None,
        },
        second_party={
            "area_code": second,
            "division_id": None,
            "official": "bench",
            "title": None,
            "acting": None,
        },
        targets=targets,
        amendment=None,
    )
    await conn.execute(
        "INSERT INTO agreements (id, lineage_id, version, year, level, first_area, first_official, "
        "second_area, second_official, status, document_sha256, created_by, activated_at) "
        "VALUES ($1, $1, 1, $2, $3, $4, 'bench', $5, 'bench', 'active', $6, $7, now())",
        agreement_id,
        year,
        level,
        first,
        second,
        document_sha256(document),
        creator,
    )
    await conn.executemany(
        "INSERT INTO agreement_targets (agreement_id, indicator_code, annual) VALUES ($1, $2, $3)",
        [(agreement_id, c, v) for c, v in TARGETS.items()],
    )


async def build(conn: asyncpg.Connection, today: date, rng: random.Random) -> Dataset:
    """Users, keys, agreements and regions for ``today``'s year (no submissions yet)."""
    year = today.year
    pw = hash_password("bench-password-1")
    provinces = [
        r["code"]
        for r in await conn.fetch("SELECT code FROM areas WHERE kind = 'province' ORDER BY code")
    ]
    districts = await conn.fetch(
        "SELECT code, parent_code, coalesce(population, 0) AS population FROM areas "
        "WHERE kind = 'district' ORDER BY code"
    )
    admin_id, ministry_id = await _users(
        conn, [("bench_admin", "admin", "ID"), ("bench_ministry", "ministry_monitor", "ID")], pw
    )
    province_ids = dict(
        zip(
            provinces,
            await _users(conn, [(f"kadis_{p}", "province_head", p) for p in provinces], pw),
            strict=True,
        )
    )
    head_ids = await _users(
        conn, [(f"kadis_{d['code']}", "district_head", d["code"]) for d in districts], pw
    )
    heads: dict[str, Head] = {}
    key_rows = []
    for d, user_id in zip(districts, head_ids, strict=True):
        key = ed25519.Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
        kid = thumbprint(jwk)
        key_rows.append((kid, user_id, "OKP", "EdDSA", {**jwk, "kid": kid}))
        head = Head(user_id=user_id, district=d["code"], key=key, kid=kid)
        population = max(int(d["population"]), 1000)
        head.denominators = {c: int(population * s) for c, s in SHARES.items()}
        head.start = {
            "ktp_el": rng.uniform(0.85, 0.95),
            "kia": rng.uniform(0.10, 0.25),
            "akta_lahir": rng.uniform(0.80, 0.92),
        }
        heads[d["code"]] = head
    await conn.executemany(
        "INSERT INTO signing_keys (kid, owner_id, kty, alg, jwk) VALUES ($1, $2, $3, $4, $5)",
        key_rows,
    )
    for p in provinces:
        await _agreement(
            conn, year=year, level="national_province", first="ID", second=p, creator=ministry_id
        )
    for d in districts:
        await _agreement(
            conn,
            year=year,
            level="province_district",
            first=d["parent_code"],
            second=d["code"],
            creator=province_ids[d["parent_code"]],
        )
    for p in provinces:
        codes = [d["code"] for d in districts if d["parent_code"] == p]
        for i in range(4):
            members = codes[i::4]
            if not members:
                continue
            region_id = await conn.fetchval(
                "INSERT INTO regions (province_code, year, name) VALUES ($1, $2, $3) RETURNING id",
                p,
                year,
                f"Wilayah {i + 1}",
            )
            await conn.executemany(
                "INSERT INTO region_members (region_id, district_code, year) VALUES ($1, $2, $3)",
                [(region_id, c, year) for c in members],
            )
    return Dataset(
        year=year, heads=heads, admin_id=admin_id, ministry_id=ministry_id, provinces=provinces
    )


def signed_submission(
    head: Head, as_of: date, values: dict[str, tuple[int, int]]
) -> tuple[str, dict[str, Any]]:
    payload = {
        "jti": str(uuid.uuid4()),
        "iat": int(time.time()),
        "district": head.district,
        "division": None,
        "as_of": as_of.isoformat(),
        "values": {
            c: {"numerator": n, "denominator": d, "stated_pct": None, "channels": None}
            for c, (n, d) in values.items()
        },
        "note": None,
        "supersedes": None,
    }
    token = jwt.encode(
        payload, head.key, algorithm="EdDSA", headers={"kid": head.kid, "typ": SUBMISSION_TYP}
    )
    return token, payload


def values_for(head: Head, months_elapsed: int) -> dict[str, tuple[int, int]]:
    out = {}
    for c in INDICATORS:
        share = min(head.start[c] + 0.004 * months_elapsed, 1.0)
        den = head.denominators[c]
        out[c] = (int(den * share), den)
    return out


async def add_history(
    conn: asyncpg.Connection,
    data: Dataset,
    years: list[int],
    *,
    last_month: int,
    months_step: int = 1,
) -> int:
    """Month-end submissions for every district over ``years`` (the last one up to
    ``last_month``), appended to each district's chain. Returns how many were written.

    ``conn`` must be a plain asyncpg connection (binary COPY has no use for the pool's
    text JSON codec): payloads are passed as JSON text.
    """
    subs: list[tuple[Any, ...]] = []
    vals: list[tuple[Any, ...]] = []
    received = datetime.now(UTC)
    for year in years:
        months = range(1, (last_month if year == max(years) else 12) + 1, months_step)
        for month in months:
            as_of = month_end(year, month)
            elapsed = (year - min(years)) * 12 + month
            for head in data.heads.values():
                values = values_for(head, elapsed)
                token, payload = signed_submission(head, as_of, values)
                head.seq += 1
                prev, head.hash = head.hash, entry_hash(head.hash, token)
                sub_id = uuid.uuid4()
                subs.append(
                    (
                        sub_id,
                        head.district,
                        head.seq,
                        prev,
                        head.hash,
                        token,
                        json.dumps(payload),
                        uuid.UUID(payload["jti"]),
                        datetime.fromtimestamp(payload["iat"], UTC),
                        as_of,
                        head.user_id,
                        head.kid,
                        received,
                        [],
                    )
                )
                for c, (n, d) in values.items():
                    vals.append((sub_id, c, head.district, as_of, head.seq, n, d, []))
    await conn.copy_records_to_table(
        "submissions",
        records=subs,
        columns=[
            "id",
            "district_code",
            "seq",
            "prev_hash",
            "hash",
            "jws",
            "payload",
            "jti",
            "iat",
            "as_of",
            "submitter_id",
            "kid",
            "received_at",
            "flags",
        ],
    )
    # A bulk load refreshes latest_values once at the end instead of once per row.
    await conn.execute("ALTER TABLE submission_values DISABLE TRIGGER USER")
    await conn.copy_records_to_table(
        "submission_values",
        records=vals,
        columns=[
            "submission_id",
            "indicator_code",
            "district_code",
            "as_of",
            "seq",
            "numerator",
            "denominator",
            "flags",
        ],
    )
    await conn.execute("ALTER TABLE submission_values ENABLE TRIGGER USER")
    await conn.execute(
        "SELECT refresh_latest_value(district_code, division_id, indicator_code) FROM "
        "(SELECT DISTINCT district_code, division_id, indicator_code FROM submission_values) k"
    )
    await conn.executemany(
        "INSERT INTO ledger_heads (district_code, seq, hash) VALUES ($1, $2, $3) "
        "ON CONFLICT (district_code) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
        [(h.district, h.seq, h.hash) for h in data.heads.values()],
    )
    await conn.execute(
        "INSERT INTO data_versions AS v (area_code, version) SELECT code, 1 FROM areas "
        "ON CONFLICT (area_code) DO UPDATE SET version = v.version + 1"
    )
    # Vacuum now, so autovacuum does not wake up in the middle of the next measurement, and
    # checkpoint, so the bulk load's dirty pages are not written out during it either.
    await conn.execute(
        "VACUUM (ANALYZE) submissions, submission_values, latest_values, ledger_heads, "
        "data_versions"
    )
    await conn.execute("CHECKPOINT")
    data.submissions += len(subs)
    return len(subs)
