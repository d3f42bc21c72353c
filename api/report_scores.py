"""District scores: counts and targets in, ``scorecards`` does the numbers. Scores are
remembered per worker by everything they are computed from, so a national ranking after
one district reports rescores that district, not all 514.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg

from api.kept_values import read_values_at
from api.report_context import COMPOSITE, Context, Period
from api.report_targets import TargetSet, district_targets
from api.schemas.scorecards import IndicatorBrief
from db import scorecards as data
from scorecards import (
    CompositePart,
    IndicatorScore,
    Measurement,
    achievement_of_counts,
    composite,
    coverage,
    score_indicator,
    target_on,
)


@dataclass
class IndicatorResult:
    code: str
    score: IndicatorScore | None  # None: no target
    coverage: float | None
    value: data.Value | None
    target_source: str | None
    #: A percent above 100 (an indicator in another unit has no such ceiling).
    coverage_over_100: bool = False


@dataclass
class DistrictResult:
    code: str
    name: str
    population: int
    parent_code: str
    indicators: dict[str, IndicatorResult] = field(default_factory=dict)
    composite_score: float | None = None
    composite: Any = None
    has_data: bool = False
    has_target: bool = False
    brief: dict[str, IndicatorBrief] | None = None  # made once, when first ranked


def score_district(
    ctx: Context,
    district: asyncpg.Record,
    values: dict[tuple[str, str], data.Value],
    targets: TargetSet,
) -> DistrictResult:
    result = DistrictResult(
        code=district["code"],
        name=district["name"],
        population=int(district["population"]),
        parent_code=district["parent_code"],
    )
    parts = []
    for code, indicator in ctx.indicators.items():
        value = values.get((district["code"], code))
        measurement = (
            None
            if value is None
            else Measurement(numerator=value.numerator, denominator=value.denominator)
        )
        cov = (
            None if value is None else coverage(value.numerator, value.denominator, indicator.unit)
        )
        target = targets.targets.get(code)
        score = (
            None
            if target is None
            else score_indicator(indicator, target, measurement, ctx.period.as_of)
        )
        result.indicators[code] = IndicatorResult(
            code,
            score,
            cov,
            value,
            targets.source if target else None,
            coverage_over_100=indicator.unit == "percent" and cov is not None and cov > 100,
        )
        result.has_data = result.has_data or value is not None
        if score is not None:
            parts.append(score)
    result.has_target = bool(parts)
    if parts:
        result.composite = composite(parts)
        result.composite_score = result.composite.score
    return result


def district_score(result: DistrictResult, indicator: str) -> float | None:
    if indicator == COMPOSITE:
        return result.composite_score
    item = result.indicators.get(indicator)
    return None if item is None or item.score is None else item.score.raw


async def score_districts(
    conn: asyncpg.Connection,
    ctx: Context,
    districts: Sequence[asyncpg.Record],
    *,
    as_of: date | None = None,
    targets: dict[str, TargetSet] | None = None,
    values: dict[tuple[str, str], data.Value] | None = None,
    memo: ScoreMemo | None = None,
) -> dict[str, DistrictResult]:
    """Score every district at ``as_of`` (default: the context's)."""
    when = as_of or ctx.period.as_of
    memo = memo or ScoreMemo(ctx, districts)  # before the values are read
    if targets is None:
        targets = await district_targets(conn, ctx, districts, when)
    if values is None:
        values = await values_on(conn, ctx, districts, when)
    shifted = ctx if when == ctx.period.as_of else _at(ctx, when)
    out = {}
    for d in districts:
        key = ("card", when, *memo.key(d, values, targets[d["code"]]))
        result = SCORES.get(key)
        if result is None:
            result = score_district(shifted, d, values, targets[d["code"]])
            remember(key, result)
        out[d["code"]] = result
    return out


# District scores by everything they are computed from (the district, the date, the
# catalogue, its targets and its values), kept per worker: after one district reports,
# a national ranking rescores that district instead of all 514. A value stands in the
# key as its submission, status and flags, so a review or a correction is a new key.
# Results are shared between requests and never modified after they are made (but for
# the ``brief`` they carry for rankings, made from them once).
SCORES: dict[tuple[Any, ...], Any] = {}
_SCORES_MAX = 16_384


def remember(key: tuple[Any, ...], result: Any) -> None:
    if len(SCORES) >= _SCORES_MAX:
        for old in list(itertools.islice(SCORES, _SCORES_MAX // 8)):
            del SCORES[old]
    SCORES[key] = result


# Catalogues and target sets stand in keys as small numbers, so a key hashes quickly.
# Numbers are never reused (a cleared table hands out new ones), so a remembered score
# can never be found under the number of something else.
_INTERNED: dict[Any, int] = {}
_NUMBERS = itertools.count()


def _number(value: Any) -> int:
    found = _INTERNED.get(value)
    if found is None:
        if len(_INTERNED) >= 4096:
            _INTERNED.clear()
        found = _INTERNED[value] = next(_NUMBERS)
    return found


class ScoreMemo:
    """Builds memo keys for one request: the catalogue and each target set are numbered
    once, each district's part of the key is made once for both periods.

    While the worker's change feed is live, a district's values stand in the key as its
    data version, taken before the values are read (see ``api.kept_values``): cheaper
    than naming each value. Make the memo before reading the values it keys."""

    def __init__(self, ctx: Context, districts: Sequence[asyncpg.Record]) -> None:
        self.indicators = tuple(ctx.indicators)
        self.catalogue = _number((ctx.basis, tuple(ctx.indicators.values())))
        self._districts: dict[str, tuple[Any, ...]] = {}
        codes = [d["code"] for d in districts]
        tags = None if ctx.kept is None else ctx.kept.tags(codes)
        self._versions: dict[str, tuple[Any, ...]] | None = None
        if tags is not None:
            epoch, versions = tags
            since = ctx.period.since
            self._versions = {
                code: (since, epoch, version) for code, version in zip(codes, versions, strict=True)
            }

    def key(
        self,
        district: asyncpg.Record,
        values: dict[tuple[str, str], data.Value],
        targets: TargetSet,
    ) -> tuple[Any, ...]:
        code = district["code"]
        prefix = self._districts.get(code)
        if prefix is None:
            target_number = targets.number
            if target_number is None:  # the same set serves later requests: number it once
                target_number = targets.number = _number(
                    (targets.source, targets.agreement_id, tuple(sorted(targets.targets.items())))
                )
            prefix = (
                code,
                district["name"],
                district["population"],
                district["parent_code"],
                self.catalogue,
                target_number,
            )
            self._districts[code] = prefix
        if self._versions is not None:
            return (*prefix, *self._versions[code])
        # A stored value's counts never change (they are signed); its status and flags
        # do (reviews, corrections), so those stand for it with its submission.
        found = []
        for indicator in self.indicators:
            value = values.get((code, indicator))
            found.append(
                None if value is None else (value.submission_id, value.status, value.flags)
            )
        return (*prefix, *found)


async def districts_of(
    conn: asyncpg.Connection, ctx: Context, province: str | None
) -> list[asyncpg.Record]:
    """Districts of a province (or all), from the worker's copy where it has one."""
    if ctx.kept is not None:
        return await ctx.kept.districts(conn, province)
    return await data.districts(conn, province)


async def values_on_days(
    conn: asyncpg.Connection,
    ctx: Context,
    districts: Sequence[asyncpg.Record],
    days: Sequence[date],
) -> list[dict[tuple[str, str], data.Value]]:
    """Latest counting values at each day (none before the period's year began), from
    the worker's copy where it has one."""
    codes = [d["code"] for d in districts]
    live = [day for day in days if day >= ctx.period.since]
    args = (conn, codes, list(ctx.indicators))
    options: dict[str, Any] = {"basis": ctx.basis, "since": ctx.period.since, "days": live}
    if ctx.kept is not None:
        found = await ctx.kept.values_at(*args, **options)
    else:
        found = await read_values_at(*args, **options)
    by_day = dict(zip(live, found, strict=True))
    return [by_day.get(day, {}) for day in days]


async def values_on(
    conn: asyncpg.Connection, ctx: Context, districts: Sequence[asyncpg.Record], when: date
) -> dict[tuple[str, str], data.Value]:
    """Latest counting values at ``when``."""
    return (await values_on_days(conn, ctx, districts, [when]))[0]


def score_only(
    ctx: Context,
    code: str,
    values: dict[tuple[str, str], data.Value],
    targets: TargetSet,
    indicator: str,
    on: date,
) -> float | None:
    """Just the ranking score of a district at ``on``: the same numbers as
    ``district_score(score_district(...))`` without building scorecard rows (used for the
    previous period, whose rows nobody reads)."""
    codes = ctx.indicators if indicator == COMPOSITE else [indicator]
    parts = []
    for indicator_code in codes:
        target = targets.targets.get(indicator_code)
        spec = ctx.indicators.get(indicator_code)
        if target is None or spec is None:
            continue
        value = values.get((code, indicator_code))
        result = (
            None
            if value is None
            else achievement_of_counts(
                spec, value.numerator, value.denominator, target_on(target, on)
            )
        )
        if indicator != COMPOSITE:
            return None if result is None else result.raw
        parts.append(
            CompositePart(
                code=indicator_code,
                capped=None if result is None else result.capped,
                weight=target.weight,
            )
        )
    return composite(parts).score if parts else None


def _at(ctx: Context, when: date) -> Context:
    period = Period(ctx.period.year, when, ctx.period.previous_as_of, ctx.period.since)
    # The same year: its agreements' fingerprint, once read, holds for this date too.
    return Context(period, ctx.basis, ctx.indicators, ctx.settings, fingerprints=ctx.fingerprints)
