"""Scorecard and ranking documents (JSON; CSV uses the same names, dotted for nesting)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

import msgspec

Basis = Literal["latest", "accepted"]
RowStatus = Literal["ranked", "no_data", "no_target"]
IndicatorStatus = Literal["ok", "no_data", "no_target"]


class Method(msgspec.Struct, kw_only=True):
    """How every number in the document was made, so it can be argued with."""

    indicator: str
    basis: Basis
    as_of: date
    previous_as_of: date
    year: int
    #: The band tables in use (settings ``KINERJA_BAND_*``), as configured.
    bands: dict[str, str] = msgspec.field(default_factory=dict)
    rank_method: str = "standard_competition"
    ties: str = "equal scores (rounded to 6 decimals) share a rank; listed by code"
    score: str = (
        "composite: weighted mean of capped achievements (agreement weights, else equal); "
        "one indicator: its raw achievement"
    )
    weights: str = (
        "a district's from its own agreement (else its province's), a region's or "
        "province's from the province's agreement with the ministry, else all equal; "
        "normalised over the indicators with data: rows[].weights, composite.weights"
    )
    achievement: str = (
        "coverage / target x 100 (higher is better); (2 - coverage / target) x 100 "
        "(lower is better)"
    )
    target_rule: str = (
        "the quarterly milestone of the quarter containing as_of, else the annual target; "
        "from the district's active agreement, else its province's"
    )
    aggregation: str = (
        "population-weighted: sum of numerators / sum of denominators; target = "
        "sum(target x denominator) / sum(denominator); members without data excluded "
        "and counted"
    )
    caps: dict[str, float]
    generated_at: datetime


class Provenance(msgspec.Struct, kw_only=True):
    submission_id: UUID
    as_of: date
    status: str
    reviewed: bool


class Trend(msgspec.Struct, kw_only=True):
    previous_as_of: date
    previous_coverage: float | None
    change_points: float | None


class ProjectionOut(msgspec.Struct, kw_only=True):
    status: str
    achieved_rate: float | None
    needed_rate: float | None
    ratio: float | None
    projected_date: date | None
    days_left: int


class IndicatorRow(msgspec.Struct, kw_only=True):
    indicator: str
    status: IndicatorStatus
    numerator: int | None
    denominator: int | None
    coverage: float | None
    coverage_over_100: bool
    target: float | None
    target_source: str | None
    achievement_raw: float | None
    achievement_capped: float | None
    band: str | None
    weight: float | None
    flags: list[str]
    provenance: Provenance | None
    trend: Trend | None
    projection: ProjectionOut | None


class CompositeOut(msgspec.Struct, kw_only=True):
    score: float | None
    band: str | None
    predikat: str | None
    level: str | None
    included: list[str]
    no_data: list[str]
    weights: dict[str, float]


class DivisionCard(msgspec.Struct, kw_only=True):
    division_id: UUID
    code: str
    name: str
    indicators: list[IndicatorRow]
    composite: CompositeOut


class AreaRef(msgspec.Struct, kw_only=True):
    code: str
    name: str
    parent_code: str | None


class DistrictScorecard(msgspec.Struct, kw_only=True):
    district: AreaRef
    method: Method
    indicators: list[IndicatorRow]
    composite: CompositeOut
    divisions: list[DivisionCard]


class AggregateRow(msgspec.Struct, kw_only=True):
    indicator: str
    numerator: int
    denominator: int
    coverage: float | None
    #: Kept and flagged, never clipped (DESIGN: people record where they live now).
    coverage_over_100: bool
    target: float | None
    achievement_raw: float | None
    achievement_capped: float | None
    band: str | None
    members: int
    with_data: int
    no_data: int


class IndicatorBrief(msgspec.Struct, kw_only=True):
    coverage: float | None
    coverage_over_100: bool
    target: float | None
    achievement: float | None
    #: The districts the row stands for (a district: itself), and how many of them have
    #: data for the indicator; those without are left out of the sums (DESIGN).
    members: int
    with_data: int
    no_data: int


class RankingRow(msgspec.Struct, kw_only=True):
    code: str
    name: str
    status: RowStatus
    rank: int | None
    previous_rank: int | None
    change: int | None
    score: float | None
    band: str | None
    predikat: str | None
    indicators: dict[str, IndicatorBrief]
    #: The weights the row's composite score used, normalised over the indicators it had
    #: data for (a composite ranking only; each area weighs as its own agreement says).
    weights: dict[str, float] | None = None


class Counts(msgspec.Struct, kw_only=True):
    rows: int
    ranked: int
    no_data: int
    no_target: int


class AreaAggregate(msgspec.Struct, kw_only=True):
    code: str
    name: str
    indicators: list[AggregateRow]
    composite: CompositeOut


class Ranking(msgspec.Struct, kw_only=True):
    kind: Literal["districts", "regions", "provinces"]
    province: str | None
    method: Method
    counts: Counts
    rows: list[RankingRow]
    #: The provinces ranking's nation, aggregated over every district; null otherwise.
    aggregate: AreaAggregate | None = None


class ProvinceScorecard(msgspec.Struct, kw_only=True):
    province: AreaRef
    method: Method
    aggregate: AreaAggregate
    districts: list[RankingRow]
    regions: list[RankingRow]
