"""Users for tests: one per role inside a scope and one outside it, with minted tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from uuid import UUID

import asyncpg
import jwt
from cryptography.hazmat.primitives import serialization
from litestar import Litestar

from api.auth.passwords import hash_password
from api.auth.principal import ROLES
from api.auth.tokens import rotate_server_key

PASSWORD = "correct horse battery"

#: In-scope areas (South Sumatra, Kota Palembang) and out-of-scope ones (Jakarta).
PROVINCE, DISTRICT = "16", "16.71"
OTHER_PROVINCE, OTHER_DISTRICT = "31", "31.71"


@lru_cache(maxsize=1)
def password_hash() -> str:
    # scrypt is slow on purpose: hash once per session.
    return hash_password(PASSWORD)


@dataclass
class Person:
    id: UUID
    username: str
    role: str
    area_code: str
    division_id: UUID | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _area_for(role: str, province: str, district: str) -> str:
    if role in ("admin", "ministry_monitor"):
        return "ID"
    if role in ("province_head", "province_monitor", "region_coordinator", "integration"):
        return province
    return district


async def make_division(conn: asyncpg.Connection, district: str, code: str = "dafduk") -> UUID:
    return await conn.fetchval(
        "INSERT INTO divisions (district_code, code, name) VALUES ($1, $2, $3) "
        "ON CONFLICT (district_code, code) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        district,
        code,
        f"Bidang {code}",
    )


async def make_user(
    conn: asyncpg.Connection,
    role: str,
    *,
    username: str,
    area_code: str,
    division_id: UUID | None = None,
    extra_areas: list[str] | None = None,
) -> Person:
    user_id = await conn.fetchval(
        "INSERT INTO users (username, full_name, role, area_code, division_id, extra_areas, "
        "password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        username,
        username.replace("_", " ").title(),
        role,
        area_code,
        division_id,
        extra_areas or [],
        password_hash(),
    )
    return Person(user_id, username, role, area_code, division_id)


async def make_people(
    conn: asyncpg.Connection, *, province: str, district: str, suffix: str
) -> dict[str, Person]:
    """One user per role bound to ``province``/``district``."""
    division = await make_division(conn, district)
    people: dict[str, Person] = {}
    for role in ROLES:
        people[role] = await make_user(
            conn,
            role,
            username=f"{role}{suffix}",
            area_code=_area_for(role, province, district),
            division_id=division if role == "division_head" else None,
        )
    return people


async def coordinate(
    conn: asyncpg.Connection, coordinator: Person, province: str, districts: list[str], year: int
) -> UUID:
    """Make ``coordinator`` lead a region holding ``districts``."""
    region_id = await conn.fetchval(
        "INSERT INTO regions (province_code, year, name, coordinator_id) "
        "VALUES ($1, $2, $3, $4) RETURNING id",
        province,
        year,
        f"Wilayah {coordinator.username}",
        coordinator.id,
    )
    for code in districts:
        await conn.execute(
            "INSERT INTO region_members (region_id, district_code, year) VALUES ($1, $2, $3)",
            region_id,
            code,
            year,
        )
    return region_id


def token_for(app: Litestar, person: Person, *, generation: int = 0) -> str:
    """Mint an access token the way the token endpoint does (without the scrypt cost), of
    the person's token ``generation`` (moved by each deactivation or password change)."""
    claims: dict[str, Any] = {"sub": str(person.id), "role": person.role, "area": person.area_code}
    if generation:
        claims["gen"] = generation
    token, _ = app.state.key_ring.issue(claims)
    return token


def bearer(app: Litestar, person: Person, *, generation: int = 0) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(app, person, generation=generation)}"}


async def forged_after_rotation(
    conn: asyncpg.Connection, app: Litestar, person: Person, *, iat: int, exp: int
) -> str:
    """An access token for ``person`` with this ``iat`` and ``exp``, signed by the
    server's key as it leaked: rotated out an hour ago (made two hours ago), as an
    operator does once a key leaks; every token it really issued has expired since."""
    old = await conn.fetchrow("SELECT kid, private_pem FROM server_keys")
    new_kid = await rotate_server_key(conn)
    await conn.execute(
        "UPDATE server_keys SET created_at = now() - interval '2 hours' WHERE kid = $1",
        old["kid"],
    )
    await conn.execute(
        "UPDATE server_keys SET created_at = now() - interval '1 hour' WHERE kid = $1", new_kid
    )
    await app.state.key_ring.load(conn)
    leaked = serialization.load_pem_private_key(old["private_pem"].encode(), None)
    settings = app.state.settings
    claims = {
        "sub": str(person.id),
        "role": person.role,
        "area": person.area_code,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "jti": uuid.uuid4().hex,
    }
    headers = {"kid": old["kid"], "typ": "at+jwt"}
    return jwt.encode(claims, leaked, algorithm="EdDSA", headers=headers)  # type: ignore[arg-type]
