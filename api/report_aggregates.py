"""Regions, provinces and the country as population-weighted sums of their districts'
counts, never means of percentages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from api.bands import Bands
from api.report_context import COMPOSITE, Context
from api.report_scores import DistrictResult
from api.report_shapes import composite_out
from api.report_targets import year_targets
from api.schemas.scorecards import (
    AggregateRow,
    AreaAggregate,
    IndicatorBrief,
)
from scorecards import (
    AggregateMember,
    CompositePart,
    Measurement,
    Target,
    aggregate,
    band_for,
    composite,
)


@dataclass
class AreaResult:
    code: str
    name: str
    rows: list[AggregateRow]
    composite: Any
    has_data: bool
    #: Data for the composite: on an indicator it weighs that a member has a target for
    #: (any data at all when there is none), as ``_has_data`` says of a district.
    composite_data: bool

    def score(self, indicator: str) -> float | None:
        if indicator == COMPOSITE:
            return None if self.composite is None else self.composite.score
        row = next((r for r in self.rows if r.indicator == indicator), None)
        return None if row is None else row.achievement_raw

    def data_for(self, indicator: str) -> bool:
        if indicator == COMPOSITE:
            return self.composite_data
        return any(r.with_data for r in self.rows if r.indicator == indicator)

    def brief(self) -> dict[str, IndicatorBrief]:
        return {
            r.indicator: IndicatorBrief(
                coverage=r.coverage,
                coverage_over_100=r.coverage_over_100,
                target=r.target,
                achievement=r.achievement_raw,
                members=r.members,
                with_data=r.with_data,
                no_data=r.no_data,
            )
            for r in self.rows
        }


async def province_weights(
    conn: asyncpg.Connection, ctx: Context, province: str, as_of: date
) -> dict[str, float] | None:
    """The indicator weights the province's agreement with the ministry in force at
    ``as_of`` sets, which its aggregate and its regions' composites use; None when it
    sets none."""
    _, by_area = await year_targets(conn, ctx, as_of)
    return weights_in(by_area, province)


def weights_in(
    by_area: dict[str, tuple[Any, dict[str, Target]]], province: str
) -> dict[str, float] | None:
    own = by_area.get(province)
    if own is None:
        return None
    weights = {code: t.weight for code, t in own[1].items() if t.weight is not None}
    return weights or None


def aggregate_area(
    ctx: Context,
    code: str,
    name: str,
    members: Sequence[DistrictResult],
    weights: dict[str, float] | None = None,
) -> AreaResult:
    """Population-weighted aggregate of members' counts and targets, per indicator.

    The composite weighs the indicators as ``weights`` does (``province_weights``),
    leaving out those it does not weigh, as a district's composite covers the indicators
    of its own agreement; with no weights, every indicator with a target counts equally.
    """
    rows: list[AggregateRow] = []
    parts = []
    targeted = targeted_data = False
    for indicator_code, indicator in ctx.indicators.items():
        agg_members = []
        in_composite = weights is None or indicator_code in weights
        for m in members:
            item = m.indicators[indicator_code]
            if item.target_source is not None and in_composite:
                targeted = True
                targeted_data = targeted_data or item.value is not None
            measurement = (
                None
                if item.value is None
                else Measurement(numerator=item.value.numerator, denominator=item.value.denominator)
            )
            agg_members.append(
                AggregateMember(
                    code=m.code,
                    measurement=measurement,
                    target=None if item.score is None else item.score.target,
                )
            )
        agg = aggregate(agg_members, indicator.unit, polarity=indicator.polarity, cap=indicator.cap)
        ach = agg.achievement
        rows.append(
            AggregateRow(
                indicator=indicator_code,
                numerator=agg.numerator,
                denominator=agg.denominator,
                coverage=agg.coverage,
                coverage_over_100=agg.coverage_over_100,
                target=agg.target,
                achievement_raw=None if ach is None else ach.raw,
                achievement_capped=None if ach is None else ach.capped,
                band=None if ach is None else band_for(ach.capped, ctx.bands.traffic_light),
                members=agg.members,
                with_data=agg.with_data,
                no_data=agg.no_data,
            )
        )
        if agg.target is not None and in_composite:
            parts.append(
                CompositePart(
                    code=indicator_code,
                    capped=None if ach is None else ach.capped,
                    weight=None if weights is None else weights[indicator_code],
                )
            )
    comp = composite(parts) if parts else None
    has_data = any(r.with_data for r in rows)
    return AreaResult(code, name, rows, comp, has_data, targeted_data if targeted else has_data)


def area_aggregate_out(area: AreaResult, bands: Bands) -> AreaAggregate:
    return AreaAggregate(
        code=area.code,
        name=area.name,
        indicators=area.rows,
        composite=composite_out(area.composite, bands),
    )
