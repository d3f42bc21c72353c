"""The indicator catalogue and the divisions of district offices."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import BodyKwarg, FromPath, JSONBody, QueryParameter

from api import authz
from api.errors import Conflict, NotFound, Unprocessable
from api.pagination import Page, page_bounds
from api.report_context import COMPOSITE
from api.routes.users import caller
from api.schemas.agreements import Division, DivisionCreate, Indicator, IndicatorCreate
from api.settings import local_today
from db import areas as area_db
from db import divisions as division_db
from db import indicators as indicator_db
from db import versions
from db.submissions import forget_indicators

INDICATOR_EXAMPLE = Example(
    summary="Birth certificates recorded within 60 days of birth",
    value={
        "code": "akta_60_hari",
        "name_id": "Akta kelahiran terbit dalam 60 hari",
        "name_en": "Birth certificates issued within 60 days",
        "polarity": "higher",
        "numerator_definition": "births recorded within 60 days in the period",
        "denominator_definition": "births recorded in the period",
        "unit": "percent",
        "cap": 120,
    },
)


def _indicator(row: indicator_db.IndicatorRow) -> Indicator:
    return Indicator(
        code=row.code,
        name_id=row.name_id,
        name_en=row.name_en,
        unit=row.unit,
        polarity=row.polarity,
        cap=row.cap,
        numerator_definition=row.numerator_definition,
        denominator_definition=row.denominator_definition,
        age_band=row.age_band,
        core=row.core,
    )


class IndicatorController(Controller):
    path = "/v1/indicators"
    tags = ["indicators"]

    @get("/", opt={"permission": "catalogue:read"}, summary="The indicator catalogue")
    async def list_indicators(
        self,
        db: NamedDependency[asyncpg.Connection],
        state: State,
        limit: Annotated[int | None, QueryParameter(description="page size")] = None,
        offset: Annotated[int, QueryParameter(description="rows to skip")] = 0,
    ) -> Page[Indicator]:
        """Core indicators first, then by code, one bounded page at a time."""
        limit, offset = page_bounds(limit, offset, state.settings)
        rows, total = await indicator_db.page_indicators(db, limit=limit, offset=offset)
        return Page(items=[_indicator(r) for r in rows], total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": "catalogue:manage"}, summary="Add an indicator")
    async def create(
        self,
        db: NamedDependency[asyncpg.Connection],
        data: Annotated[IndicatorCreate, BodyKwarg(examples=[INDICATOR_EXAMPLE])],
    ) -> Indicator:
        if data.code == COMPOSITE:  # an indicator of that name could never be ranked alone
            raise Unprocessable(
                f"The code {COMPOSITE!r} names the composite score in rankings and scorecards."
            )
        row = await indicator_db.insert_indicator(
            db,
            code=data.code,
            name_id=data.name_id,
            name_en=data.name_en,
            unit=data.unit,
            polarity=data.polarity,
            cap=data.cap,
            numerator_definition=data.numerator_definition,
            denominator_definition=data.denominator_definition,
            age_band=data.age_band,
        )
        if row is None:
            raise Conflict(f"The indicator {data.code!r} exists.")
        await versions.bump_everywhere(db)  # every scorecard and ranking lists it
        return _indicator(row)

    @delete("/{code:str}", opt={"permission": "catalogue:manage"}, summary="Remove an indicator")
    async def remove(self, db: NamedDependency[asyncpg.Connection], code: FromPath[str]) -> None:
        """The three core indicators, and any indicator an agreement or a submission
        uses, stay."""
        row = await indicator_db.get_indicator(db, code)
        if row is None:
            raise NotFound(f"No indicator {code!r}.")
        if row.core:
            raise Conflict(f"{code} is a core indicator and cannot be deleted.")
        if used_by := await indicator_db.indicator_used_by(db, code):
            raise Conflict(f"{code} is used by {used_by} and cannot be deleted.")
        if not await indicator_db.delete_indicator(db, code):
            raise NotFound(f"No indicator {code!r}.")  # removed meanwhile by another request
        await versions.bump_everywhere(db)
        forget_indicators()  # added again, it may have another unit


def _division(row: division_db.DivisionRow) -> Division:
    return Division(id=row.id, district_code=row.district_code, code=row.code, name=row.name)


class DivisionController(Controller):
    path = "/v1/districts/{code:str}/divisions"
    tags = ["divisions"]

    @get("/", opt={"permission": "divisions:read"}, summary="Divisions of a district office")
    async def list_divisions(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        code: FromPath[str],
        state: State,
        limit: Annotated[int | None, QueryParameter(description="page size")] = None,
        offset: Annotated[int, QueryParameter(description="rows to skip")] = 0,
    ) -> Page[Division]:
        """The district's divisions in code order, one bounded page at a time."""
        limit, offset = page_bounds(limit, offset, state.settings)
        kind = await area_db.area_kind(db, code)
        this_year = local_today(state.settings).year
        if kind != "district" or not await authz.area_in_scope(
            db, caller(request), code, year=this_year
        ):
            raise NotFound(f"No district {code!r} in your scope.")
        rows, total = await division_db.page_divisions(db, code, limit=limit, offset=offset)
        return Page(items=[_division(r) for r in rows], total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": "divisions:manage"}, summary="Add a division")
    async def create(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        code: FromPath[str],
        data: JSONBody[DivisionCreate],
    ) -> Division:
        me = caller(request)
        kind = await area_db.area_kind(db, code)
        this_year = local_today(request.app.state.settings).year
        if kind != "district" or not await authz.area_in_scope(db, me, code, year=this_year):
            raise NotFound(f"No district {code!r} in your scope.")
        row = await division_db.insert_division(db, code, data.code, data.name)
        if row is None:
            raise Conflict(f"{code} already has a division {data.code!r}.")
        await versions.bump(db, code)  # the district's scorecard has a card per division
        return _division(row)
