"""Administrative areas: the reference data every other resource points at."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from api.errors import NotFound
from api.pagination import Page, page_bounds
from api.schemas.patterns import described, whole
from api.settings import Settings
from db import areas as area_db

AREA_CODE_PATTERN = r"^(ID|\d{2}|\d{2}\.\d{2})$"
_PARENT = described(
    whole(r"ID|[0-9]{2}(\.[0-9]{2})?"),
    "an area code: ID, a province such as 16 or a district such as 16.71",
)


class AreaController(Controller):
    path = "/v1/areas"
    tags = ["areas"]
    opt = {"permission": "public"}  # reference data, published anyway

    @get("/", summary="List areas")
    async def list_areas(
        self,
        db: NamedDependency[asyncpg.Connection],
        state: State,
        kind: Annotated[
            area_db.AreaKind | None, QueryParameter(description="country, province or district")
        ] = None,
        # The shape of an area code: anything else (an empty value, a typo such as 16.7) is
        # refused rather than answered with an empty page that reads as "no areas".
        parent: Annotated[
            str | None,
            QueryParameter(description="parent area code, e.g. 16", pattern=_PARENT),
        ] = None,
        limit: Annotated[int | None, QueryParameter(description="page size")] = None,
        offset: Annotated[int, QueryParameter(description="rows to skip")] = 0,
    ) -> Page[area_db.Area]:
        """Areas in code order, filtered by kind and parent, one bounded page at a time."""
        settings: Settings = state.settings
        limit, offset = page_bounds(limit, offset, settings)
        items, total = await area_db.list_areas(
            db, kind=kind, parent=parent, limit=limit, offset=offset
        )
        return Page(items=items, total=total, limit=limit, offset=offset)

    @get("/{code:str}", summary="One area")
    async def get_area(
        self,
        db: NamedDependency[asyncpg.Connection],
        code: FromPath[str],
    ) -> area_db.Area:
        """Name, kind, parent, population and number of children of one area."""
        area = await area_db.get_area(db, code)
        if area is None:
            raise NotFound(f"No area has the code {code!r}.", extra={"code": code})
        return area
