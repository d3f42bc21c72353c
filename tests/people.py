"""Users for tests: one per role inside a scope and one outside it, with minted tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from uuid import UUID

import asyncpg
from litestar import Litestar

from api.auth.passwords import hash_password
from api.auth.principal import ROLES

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
