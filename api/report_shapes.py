"""Scores shaped as the API answers them: indicator rows, composites, ranking rows with
their previous rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from api.bands import Bands
from api.report_context import COMPOSITE
from api.report_scores import DistrictResult, IndicatorResult, district_score
from api.schemas.scorecards import (
    CompositeOut,
    Counts,
    IndicatorBrief,
    IndicatorRow,
    ProjectionOut,
    Provenance,
    RankingRow,
    Trend,
)
from scorecards import (
    RankEntry,
    band_for,
    rank,
)


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
    #: The composite's weights (a composite ranking only).
    weights: dict[str, float] | None = None


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
                weights=item.weights,
            )
        )
    order = {"ranked": 0, "no_target": 1, "no_data": 2}  # rows without data come last
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


def composite_weights(result: Any) -> dict[str, float]:
    """A composite's normalised weights; none where no composite was made (no data)."""
    return {} if result is None else dict(result.weights)


def district_scored(results: Iterable[DistrictResult], indicator: str) -> list[Scored]:
    scored = []
    for r in results:
        if r.brief is None:  # results are remembered across requests: build it once
            r.brief = _brief(r)
        weights = composite_weights(r.composite) if indicator == COMPOSITE else None
        scored.append(
            Scored(
                r.code,
                r.name,
                district_score(r, indicator),
                _has_data(r, indicator),
                r.brief,
                weights,
            )
        )
    return scored
