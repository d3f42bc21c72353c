"""The target each district is scored against on a date: its own active agreement's,
else its province's, read once per year and cutoff for every district asked about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from uuid import UUID

import asyncpg

from api.report_context import Context
from db import scorecards as data
from scorecards import Target


@dataclass(eq=False)
class TargetSet:
    source: str | None  # "district", "province" or None
    agreement_id: Any
    targets: dict[str, Target]
    number: int | None = None  # what stands for it in memo keys, given once (see ScoreMemo)


def target_of(row: data.TargetRow) -> Target:
    quarters = (row.q1, row.q2, row.q3, row.q4)
    return Target(
        annual=float(row.annual),
        quarterly=None
        if all(q is None for q in quarters)
        else tuple(None if q is None else float(q) for q in quarters),  # type: ignore[arg-type]
        weight=None if row.weight is None else float(row.weight),
    )


#: Per worker: (year, as-of date) → (agreements fingerprint, area → (agreement id, targets)).
_TARGETS: dict[tuple[int, date], tuple[UUID | None, dict[str, tuple[Any, dict[str, Target]]]]] = {}


def cutoff(ctx: Context, as_of: date) -> datetime:
    """The end of the as-of day, local time: an agreement signed that day applies to it."""
    local = timezone(timedelta(hours=ctx.settings.utc_offset_hours))
    return datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=local)


async def year_targets(
    conn: asyncpg.Connection, ctx: Context, as_of: date
) -> tuple[UUID | None, dict[str, tuple[Any, dict[str, Target]]]]:
    """Province and district targets of the context's year in force at ``as_of``
    (``data.targets_in_force``), reread only when an agreement of that year was written
    since (``agreements_fingerprint``)."""
    year = ctx.period.year
    if year in ctx.fingerprints:
        fingerprint = ctx.fingerprints[year]
    else:
        fingerprint = ctx.fingerprints[year] = await data.agreements_fingerprint(conn, year)
    cached = _TARGETS.get((year, as_of))
    if cached is not None and cached[0] == fingerprint:
        return cached
    rows = await data.targets_in_force(
        conn, year, cutoff(ctx, as_of), ["province_district", "national_province"]
    )
    by_area: dict[str, tuple[Any, dict[str, Target]]] = {}
    for row in rows:
        entry = by_area.setdefault(row.area_code, (row.agreement_id, {}))
        entry[1][row.indicator_code] = target_of(row)
    if len(_TARGETS) >= 16:
        _TARGETS.pop(next(iter(_TARGETS)))
    _TARGETS[(year, as_of)] = (fingerprint, by_area)
    return fingerprint, by_area


#: Per worker: (year, as-of date, agreements fingerprint, districts) → each district's
#: target set, shared by every request until an agreement of the year changes (never
#: modified).
_DISTRICT_TARGETS: dict[tuple[int, date, UUID | None, tuple[str, ...]], dict[str, TargetSet]] = {}


async def district_targets(
    conn: asyncpg.Connection, ctx: Context, districts: Sequence[asyncpg.Record], as_of: date
) -> dict[str, TargetSet]:
    """Each district's targets at ``as_of``: its own agreement's, else its province's."""
    fingerprint, by_area = await year_targets(conn, ctx, as_of)
    key = (ctx.period.year, as_of, fingerprint, tuple(d["code"] for d in districts))
    found = _DISTRICT_TARGETS.get(key)
    if found is not None:
        return found
    out = {}
    for d in districts:
        own = by_area.get(d["code"])
        parent = by_area.get(d["parent_code"])
        if own is not None:
            out[d["code"]] = TargetSet("district", own[0], own[1])
        elif parent is not None:
            out[d["code"]] = TargetSet("province", parent[0], parent[1])
        else:
            out[d["code"]] = TargetSet(None, None, {})
    if len(_DISTRICT_TARGETS) >= 16:
        del _DISTRICT_TARGETS[next(iter(_DISTRICT_TARGETS))]
    _DISTRICT_TARGETS[key] = out
    return out
