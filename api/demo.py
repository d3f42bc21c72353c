"""A demo year, seeded through the same code paths as real use.

Users, keys, agreements, regions and monthly signed submissions for South Sumatra
(16), East Kalimantan (64), South Sulawesi (73) and Jakarta (31), so a newcomer sees
live rankings at once. Agreements are drafted and signed, and submissions signed and
ingested, by the very service functions the routes call; the private keys live only
in this process's memory. South Sumatra's 15 February figures are the seed article's
(5,545,117 of 5,940,433 residents obliged to hold a KTP; the article says 97.70 %, the
counts say 93.35 %, and the district totals here sum to exactly those counts).

Seeding is idempotent: it does nothing when the demo admin already exists.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg
import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from api import agreements, identity, regions, submission_rules, submissions
from api.agreement_document import SIGNATURE_TYP
from api.auth.passwords import hash_password
from api.auth.principal import Principal
from api.jwk import b64url_encode
from api.schemas.agreements import AgreementCreate, RegionIn, RegionsPut, SecondPartyIn, TargetIn
from api.settings import Settings
from db import areas as area_db
from db import users as user_db

log = logging.getLogger("kinerja.demo")

DEMO_ADMIN = "demo_admin"
PROVINCES = ("16", "64", "73", "31")
#: National targets from the seeds (2021): KTP-el 100, KIA 30, akta kelahiran 95.
NATIONAL_TARGETS = {"ktp_el": 100.0, "kia": 30.0, "akta_lahir": 95.0}
SUMSEL_WAJIB_KTP, SUMSEL_RECORDED = 5_940_433, 5_545_117
KALTIM_WAJIB_KTP, KALTIM_RECORDED = 2_197_959, 1_916_099
#: The seed articles' KTP-el shares, which the 15 February reports give each district.
ARTICLE_SHARE = {
    "16": SUMSEL_RECORDED / SUMSEL_WAJIB_KTP,
    "64": KALTIM_RECORDED / KALTIM_WAJIB_KTP,
}
#: Shares of the population in each denominator (national wajib-KTP share, 2024).
SHARES = {"ktp_el": 0.736, "kia": 0.28, "akta_lahir": 0.31}


@dataclass
class Actor:
    principal: Principal
    key: ed25519.Ed25519PrivateKey
    kid: str


def split(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder: sums exactly)."""
    whole = sum(weights)
    raw = [total * w / whole for w in weights]
    parts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


async def _user(
    conn: asyncpg.Connection, username: str, role: str, area: str, password_hash: str
) -> Principal:
    row = await user_db.insert_user(
        conn,
        username=username,
        full_name=username.replace("_", " ").title(),
        role=role,
        area_code=area,
        division_id=None,
        extra_areas=[],
        password_hash=password_hash,
        created_by=None,
    )
    return Principal(id=row.id, username=row.username, role=role, area_code=area)  # type: ignore[arg-type]


async def _actor(conn: asyncpg.Connection, principal: Principal) -> Actor:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    registered = await identity.register_key(
        conn, principal, {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}, "demo"
    )
    return Actor(principal, key, registered.kid)


async def _sign_agreement(
    conn: asyncpg.Connection, settings: Settings, agreement: Any, actor: Actor, party: str
) -> Any:
    statement = {
        "agreement_id": str(agreement.id),
        "document_sha256": agreement.document_sha256,
        "party": party,
        "iat": int(time.time()),
    }
    jws = jwt.encode(
        statement, actor.key, algorithm="EdDSA", headers={"kid": actor.kid, "typ": SIGNATURE_TYP}
    )
    return await agreements.sign(conn, actor.principal, agreement.id, jws, settings)


async def _agreement(
    conn: asyncpg.Connection,
    settings: Settings,
    first: Actor,
    second: Actor,
    *,
    year: int,
    level: str,
    area: str,
    targets: dict[str, float],
) -> None:
    draft = await agreements.create(
        conn,
        first.principal,
        AgreementCreate(
            year=year,
            level=level,  # type: ignore[arg-type]
            second_party=SecondPartyIn(official=second.principal.username, area_code=area),
            targets=[TargetIn(indicator=code, annual=value) for code, value in targets.items()],
        ),
    )
    signed = await _sign_agreement(conn, settings, draft, second, "second")
    await _sign_agreement(conn, settings, signed, first, "first")


async def _submit(
    conn: asyncpg.Connection,
    settings: Settings,
    actor: Actor,
    district: str,
    as_of: date,
    values: dict[str, tuple[int, int]],
    *,
    stated: dict[str, float] | None = None,
    note: str | None = None,
) -> None:
    payload = {
        "jti": str(uuid.uuid4()),
        "iat": int(time.time()),
        "district": district,
        "division": None,
        "as_of": as_of.isoformat(),
        "values": {
            code: {
                "numerator": n,
                "denominator": d,
                "stated_pct": (stated or {}).get(code),
                "channels": None,
            }
            for code, (n, d) in values.items()
        },
        "note": note,
        "supersedes": None,
    }
    jws = jwt.encode(
        payload,
        actor.key,
        algorithm="EdDSA",
        headers={"kid": actor.kid, "typ": submission_rules.SUBMISSION_TYP},
    )
    async with conn.transaction():
        await submissions.submit(
            conn,
            settings,
            actor.principal,
            jws.encode(),
            content_type=submission_rules.JOSE_MEDIA_TYPE,
            idempotency_key=None,
        )


def month_ends(year: int, today: date) -> list[date]:
    """The last day of every month of ``year`` that has ended by ``today``."""
    ends = []
    for month in range(1, 13):
        end = (date(year, month, 28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        if end < today:
            ends.append(end)
    return ends


async def seed(conn: asyncpg.Connection, settings: Settings, today: date, password: str) -> bool:
    """Seed the demo year (``today``'s); False when it was already there.

    All of it in one transaction: the demo is there once its admin is, so a seeding
    interrupted part-way (Ctrl-C during ``make demo``'s first start) must leave nothing,
    or every later run would find the admin and never add the missing reports."""
    async with conn.transaction():
        # Two processes seeding at once (replicas starting with KINERJA_DEMO): the second
        # waits here, then finds the first one's admin.
        await user_db.lock_seeding(conn)
        if await user_db.username_taken(conn, DEMO_ADMIN):
            return False
        await _seed_year(conn, settings, today, password)
    log.info("demo year %s seeded", today.year)
    return True


async def _seed_year(
    conn: asyncpg.Connection, settings: Settings, today: date, password: str
) -> None:
    year = today.year
    rng = random.Random(2021)  # the same demo every time
    pw = hash_password(password)
    async with conn.transaction():
        await _user(conn, DEMO_ADMIN, "admin", "ID", pw)
        ministry = await _actor(
            conn, await _user(conn, "demo_kemendagri", "ministry_monitor", "ID", pw)
        )
        province_heads: dict[str, Actor] = {}
        for code in PROVINCES:
            province_heads[code] = await _actor(
                conn, await _user(conn, f"kadis_{code}", "province_head", code, pw)
            )
            await _user(conn, f"monitor_{code}", "province_monitor", code, pw)
            await _agreement(
                conn,
                settings,
                ministry,
                province_heads[code],
                year=year,
                level="national_province",
                area=code,
                targets=NATIONAL_TARGETS,
            )
        district_rows = await area_db.districts_in(conn, list(PROVINCES))
        heads: dict[str, Actor] = {}
        for row in district_rows:
            heads[row.code] = await _actor(
                conn, await _user(conn, f"kadis_{row.code}", "district_head", row.code, pw)
            )
        # South Sumatra: agreements for every district and four regions with coordinators.
        sumsel = [r for r in district_rows if r.parent_code == "16"]
        for row in sumsel:
            ktp = 100.0 if rng.random() > 0.2 else 99.0
            await _agreement(
                conn,
                settings,
                province_heads["16"],
                heads[row.code],
                year=year,
                level="province_district",
                area=row.code,
                targets={"ktp_el": ktp, "kia": rng.choice([25.0, 30.0, 35.0]), "akta_lahir": 95.0},
            )
        coordinators = [
            await _user(conn, f"pj_wilayah_{i}_16", "region_coordinator", "16", pw)
            for i in range(1, 5)
        ]
        codes = [r.code for r in sumsel]
        groups = [codes[i::4] for i in range(4)]
        await regions.replace(
            conn,
            province_heads["16"].principal,
            "16",
            year,
            RegionsPut(
                regions=[
                    RegionIn(name=f"Wilayah {i + 1}", districts=group, coordinator_id=c.id)
                    for i, (group, c) in enumerate(zip(groups, coordinators, strict=True))
                ]
            ),
        )
    # Monthly snapshots, each appended as a real report is (within the seeding's transaction).
    for province in PROVINCES:
        rows = [r for r in district_rows if r.parent_code == province]
        populations = [float(r.population) for r in rows]
        denominators = {
            code: split(int(sum(populations) * share), populations)
            for code, share in SHARES.items()
        }
        if province == "16":
            denominators["ktp_el"] = split(SUMSEL_WAJIB_KTP, populations)
        if province == "64":
            denominators["ktp_el"] = split(KALTIM_WAJIB_KTP, populations)
        start = {
            "ktp_el": [rng.uniform(0.88, 0.95) for _ in rows],
            "kia": [rng.uniform(0.15, 0.25) for _ in rows],
            "akta_lahir": [rng.uniform(0.85, 0.92) for _ in rows],
        }
        pace = {
            "ktp_el": [rng.uniform(0.001, 0.007) for _ in rows],
            "kia": [rng.uniform(0.005, 0.02) for _ in rows],
            "akta_lahir": [rng.uniform(0.002, 0.008) for _ in rows],
        }
        if province in ARTICLE_SHARE:
            # Every district stands a little below the article's share on 31 January and
            # above it on 28 February, so its 15 February report, at the article's share,
            # lies between its month-ends: reports stay cumulative (no numerator_decreased).
            # Small steps, so South Sumatra (93.35 %) stays under 100 % all year.
            below = [rng.uniform(0.001, 0.004) for _ in rows]
            start["ktp_el"] = [ARTICLE_SHARE[province] - b for b in below]
            pace["ktp_el"] = [b + rng.uniform(0.0005, 0.002) for b in below]
        # Before January's end no month has ended: one report as of today, so the demo
        # ranks live from its first day of the year.
        for month, as_of in enumerate(month_ends(year, today) or [today]):
            for i, row in enumerate(rows):
                values = {}
                for code in SHARES:
                    den = denominators[code][i]
                    share = min(start[code][i] + pace[code][i] * month, 1.02)
                    values[code] = (int(den * share), den)
                await _submit(conn, settings, heads[row.code], row.code, as_of, values)
        if province in ("16", "64") and date(year, 2, 15) < today:
            total, recorded, stated = (
                (SUMSEL_WAJIB_KTP, SUMSEL_RECORDED, 97.70)
                if province == "16"
                else (KALTIM_WAJIB_KTP, KALTIM_RECORDED, 87.17)
            )
            # The article's province totals, split across districts in proportion to their
            # denominators (each district at the article's share), each stating the
            # province's printed percentage, as the article did: 97.70 against 93.35 %
            # computed is a stated_mismatch, 87.17 against 87.176 % a truncation within
            # tolerance.
            numerators = split(recorded, [float(d) for d in denominators["ktp_el"]])
            for i, row in enumerate(rows):
                den = denominators["ktp_el"][i]
                await _submit(
                    conn,
                    settings,
                    heads[row.code],
                    row.code,
                    date(year, 2, 15),
                    {"ktp_el": (numerators[i], den)},
                    stated={"ktp_el": stated},
                    note="Angka provinsi per 15 Februari (rakerda)",
                )
            assert sum(denominators["ktp_el"]) == total


def summary(password: str) -> str:
    return msgspec.json.format(
        msgspec.json.encode(
            {
                "users": {
                    "admin": DEMO_ADMIN,
                    "ministry": "demo_kemendagri",
                    "province_head": "kadis_16",
                    "province_monitor": "monitor_16",
                    "district_head": "kadis_16.71",
                    "region_coordinator": "pj_wilayah_1_16",
                },
                "password": password,
            }
        )
    ).decode()
