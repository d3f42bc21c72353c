"""Whether a district will reach its year-end target at its current daily rate."""

from __future__ import annotations

from datetime import date

import asyncpg

from api.report_context import Context
from api.report_scores import IndicatorResult
from api.schemas.scorecards import ProjectionOut
from db import scorecards as data
from scorecards import (
    ProjectionThresholds,
    Snapshot,
    Target,
    project,
)


async def projection_for(
    conn: asyncpg.Connection,
    ctx: Context,
    district: str,
    item: IndicatorResult,
    target: Target | None,
) -> ProjectionOut | None:
    indicator = ctx.indicators.get(item.code)
    # The projection model counts holders up towards a share of the population; it says
    # nothing for an indicator where lower is better, nor for one that is already a rate
    # (a daily recording rate has no count to reach by 31 December).
    if (
        target is None
        or item.value is None
        or indicator is None
        or indicator.polarity != "higher"
        or indicator.unit != "percent"
    ):
        return None
    rows = await data.history(
        conn,
        district,
        item.code,
        as_of=ctx.period.as_of,
        since=ctx.period.since,
        basis=ctx.basis,
        limit=ctx.settings.projection_window_reports,
    )
    snapshots = [Snapshot(as_of=d, numerator=n, denominator=den) for d, n, den in rows]
    if not snapshots or snapshots[-1].denominator == 0:
        return None
    thresholds = ProjectionThresholds(
        on_track=ctx.settings.projection_on_track_ratio,
        at_risk=ctx.settings.projection_at_risk_ratio,
    )
    result = project(
        snapshots, target.annual, date(ctx.period.year, 12, 31), thresholds, on=ctx.period.as_of
    )
    return ProjectionOut(
        status=result.status,
        achieved_rate=result.achieved_rate,
        needed_rate=result.needed_rate,
        ratio=result.ratio,
        projected_date=result.projected_date,
        days_left=result.days_left,
    )
