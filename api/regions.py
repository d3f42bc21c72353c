"""Regions (wilayah) of a province: replaced whole, checked before anything is written."""

from __future__ import annotations

import asyncpg

from api import authz
from api.auth.principal import Principal
from api.errors import NotFound, Unprocessable
from api.schemas.agreements import AreaRef, Coordinator, Region, Regions, RegionsPut
from db import areas as area_db
from db import regions as region_db
from db import versions


async def province_visible(
    conn: asyncpg.Connection, caller: Principal, province: str, year: int
) -> None:
    """404 unless ``province`` is a province inside the caller's scope (for ``year``)."""
    kind = await area_db.area_kind(conn, province)
    if kind != "province":
        raise NotFound(f"No province has the code {province!r}.")
    if authz.is_national(caller) or caller.area_code == province:
        return
    if caller.role == "integration" and await authz.area_in_scope(
        conn, caller, province, year=year
    ):
        return
    raise NotFound(f"No province has the code {province!r}.")


async def read(conn: asyncpg.Connection, province: str, year: int) -> Regions:
    """The regions that apply in ``year``: drawn for it, or carried over from the last
    year drawn before it (as coordinators' scope and region rankings have them)."""
    drawn_for = await region_db.drawing_year(conn, province, year)
    rows = await region_db.regions_of(conn, province, drawn_for)
    regions = [
        Region(
            id=r["id"],
            name=r["name"],
            coordinator=None
            if r["coordinator_id"] is None
            else Coordinator(
                id=r["coordinator_id"],
                username=r["coordinator_username"],
                full_name=r["coordinator_name"],
            ),
            districts=[
                AreaRef(code=c, name=n) for c, n in zip(r["codes"], r["names"], strict=True)
            ],
        )
        for r in rows
    ]
    unassigned = [
        AreaRef(code=r["code"], name=r["name"])
        for r in await region_db.unassigned_districts(conn, province, drawn_for)
    ]
    return Regions(
        province=province, year=year, drawn_for=drawn_for, regions=regions, unassigned=unassigned
    )


async def replace(
    conn: asyncpg.Connection, caller: Principal, province: str, year: int, data: RegionsPut
) -> Regions:
    """Validate every region first, then replace them all in the request's transaction."""
    await province_visible(conn, caller, province, year)
    districts = await region_db.districts_of(conn, province)
    names: set[str] = set()
    placed: dict[str, str] = {}
    for region in data.regions:
        if region.name in names:
            raise Unprocessable(f"Two regions are named {region.name!r}.")
        names.add(region.name)
        for code in region.districts:
            if code not in districts:
                raise Unprocessable(
                    f"{code} is not a district of province {province}.", extra={"district": code}
                )
            if code in placed:
                raise Unprocessable(
                    f"{code} is listed twice in {region.name!r}."
                    if placed[code] == region.name
                    else f"{code} is in both {placed[code]!r} and {region.name!r}.",
                    extra={"district": code},
                )
            placed[code] = region.name
    wanted = [r.coordinator_id for r in data.regions if r.coordinator_id is not None]
    found = await region_db.coordinators(conn, wanted)
    for coordinator_id in wanted:
        user = found.get(coordinator_id)
        if (
            user is None
            or user["role"] != "region_coordinator"
            or user["area_code"] != province
            or not user["active"]
        ):
            raise Unprocessable(
                "A coordinator must be an active region coordinator of this province.",
                extra={"coordinator_id": str(coordinator_id)},
            )
    await region_db.replace_regions(
        conn, province, year, [(r.name, r.coordinator_id, list(r.districts)) for r in data.regions]
    )
    await versions.bump(conn, province)
    return await read(conn, province, year)
