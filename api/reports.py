"""Scorecards and rankings: gather counts and targets, let ``scorecards`` do the numbers.

Every district is scored the same way whichever document shows it: the latest
counting value per indicator (basis ``latest``: not returned, not superseded; basis
``accepted``: accepted by a reviewer), against the target that applies on ``as_of``
(the quarterly milestone of that quarter, else the annual target) of the district's
active agreement, else its province's. Aggregates (regions, provinces) are
population-weighted sums of counts, never means of percentages.

This module makes the documents the routes answer with; the parts they are made of live
beside it: the request's context (``api.report_context``), targets
(``api.report_targets``), district scores (``api.report_scores``), their shapes
(``api.report_shapes``), aggregates (``api.report_aggregates``) and the projection
(``api.report_projection``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg

from api.bands import Bands
from api.report_aggregates import (
    AreaResult,
    aggregate_area,
    area_aggregate_out,
    province_weights,
    weights_in,
)
from api.report_context import COMPOSITE, NATION, Context
from api.report_projection import projection_for
from api.report_scores import (
    SCORES,
    DistrictResult,
    ScoreMemo,
    district_score,
    districts_of,
    remember,
    score_district,
    score_districts,
    score_only,
    values_on_days,
)
from api.report_shapes import (
    Scored,
    composite_out,
    composite_weights,
    district_scored,
    indicator_row,
    ranking_rows,
)
from api.report_targets import TargetSet, cutoff, district_targets, target_of, year_targets
from api.schemas.scorecards import (
    AreaRef,
    Counts,
    DistrictScorecard,
    DivisionCard,
    IndicatorRow,
    ProvinceScorecard,
    RankingRow,
)
from db import areas as area_db
from db import scorecards as data


async def district_card(
    conn: asyncpg.Connection, ctx: Context, district: asyncpg.Record, *, only_division: Any = None
) -> DistrictScorecard:
    """One district: its indicators (with trend and projection) and a card per division.

    With ``only_division`` (a division head's view) the card holds that division's card
    alone: the district office's own figures come from reports the division head may
    not read, so they are left out, not just the other divisions (found by review)."""
    rows: list[IndicatorRow] = []
    composite_result = None
    if only_division is None:
        rows, composite_result = await _district_rows(conn, ctx, district)
    divisions = []
    for division in await data.division_targets(
        conn, ctx.period.year, district["code"], cutoff(ctx, ctx.period.as_of)
    ):
        if only_division is not None and division["id"] != only_division:
            continue
        values = await data.latest_values(
            conn,
            [district["code"]],
            list(ctx.indicators),
            as_of=ctx.period.as_of,
            since=ctx.period.since,
            basis=ctx.basis,
            division_id=division["id"],
        )
        target_set = TargetSet(
            "division" if division["targets"] else None,
            division["agreement_id"],
            {t.indicator_code: target_of(t) for t in division["targets"]},
        )
        result = score_district(ctx, district, values, target_set)
        divisions.append(
            DivisionCard(
                division_id=division["id"],
                code=division["code"],
                name=division["name"],
                indicators=[indicator_row(i, bands=ctx.bands) for i in result.indicators.values()],
                composite=composite_out(result.composite, ctx.bands),
            )
        )
    return DistrictScorecard(
        district=AreaRef(
            code=district["code"], name=district["name"], parent_code=district["parent_code"]
        ),
        method=ctx.method(COMPOSITE),
        indicators=rows,
        composite=composite_out(composite_result, ctx.bands),
        divisions=divisions,
    )


async def _district_rows(
    conn: asyncpg.Connection, ctx: Context, district: asyncpg.Record
) -> tuple[list[IndicatorRow], Any]:
    """The district office's own indicators (with their trend and projection) and its
    composite."""
    targets = await district_targets(conn, ctx, [district], ctx.period.as_of)
    now = (await score_districts(conn, ctx, [district], targets=targets))[district["code"]]
    before = (await score_districts(conn, ctx, [district], as_of=ctx.period.previous_as_of))[
        district["code"]
    ]
    rows = []
    for code, item in now.indicators.items():
        target = targets[district["code"]].targets.get(code)
        rows.append(
            indicator_row(
                item,
                bands=ctx.bands,
                previous=before.indicators.get(code),
                previous_as_of=ctx.period.previous_as_of,
                projection=await projection_for(conn, ctx, district["code"], item, target),
            )
        )
    return rows, now.composite


async def rank_districts(
    conn: asyncpg.Connection,
    ctx: Context,
    districts: Sequence[asyncpg.Record],
    indicator: str,
) -> tuple[list[RankingRow], Counts]:
    targets = await district_targets(conn, ctx, districts, ctx.period.as_of)
    before = ctx.period.previous_as_of
    targets_before = await district_targets(conn, ctx, districts, before)
    memo = ScoreMemo(ctx, districts)  # before the values are read
    now_values, prev_values = await values_on_days(conn, ctx, districts, [ctx.period.as_of, before])
    now = await score_districts(conn, ctx, districts, targets=targets, values=now_values, memo=memo)
    previous = {}
    for d in districts:
        code = d["code"]
        then = targets_before[code]
        key = ("score", before, indicator, *memo.key(d, prev_values, then))
        if key not in SCORES:
            remember(key, score_only(ctx, code, prev_values, then, indicator, before))
        previous[code] = SCORES[key]
    return ranking_rows(district_scored(now.values(), indicator), previous, ctx.bands)


def _areas_scored(areas: Sequence[AreaResult], indicator: str) -> list[Scored]:
    return [
        Scored(
            a.code,
            a.name,
            a.score(indicator),
            a.data_for(indicator),
            a.brief(),
            composite_weights(a.composite) if indicator == COMPOSITE else None,
        )
        for a in areas
    ]


async def region_results(
    conn: asyncpg.Connection,
    ctx: Context,
    province: str,
    *,
    as_of: date | None = None,
    only_coordinator: Any = None,
) -> list[AreaResult]:
    """Each region of the province-year, aggregated over its member districts."""
    districts = await districts_of(conn, ctx, province)
    results = await score_districts(conn, ctx, districts, as_of=as_of)
    weights = await province_weights(conn, ctx, province, as_of or ctx.period.as_of)
    out = []
    for region in await data.region_members(conn, province, ctx.period.year):
        if only_coordinator is not None and region["coordinator_id"] != only_coordinator:
            continue
        members = [results[c] for c in region["districts"] if c in results]
        out.append(aggregate_area(ctx, str(region["id"]), region["name"], members, weights))
    return out


async def province_results(
    conn: asyncpg.Connection, ctx: Context, *, as_of: date | None = None
) -> list[AreaResult]:
    """Every province, aggregated over all its districts."""
    return (await national_results(conn, ctx, as_of=as_of))[1]


async def national_results(
    conn: asyncpg.Connection, ctx: Context, *, as_of: date | None = None
) -> tuple[AreaResult, list[AreaResult]]:
    """The nation aggregated over every district (DESIGN: region, province, nation), and
    every province over its own; the nation's composite weighs every indicator with a
    target alike (no agreement sets national weights)."""
    districts = await districts_of(conn, ctx, None)
    results = await score_districts(conn, ctx, districts, as_of=as_of)
    names = await area_db.names_of_kind(conn, ["province", "country"])
    by_province: dict[str, list[DistrictResult]] = {}
    for r in results.values():
        by_province.setdefault(r.parent_code, []).append(r)
    _, by_area = await year_targets(conn, ctx, as_of or ctx.period.as_of)
    nation = aggregate_area(ctx, NATION, names.pop(NATION, "Indonesia"), list(results.values()))
    provinces = [
        aggregate_area(ctx, code, names[code], by_province.get(code, []), weights_in(by_area, code))
        for code in sorted(names)
    ]
    return nation, provinces


async def rank_areas(
    now: list[AreaResult], before: list[AreaResult], indicator: str, bands: Bands
) -> tuple[list[RankingRow], Counts]:
    previous = {a.code: a.score(indicator) for a in before}
    return ranking_rows(_areas_scored(now, indicator), previous, bands)


async def province_card(
    conn: asyncpg.Connection, ctx: Context, province: asyncpg.Record
) -> ProvinceScorecard:
    districts = await districts_of(conn, ctx, province["code"])
    now = await score_districts(conn, ctx, districts)
    before = await score_districts(conn, ctx, districts, as_of=ctx.period.previous_as_of)
    previous = {code: district_score(r, COMPOSITE) for code, r in before.items()}
    district_rows, _ = ranking_rows(district_scored(now.values(), COMPOSITE), previous, ctx.bands)
    weights = await province_weights(conn, ctx, province["code"], ctx.period.as_of)
    whole = aggregate_area(ctx, province["code"], province["name"], list(now.values()), weights)
    regions_now = await region_results(conn, ctx, province["code"])
    regions_before = await region_results(
        conn, ctx, province["code"], as_of=ctx.period.previous_as_of
    )
    region_rows, _ = await rank_areas(regions_now, regions_before, COMPOSITE, ctx.bands)
    return ProvinceScorecard(
        province=AreaRef(code=province["code"], name=province["name"], parent_code="ID"),
        method=ctx.method(COMPOSITE),
        aggregate=area_aggregate_out(whole, ctx.bands),
        districts=district_rows,
        regions=region_rows,
    )
