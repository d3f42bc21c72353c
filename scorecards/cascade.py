"""Cascade gaps between agreement levels: pure checks over targets and populations.

The province promises the ministry a target; its districts promise the province
theirs; each district's divisions take on its indicators. These checks say where
that chain does not hold, so a province head sees the gap before the year ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Literal

import msgspec

from scorecards.aggregate import as_written, exact_weighted_target
from scorecards.models import Polarity

FindingCode = Literal[
    "district_target_below_province",
    "weighted_mean_below_province",
    "indicator_uncovered_by_divisions",
    "indicator_uncovered_by_district",
    "district_without_agreement",
]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One gap. ``area_code`` is where it shows; ``indicator`` when it is about one."""

    code: FindingCode
    area_code: str
    indicator: str | None = None
    target: float | None = None
    reference: float | None = None
    detail: str


class DistrictPlan(msgspec.Struct, frozen=True, kw_only=True):
    """A district's active targets (None: no active agreement) and its divisions' coverage.

    Attributes:
        code: District code.
        population: Weight for the province-level mean (area population).
        targets: Indicator → annual target of the active agreement, or None.
        division_indicators: Indicators that at least one active division agreement sets.
    """

    code: str
    population: int
    targets: Mapping[str, float] | None
    division_indicators: frozenset[str] = frozenset()


def _toward_gap(value: Fraction, places: int, polarity: Polarity) -> float:
    """``value`` rounded to ``places`` toward the gap (down when higher is better), so a
    mean a hair short of the province's target never shows as equal to it: 29.99997
    against 30 is 29.9999 (and 29.99 in words), not 30.0."""
    scaled = value * 10**places
    whole = math.floor(scaled) if polarity == "higher" else math.ceil(scaled)
    return whole / 10**places


def _falls_short(value: Fraction, reference: float, polarity: Polarity) -> bool:
    """Compared exactly, with targets as the decimals they were written with: a mean of
    90.00 and 90.02 is 90.01, not short of it (in binary floats, 90.00999999999999)."""
    limit = as_written(reference)
    return value < limit if polarity == "higher" else value > limit


def province_findings(
    province_code: str,
    province_targets: Mapping[str, float] | None,
    districts: Sequence[DistrictPlan],
    polarity: Mapping[str, Polarity],
) -> list[Finding]:
    """Every gap between a province's targets, its districts' and their divisions'.

    Findings come in a stable order: per district (by code) first, then the
    province-wide mean, so two runs over the same data compare equal.
    """
    findings: list[Finding] = []
    for district in sorted(districts, key=lambda d: d.code):
        if district.targets is None:
            findings.append(
                Finding(
                    code="district_without_agreement",
                    area_code=district.code,
                    detail="No active agreement for this district and year.",
                )
            )
            continue
        # The province's indicators a district's agreement leaves out: no one below the
        # province takes them on there (and the mean below does not count the district).
        for indicator in sorted(set(province_targets or {}) - set(district.targets)):
            findings.append(
                Finding(
                    code="indicator_uncovered_by_district",
                    area_code=district.code,
                    indicator=indicator,
                    reference=(province_targets or {})[indicator],
                    detail=f"The district's active agreement sets no {indicator} target.",
                )
            )
        for indicator in sorted(district.targets):
            value = district.targets[indicator]
            reference = (province_targets or {}).get(indicator)
            if reference is not None and _falls_short(
                as_written(value), reference, polarity.get(indicator, "higher")
            ):
                findings.append(
                    Finding(
                        code="district_target_below_province",
                        area_code=district.code,
                        indicator=indicator,
                        target=value,
                        reference=reference,
                        detail=(
                            f"{indicator} target {value:g} is short of the province's "
                            f"{reference:g}."
                        ),
                    )
                )
            if indicator not in district.division_indicators:
                findings.append(
                    Finding(
                        code="indicator_uncovered_by_divisions",
                        area_code=district.code,
                        indicator=indicator,
                        target=value,
                        detail=f"No division's active agreement takes on {indicator}.",
                    )
                )
    for indicator in sorted(province_targets or {}):
        reference = (province_targets or {})[indicator]
        pairs = [
            (d.targets[indicator], d.population)
            for d in districts
            if d.targets is not None and indicator in d.targets
        ]
        exact = exact_weighted_target(pairs)
        way = polarity.get(indicator, "higher")
        if exact is not None and _falls_short(exact, reference, way):
            findings.append(
                Finding(
                    code="weighted_mean_below_province",
                    area_code=province_code,
                    indicator=indicator,
                    target=_toward_gap(exact, 4, way),
                    reference=reference,
                    detail=(
                        f"The population-weighted mean of district {indicator} targets, "
                        f"{_toward_gap(exact, 2, way):.2f}, is short of the province's "
                        f"{reference:g}."
                    ),
                )
            )
    return findings
