"""Scorecards and rankings: gather counts and targets, let ``scorecards`` do the numbers.

Every district is scored the same way whichever document shows it: the latest
counting value per indicator (basis ``latest``: not returned, not superseded; basis
``accepted``: accepted by a reviewer), against the target that applies on ``as_of``
(the quarterly milestone of that quarter, else the annual target) of the district's
active agreement, else its province's. Aggregates (regions, provinces) are
population-weighted sums of counts, never means of percentages.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from uuid import UUID

import asyncpg

from api.bands import Bands, bands_for
from api.errors import ApiError
from api.kept_values import KeptValues, read_values_at
from api.schemas.scorecards import (
    AggregateRow,
    AreaAggregate,
    AreaRef,
    Basis,
    CompositeOut,
    Counts,
    DistrictScorecard,
    DivisionCard,
    IndicatorBrief,
    IndicatorRow,
    Method,
    ProjectionOut,
    Provenance,
    ProvinceScorecard,
    RankingRow,
    Trend,
)
from api.settings import Settings
from db import areas as area_db
from db import indicators as indicator_db
from db import scorecards as data
from scorecards import (
    AggregateMember,
    CompositePart,
    Indicator,
    IndicatorScore,
    Measurement,
    ProjectionThresholds,
    RankEntry,
    Snapshot,
    Target,
    achievement_of_counts,
    aggregate,
    band_for,
    composite,
    coverage,
    project,
    rank,
    score_indicator,
    target_on,
)

COMPOSITE = "composite"
#: The country's area code: the root of every area.
NATION = "ID"


class BadPeriod(ApiError):
    status_code = 400
    slug = "invalid-period"
    title = "Invalid period"


class UnknownIndicator(ApiError):
    status_code = 400
    slug = "unknown-indicator"
    title = "Unknown indicator"


@dataclass(frozen=True)
class Period:
    year: int
    as_of: date
    previous_as_of: date
    since: date


def resolve_period(year: int | None, as_of: date | None, today: date) -> Period:
    """``as_of`` defaults to today (or 31 December of a past ``year``); both must agree.

    The previous period, for trends and rank changes, ends on the last day of the
    month before ``as_of``'s.
    """
    if as_of is None:
        as_of = today if year is None or year == today.year else date(year, 12, 31)
        if year is not None and year > today.year:
            as_of = date(year, 1, 1)
    if year is None:
        year = as_of.year
    if not 2000 <= year <= 2100:
        raise BadPeriod("year and as_of must lie between 2000 and 2100.", extra={"year": year})
    if as_of.year != year:
        raise BadPeriod(f"as_of {as_of} is not in {year}.", extra={"year": year})
    previous = as_of.replace(day=1) - timedelta(days=1)
    return Period(year=year, as_of=as_of, previous_as_of=previous, since=date(year, 1, 1))


@dataclass
class Context:
    period: Period
    basis: Basis
    indicators: dict[str, Indicator]
    settings: Settings
    kept: KeptValues | None = None  # the worker's copy of kept values, if it has one
    #: The agreements' fingerprint of each year, read once per report: a province card
    #: looks up targets for each of its parts, and each read it again.
    fingerprints: dict[int, UUID | None] = field(default_factory=dict)

    @property
    def bands(self) -> Bands:
        return bands_for(self.settings)

    def method(self, indicator: str) -> Method:
        return Method(
            indicator=indicator,
            bands=self.bands.described(),
            basis=self.basis,
            as_of=self.period.as_of,
            previous_as_of=self.period.previous_as_of,
            year=self.period.year,
            caps={code: i.cap for code, i in self.indicators.items()},
            generated_at=datetime.now(UTC),
        )


async def context(
    conn: asyncpg.Connection,
    settings: Settings,
    *,
    year: int | None,
    as_of: date | None,
    basis: Basis,
    indicator: str,
    today: date,
    kept: KeptValues | None = None,
) -> Context:
    catalogue = {
        row.code: Indicator(code=row.code, polarity=row.polarity, cap=row.cap, unit=row.unit)  # type: ignore[arg-type]
        for row in await indicator_db.list_indicators(conn)
    }
    if indicator != COMPOSITE and indicator not in catalogue:
        raise UnknownIndicator(
            f"indicator must be 'composite' or one of {', '.join(sorted(catalogue))}.",
            extra={"indicator": indicator},
        )
    return Context(resolve_period(year, as_of, today), basis, catalogue, settings, kept)


async def context_for(
    conn: asyncpg.Connection,
    settings: Settings,
    period: Period,
    basis: Basis,
    indicator: str,
    kept: KeptValues | None = None,
) -> Context:
    """The context for an already resolved period (what every report route builds)."""
    return await context(
        conn,
        settings,
        year=period.year,
        as_of=period.as_of,
        basis=basis,
        indicator=indicator,
        today=period.as_of,
        kept=kept,
    )


# -- targets -------------------------------------------------------------------------------


@dataclass(eq=False)
class TargetSet:
    source: str | None  # "district", "province" or None
    agreement_id: Any
    targets: dict[str, Target]
    number: int | None = None  # what stands for it in memo keys, given once (see _Memo)


def _target(row: data.TargetRow) -> Target:
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


def _cutoff(ctx: Context, as_of: date) -> datetime:
    """The end of the as-of day, local time: an agreement signed that day applies to it."""
    local = timezone(timedelta(hours=ctx.settings.utc_offset_hours))
    return datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=local)


async def _year_targets(
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
        conn, year, _cutoff(ctx, as_of), ["province_district", "national_province"]
    )
    by_area: dict[str, tuple[Any, dict[str, Target]]] = {}
    for row in rows:
        entry = by_area.setdefault(row.area_code, (row.agreement_id, {}))
        entry[1][row.indicator_code] = _target(row)
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
    fingerprint, by_area = await _year_targets(conn, ctx, as_of)
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


# -- district scores -----------------------------------------------------------------------


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
    memo: _Memo | None = None,
) -> dict[str, DistrictResult]:
    """Score every district at ``as_of`` (default: the context's)."""
    when = as_of or ctx.period.as_of
    memo = memo or _Memo(ctx, districts)  # before the values are read
    if targets is None:
        targets = await district_targets(conn, ctx, districts, when)
    if values is None:
        values = await values_on(conn, ctx, districts, when)
    shifted = ctx if when == ctx.period.as_of else _at(ctx, when)
    out = {}
    for d in districts:
        key = ("card", when, *memo.key(d, values, targets[d["code"]]))
        result = _SCORES.get(key)
        if result is None:
            result = score_district(shifted, d, values, targets[d["code"]])
            _remember(key, result)
        out[d["code"]] = result
    return out


# District scores by everything they are computed from (the district, the date, the
# catalogue, its targets and its values), kept per worker: after one district reports,
# a national ranking rescores that district instead of all 514. A value stands in the
# key as its submission, status and flags, so a review or a correction is a new key.
# Results are shared between requests and never modified after they are made (but for
# the ``brief`` they carry for rankings, made from them once).
_SCORES: dict[tuple[Any, ...], Any] = {}
_SCORES_MAX = 16_384


def _remember(key: tuple[Any, ...], result: Any) -> None:
    if len(_SCORES) >= _SCORES_MAX:
        for old in list(itertools.islice(_SCORES, _SCORES_MAX // 8)):
            del _SCORES[old]
    _SCORES[key] = result


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


class _Memo:
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


# -- shaping -------------------------------------------------------------------------------


def composite_out(result: Any, bands: Bands) -> CompositeOut:
    if result is None:
        return CompositeOut(
            score=None, band=None, predikat=None, level=None, included=[], no_data=[], weights={}
        )
    return CompositeOut(
        score=result.score,
        band=band_for(result.score, bands.traffic_light),
        predikat=band_for(result.score, bands.sakip),
        level=band_for(result.score, bands.dukcapil_level),
        included=list(result.included),
        no_data=list(result.no_data),
        weights=dict(result.weights),
    )


def indicator_row(
    item: IndicatorResult,
    *,
    bands: Bands,
    previous: IndicatorResult | None = None,
    previous_as_of: date | None = None,
    projection: ProjectionOut | None = None,
) -> IndicatorRow:
    score, value = item.score, item.value
    status = "no_target" if score is None else score.status
    if value is None:
        status = "no_data"
    trend = None
    if previous_as_of is not None:
        before = None if previous is None else previous.coverage
        trend = Trend(
            previous_as_of=previous_as_of,
            previous_coverage=before,
            change_points=None
            if before is None or item.coverage is None
            else item.coverage - before,
        )
    return IndicatorRow(
        indicator=item.code,
        status=status,  # type: ignore[arg-type]
        numerator=None if value is None else value.numerator,
        denominator=None if value is None else value.denominator,
        coverage=item.coverage,
        coverage_over_100=item.coverage_over_100,
        target=None if score is None else score.target,
        target_source=item.target_source,
        achievement_raw=None if score is None else score.raw,
        achievement_capped=None if score is None else score.capped,
        band=None if score is None else band_for(score.capped, bands.traffic_light),
        weight=None if score is None else score.weight,
        flags=[] if value is None else list(value.flags),
        provenance=None
        if value is None
        else Provenance(
            submission_id=value.submission_id,
            as_of=value.as_of,
            status=value.status,
            reviewed=value.status != "received",
        ),
        trend=trend,
        projection=projection,
    )


def _brief(result: DistrictResult) -> dict[str, IndicatorBrief]:
    return {
        code: IndicatorBrief(
            coverage=item.coverage,
            coverage_over_100=item.coverage_over_100,
            target=None if item.score is None else item.score.target,
            achievement=None if item.score is None else item.score.raw,
            members=1,
            with_data=int(item.value is not None),
            no_data=int(item.value is None),
        )
        for code, item in result.indicators.items()
    }


@dataclass
class Scored:
    """Something to rank: a district, region or province with its score."""

    code: str
    name: str
    score: float | None
    has_data: bool
    brief: dict[str, IndicatorBrief]


def ranking_rows(
    current: Sequence[Scored], previous: dict[str, float | None], bands: Bands
) -> tuple[list[RankingRow], Counts]:
    """Rank by score; previous ranks come from the same ranking at the previous date.

    Rows without data come last (``no_data``), then rows with data but no target
    (``no_target``); neither is ever ranked as a zero.
    """
    prev_rows = rank([RankEntry(code=c, score=s) for c, s in sorted(previous.items())])
    prev_rank = {r.code: r.rank for r in prev_rows}
    ranked = rank([RankEntry(code=s.code, score=s.score) for s in current], previous=prev_rank)
    by_code = {s.code: s for s in current}
    rows: list[RankingRow] = []
    for r in ranked:
        item = by_code[r.code]
        status = (
            "ranked" if r.score is not None else "no_data" if not item.has_data else "no_target"
        )
        rows.append(
            RankingRow(
                code=r.code,
                name=item.name,
                status=status,  # type: ignore[arg-type]
                rank=r.rank,
                previous_rank=r.previous_rank,
                change=r.change,
                score=r.score,
                band=band_for(r.score, bands.traffic_light),
                predikat=band_for(r.score, bands.sakip),
                indicators=item.brief,
            )
        )
    order = {"ranked": 0, "no_data": 1, "no_target": 2}
    rows.sort(key=lambda row: (order[row.status], row.rank or 0, row.code))
    counts = Counts(
        rows=len(rows),
        ranked=sum(1 for r in rows if r.status == "ranked"),
        no_data=sum(1 for r in rows if r.status == "no_data"),
        no_target=sum(1 for r in rows if r.status == "no_target"),
    )
    return rows, counts


def _has_data(result: DistrictResult, indicator: str) -> bool:
    """Data for what is ranked: for the composite, any indicator the district has a
    target for (any at all when it has none), else that indicator. A district with
    targets that reported only on other indicators has no data to be scored on, as its
    scorecard says; it was listed as having no target."""
    if indicator == COMPOSITE:
        targeted = [i for i in result.indicators.values() if i.target_source is not None]
        if targeted:
            return any(i.value is not None for i in targeted)
        return result.has_data
    item = result.indicators.get(indicator)
    return item is not None and item.value is not None


def district_scored(results: Iterable[DistrictResult], indicator: str) -> list[Scored]:
    scored = []
    for r in results:
        if r.brief is None:  # results are remembered across requests: build it once
            r.brief = _brief(r)
        scored.append(
            Scored(r.code, r.name, district_score(r, indicator), _has_data(r, indicator), r.brief)
        )
    return scored


# -- aggregates ----------------------------------------------------------------------------


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
    _, by_area = await _year_targets(conn, ctx, as_of)
    return _weights_in(by_area, province)


def _weights_in(
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


# -- projection ----------------------------------------------------------------------------


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


# -- documents -----------------------------------------------------------------------------


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
        conn, ctx.period.year, district["code"], _cutoff(ctx, ctx.period.as_of)
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
            {t.indicator_code: _target(t) for t in division["targets"]},
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
    memo = _Memo(ctx, districts)  # before the values are read
    now_values, prev_values = await values_on_days(conn, ctx, districts, [ctx.period.as_of, before])
    now = await score_districts(conn, ctx, districts, targets=targets, values=now_values, memo=memo)
    previous = {}
    for d in districts:
        code = d["code"]
        then = targets_before[code]
        key = ("score", before, indicator, *memo.key(d, prev_values, then))
        if key not in _SCORES:
            _remember(key, score_only(ctx, code, prev_values, then, indicator, before))
        previous[code] = _SCORES[key]
    return ranking_rows(district_scored(now.values(), indicator), previous, ctx.bands)


def _areas_scored(areas: Sequence[AreaResult], indicator: str) -> list[Scored]:
    return [
        Scored(a.code, a.name, a.score(indicator), a.data_for(indicator), a.brief()) for a in areas
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
    _, by_area = await _year_targets(conn, ctx, as_of or ctx.period.as_of)
    nation = aggregate_area(ctx, NATION, names.pop(NATION, "Indonesia"), list(results.values()))
    provinces = [
        aggregate_area(
            ctx, code, names[code], by_province.get(code, []), _weights_in(by_area, code)
        )
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
