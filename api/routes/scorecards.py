"""Scorecards and rankings: JSON or CSV, with ETags integrations can poll cheaply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from api import authz
from api.auth.principal import Principal
from api.change_feed import scope_versions
from api.errors import ApiError, NotFound
from api.kept_values import KeptValues
from api.report_aggregates import area_aggregate_out
from api.report_context import COMPOSITE, context_for, resolve_period
from api.report_scores import districts_of
from api.reports import (
    district_card,
    national_results,
    province_card,
    province_results,
    rank_areas,
    rank_districts,
    region_results,
)
from api.representation import (
    CsvRows,
    ReportCache,
    aggregate_row,
    card_rows,
    respond,
    rows_of,
    single_columns,
    wants_csv,
)
from api.routes.users import caller
from api.schemas.scorecards import (
    Basis,
    DistrictScorecard,
    IndicatorRow,
    ProvinceScorecard,
    Ranking,
    RankingRow,
)
from api.settings import local_today
from db import scope as scope_db
from db import scorecards as data

Format = Literal["json", "csv"]
YearQ = Annotated[int | None, QueryParameter(ge=2000, le=2100, description="default: as_of's year")]
AsOfQ = Annotated[date | None, QueryParameter(description="default: today (WIB)")]
IndicatorQ = Annotated[
    str, QueryParameter(description="composite, or an indicator code", max_length=32)
]
BasisQ = Annotated[
    Basis, QueryParameter(description="latest (not returned) or accepted (by a reviewer)")
]
FormatQ = Annotated[Format | None, QueryParameter(description="or Accept: text/csv")]

REPORT_RESPONSES = "JSON by default; text/csv with Accept: text/csv or ?format=csv."
#: A ranking's CSV names these columns even when it has no rows.
_RANKING_COLUMNS = single_columns(RankingRow)


class ProvinceRequired(ApiError):
    """A region ranking for a caller with no province of their own names none: a missing
    parameter, not a missing resource."""

    status_code = 400
    slug = "province-required"
    title = "A province is required"


def cache_of(state: State) -> ReportCache:
    return state.report_cache  # type: ignore[no-any-return]


async def _ranking_response(
    request: Request[Any, Any, Any],
    state: State,
    key: list[Any],
    format: Format | None,
    render: Callable[[], Awaitable[tuple[Any, CsvRows]]],
) -> Response[Any]:
    """``respond`` for a ranking of districts or regions: its CSV names its columns even
    when it has no rows."""
    return await respond(
        request, cache_of(state), key, wants_csv(request, format), render, leading=_RANKING_COLUMNS
    )


def kept_of(state: State) -> KeptValues | None:
    return state.kept_values  # type: ignore[no-any-return]


async def versions_of(state: State, areas: list[str]) -> list[int]:
    return await scope_versions(state.change_feed, state.pool, areas)


def view_key(principal: Principal) -> list[Any]:
    """What of the caller changes the document: role, scope, and who they are where the
    view is personal (a coordinator's regions, a division head's division)."""
    personal = principal.role in ("region_coordinator", "division_head")
    return [
        principal.role,
        *principal.areas,
        str(principal.id) if personal else "",
        str(principal.division_id or ""),
    ]


# Scope checks and versions come from memory (the area tree, the change feed), with the
# pool only for what memory cannot answer (a coordinator's regions): a 304 or a cached
# report takes no connection at all. Rendering acquires one.


async def _check_district(pool: asyncpg.Pool, principal: Principal, code: str, year: int) -> None:
    if await scope_db.area_kind(pool, code) != "district" or not await authz.area_in_scope(
        pool, principal, code, year=year
    ):
        raise NotFound(f"No district {code!r} in your scope.")


async def _check_province(pool: asyncpg.Pool, principal: Principal, code: str) -> None:
    if await scope_db.area_kind(
        pool, code
    ) != "province" or not await authz.province_report_visible(pool, principal, code):
        raise NotFound(f"No province {code!r} in your scope.")


class ScorecardController(Controller):
    path = "/v1/scorecards"
    tags = ["scorecards"]

    @get(
        "/districts/{code:str}",
        opt={"permission": "scorecards:district"},
        summary="A district's scorecard",
        description=REPORT_RESPONSES,
    )
    async def district(
        self,
        request: Request[Any, Any, Any],
        state: State,
        code: FromPath[str],
        year: YearQ = None,
        as_of: AsOfQ = None,
        basis: BasisQ = "latest",
        format: FormatQ = None,
    ) -> Response[Any]:
        """Per indicator: counts, coverage, the applying target, raw and capped
        achievement, band, trend, projection, flags and provenance; a card per division."""
        me = caller(request)
        period = resolve_period(year, as_of, local_today(state.settings))
        await _check_district(state.pool, me, code, period.year)
        parent = (await scope_db.area_tree(state.pool))[code]
        versions = await versions_of(state, [code, str(parent)])
        key = ["district", code, period.as_of, period.year, basis, view_key(me), versions]

        async def render() -> tuple[Any, CsvRows]:
            async with state.pool.acquire() as db:
                ctx = await context_for(
                    db, state.settings, period, basis, COMPOSITE, kept_of(state)
                )
                district = await data.district(db, code)
                only = me.division_id if me.role == "division_head" else None
                card = await district_card(db, ctx, district, only_division=only)

            def rows() -> list[dict[str, Any]]:
                out = card_rows(
                    card.indicators,
                    card.composite,
                    row_type=IndicatorRow,
                    district=code,
                    division=None,
                )
                for division in card.divisions:
                    out += card_rows(
                        division.indicators,
                        division.composite,
                        row_type=IndicatorRow,
                        district=code,
                        division=division.code,
                    )
                return out

            return card, rows

        return await respond(request, cache_of(state), key, wants_csv(request, format), render)

    @get(
        "/provinces/{code:str}",
        opt={"permission": "scorecards:province"},
        summary="A province's scorecard",
        description=REPORT_RESPONSES,
    )
    async def province(
        self,
        request: Request[Any, Any, Any],
        state: State,
        code: FromPath[str],
        year: YearQ = None,
        as_of: AsOfQ = None,
        basis: BasisQ = "latest",
        format: FormatQ = None,
    ) -> Response[Any]:
        """The population-weighted province aggregate, its districts and its regions."""
        me = caller(request)
        await _check_province(state.pool, me, code)
        period = resolve_period(year, as_of, local_today(state.settings))
        versions = await versions_of(state, [code])
        key = ["province", code, period.as_of, period.year, basis, view_key(me), versions]

        async def render() -> tuple[Any, CsvRows]:
            async with state.pool.acquire() as db:
                ctx = await context_for(
                    db, state.settings, period, basis, COMPOSITE, kept_of(state)
                )
                province = await data.province(db, code)
                card = await province_card(db, ctx, province)
            return (
                card,
                lambda: (
                    [
                        aggregate_row(card.aggregate, kind="province"),
                        *rows_of(card.districts, kind="district"),
                        *rows_of(card.regions, kind="region"),
                    ]
                ),
            )

        return await respond(request, cache_of(state), key, wants_csv(request, format), render)


class RankingController(Controller):
    path = "/v1/rankings"
    tags = ["rankings"]
    opt = {"permission": "rankings:read"}

    @get(
        "/districts",
        summary="Rank districts (one province, or nationwide)",
        description=REPORT_RESPONSES,
    )
    async def districts(
        self,
        request: Request[Any, Any, Any],
        state: State,
        province: Annotated[str | None, QueryParameter(max_length=8)] = None,
        year: YearQ = None,
        as_of: AsOfQ = None,
        indicator: IndicatorQ = COMPOSITE,
        basis: BasisQ = "latest",
        format: FormatQ = None,
    ) -> Response[Any]:
        """Standard competition ranking (1, 2, 2, 4); districts without data last, as
        ``no_data``, never as zero. A region coordinator sees their regions' districts."""
        me = caller(request)
        province = province or _default_province(me)
        if province is None:
            if not await authz.national_reports(state.pool, me):
                raise NotFound("Nationwide rankings are outside your scope; pass ?province=.")
        else:
            await _ranking_province(state.pool, me, province)
        period = resolve_period(year, as_of, local_today(state.settings))
        versions = await versions_of(state, [province or "ID"])
        key = [
            "rank-d",
            province,
            period.as_of,
            period.year,
            indicator,
            basis,
            view_key(me),
            versions,
        ]

        async def render() -> tuple[Any, CsvRows]:
            async with state.pool.acquire() as db:
                ctx = await context_for(
                    db, state.settings, period, basis, indicator, kept_of(state)
                )
                districts = await districts_of(db, ctx, province)
                if me.role == "region_coordinator":
                    mine = await authz.coordinated_districts(db, me, period.year)
                    districts = [d for d in districts if d["code"] in mine]
                rows, counts = await rank_districts(db, ctx, districts, indicator)
            doc = Ranking(
                kind="districts",
                province=province,
                method=ctx.method(indicator),
                counts=counts,
                rows=rows,
            )
            return doc, lambda: rows_of(rows)

        return await _ranking_response(request, state, key, format, render)

    @get("/regions", summary="Rank a province's regions", description=REPORT_RESPONSES)
    async def regions(
        self,
        request: Request[Any, Any, Any],
        state: State,
        province: Annotated[str | None, QueryParameter(max_length=8)] = None,
        year: YearQ = None,
        as_of: AsOfQ = None,
        indicator: IndicatorQ = COMPOSITE,
        basis: BasisQ = "latest",
        format: FormatQ = None,
    ) -> Response[Any]:
        """Regions aggregated by population weight; a coordinator sees their own regions."""
        me = caller(request)
        province = province or _default_province(me)
        if province is None:
            raise ProvinceRequired("Pass ?province= (regions belong to a province).")
        await _ranking_province(state.pool, me, province)
        period = resolve_period(year, as_of, local_today(state.settings))
        versions = await versions_of(state, [province])
        key = [
            "rank-r",
            province,
            period.as_of,
            period.year,
            indicator,
            basis,
            view_key(me),
            versions,
        ]

        async def render() -> tuple[Any, CsvRows]:
            async with state.pool.acquire() as db:
                ctx = await context_for(
                    db, state.settings, period, basis, indicator, kept_of(state)
                )
                only = me.id if me.role == "region_coordinator" else None
                now = await region_results(db, ctx, province, only_coordinator=only)
                before = await region_results(
                    db, ctx, province, as_of=period.previous_as_of, only_coordinator=only
                )
            rows, counts = await rank_areas(now, before, indicator, ctx.bands)
            doc = Ranking(
                kind="regions",
                province=province,
                method=ctx.method(indicator),
                counts=counts,
                rows=rows,
            )
            return doc, lambda: rows_of(rows)

        return await _ranking_response(request, state, key, format, render)

    @get("/provinces", summary="Rank the provinces", description=REPORT_RESPONSES)
    async def provinces(
        self,
        request: Request[Any, Any, Any],
        state: State,
        year: YearQ = None,
        as_of: AsOfQ = None,
        indicator: IndicatorQ = COMPOSITE,
        basis: BasisQ = "latest",
        format: FormatQ = None,
    ) -> Response[Any]:
        """Provinces aggregated over their districts by population weight."""
        me = caller(request)
        if not await authz.national_reports(state.pool, me):
            raise NotFound("Nationwide rankings are outside your scope.")
        period = resolve_period(year, as_of, local_today(state.settings))
        versions = await versions_of(state, ["ID"])
        key = ["rank-p", period.as_of, period.year, indicator, basis, view_key(me), versions]

        async def render() -> tuple[Any, CsvRows]:
            async with state.pool.acquire() as db:
                ctx = await context_for(
                    db, state.settings, period, basis, indicator, kept_of(state)
                )
                nation, now = await national_results(db, ctx)
                before = await province_results(db, ctx, as_of=period.previous_as_of)
            rows, counts = await rank_areas(now, before, indicator, ctx.bands)
            aggregate = area_aggregate_out(nation, ctx.bands)
            doc = Ranking(
                kind="provinces",
                province=None,
                method=ctx.method(indicator),
                counts=counts,
                rows=rows,
                aggregate=aggregate,
            )
            # As a province card's CSV leads with the province: the nation first.
            return doc, lambda: [
                aggregate_row(aggregate, kind="nation"),
                *rows_of(rows, kind="province"),
            ]

        return await respond(request, cache_of(state), key, wants_csv(request, format), render)


def _default_province(principal: Principal) -> str | None:
    if principal.role in ("province_head", "province_monitor", "region_coordinator"):
        return principal.area_code
    return None


async def _ranking_province(pool: asyncpg.Pool, principal: Principal, province: str) -> None:
    kind = await scope_db.area_kind(pool, province)
    visible = kind == "province" and (
        await authz.province_report_visible(pool, principal, province)
        or (principal.role == "region_coordinator" and principal.area_code == province)
    )
    if not visible:
        raise NotFound(f"No province {province!r} in your scope.")


SCHEMAS = {
    "district-scorecard.v1.json": DistrictScorecard,
    "province-scorecard.v1.json": ProvinceScorecard,
    "ranking.v1.json": Ranking,
}


@get(
    "/v1/schemas/{name:str}",
    opt={"permission": "public"},
    summary="JSON Schemas of the scorecard and ranking documents",
    tags=["scorecards"],
    media_type="application/schema+json",
)
async def json_schema(name: FromPath[str]) -> Response[bytes]:
    """Stable, versioned URLs: district-scorecard.v1.json, province-scorecard.v1.json,
    ranking.v1.json."""
    model = SCHEMAS.get(name)
    if model is None:
        raise NotFound(f"No schema {name!r}; known: {', '.join(sorted(SCHEMAS))}.")
    schema = msgspec.json.schema(model)
    schema["$id"] = f"/v1/schemas/{name}"
    return Response(
        msgspec.json.encode(schema),
        media_type="application/schema+json",
        headers={"Cache-Control": "public, max-age=86400"},
    )
