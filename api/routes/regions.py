"""Regions (wilayah) of a province for a year."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, get, put
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import BodyKwarg, FromPath, PathParameter

from api import regions as service
from api.routes.users import caller
from api.schemas.agreements import YEAR_MAX, YEAR_MIN, Regions, RegionsPut

# Litestar drops msgspec.Meta inside a parameter's annotation: give the bounds here.
PathYear = Annotated[int, PathParameter(ge=YEAR_MIN, le=YEAR_MAX)]

REGIONS_EXAMPLE = Example(
    summary="Two of South Sumatra's regions for 2021 (the rest of its districts unassigned)",
    value={
        "regions": [
            {
                "name": "Wilayah I",
                "districts": ["16.71", "16.72", "16.05"],
                "coordinator_id": "5b1e7c2a-0f3d-4e8b-9a6c-2d4f6e8a0b1c",
            },
            {"name": "Wilayah II", "districts": ["16.01", "16.02"]},
        ]
    },
)


class RegionController(Controller):
    path = "/v1/provinces/{code:str}/regions/{year:int}"
    tags = ["regions"]

    @put("/", opt={"permission": "regions:write"}, summary="Replace the province's regions")
    async def replace(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        code: FromPath[str],
        year: PathYear,
        data: Annotated[RegionsPut, BodyKwarg(examples=[REGIONS_EXAMPLE])],
    ) -> Regions:
        """All or nothing: districts of this province only, each in at most one region,
        coordinators who are region coordinators of this province."""
        return await service.replace(db, caller(request), code, year, data)

    @get("/", opt={"permission": "regions:read"}, summary="The province's regions")
    async def read(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        code: FromPath[str],
        year: PathYear,
    ) -> Regions:
        """With the districts that are in no region listed under ``unassigned``."""
        await service.province_visible(db, caller(request), code, year)
        return await service.read(db, code, year)
