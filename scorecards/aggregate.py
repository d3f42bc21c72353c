"""Population-weighted aggregates of districts into regions, provinces and the nation.

An aggregate's coverage is the sum of numerators over the sum of denominators,
never the mean of the members' percentages: a district of 2 million people
weighs more than one of 50 thousand. Its target is weighted the same way, so an
aggregate's achievement is comparable with a district's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

import msgspec

from scorecards.errors import ScorecardError
from scorecards.models import DEFAULT_CAP, Achievement, Measurement, Polarity


class AggregateMember(msgspec.Struct, frozen=True, kw_only=True):
    """One member (district, region, province) of an aggregate for one indicator.

    Attributes:
        code: Area or region code.
        measurement: Latest accepted counts, or ``None`` if the member has not reported.
        target: The member's target applying at the date (percent), if it has one.
    """

    code: str
    measurement: Measurement | None
    target: float | None = None


class Aggregate(msgspec.Struct, frozen=True, kw_only=True):
    """Population-weighted aggregate of one indicator.

    Attributes:
        numerator: Sum of the numerators of members with data.
        denominator: Sum of the denominators of members with data.
        coverage: ``numerator / denominator`` in percent; ``None`` if the sum is 0.
        coverage_over_100: Aggregate coverage exceeds 100 %.
        target: ``sum target * denominator / sum denominator`` over the members with
            data: the coverage the aggregate would have if every member met its
            target. ``None`` if a member with data has no target, or the sum is 0.
        members: Members given.
        with_data: Members that contributed to the sums.
        no_data: Members left out of both sums because they have not reported.
        no_data_codes: Their codes, in input order.
        no_target_codes: Members with data but without a target, in input order.
        achievement: Coverage against target, from the exact sums and weighted target
            (as a district's is from its counts: the same band at the same threshold);
            ``None`` without both, or with a target of 0.
    """

    numerator: int
    denominator: int
    coverage: float | None
    coverage_over_100: bool
    target: float | None
    members: int
    with_data: int
    no_data: int
    no_data_codes: tuple[str, ...]
    no_target_codes: tuple[str, ...]
    achievement: Achievement | None = None


@lru_cache(maxsize=4096)
def as_written(target: float) -> Fraction:
    """A target as the decimal it was written with (stored with two decimals, carried as
    a float): 90.02 is read as 9002/100, not as the binary float nearest to it, so a mean
    of targets compares exactly with another target."""
    return Fraction(repr(target))


def exact_weighted_target(pairs: Sequence[tuple[float, int]]) -> Fraction | None:
    """Population-weighted mean of targets, exactly: ``sum target * weight / sum weight``.

    Args:
        pairs: ``(target_percent, denominator)`` per member.

    Returns:
        The weighted target, or ``None`` when the weights sum to 0.

    Raises:
        ScorecardError: A negative weight or a non-finite target.
    """
    total = 0
    weighted = Fraction(0)
    for target, weight in pairs:
        if weight < 0:
            raise ScorecardError("weights (denominators) must be >= 0")
        if not math.isfinite(target):
            raise ScorecardError("targets must be finite numbers")
        total += weight
        weighted += as_written(target) * weight
    return None if total == 0 else weighted / total


def weighted_target(pairs: Sequence[tuple[float, int]]) -> float | None:
    """Population-weighted mean of targets (``exact_weighted_target``), rounded once.

    Used for aggregate targets; the cascade checks compare the exact mean.
    """
    exact = exact_weighted_target(pairs)
    return None if exact is None else float(exact)


def aggregate(
    members: Sequence[AggregateMember],
    unit: str = "percent",
    *,
    polarity: Polarity = "higher",
    cap: float = DEFAULT_CAP,
) -> Aggregate:
    """Aggregate members' counts and targets, weighting by population.

    Members without a measurement are left out of both sums (not counted as 0 %)
    and reported, so a missing report neither drags the aggregate down nor hides.
    The target is withheld (``None``) when any member with data lacks a target,
    because a target over a subset of the population would not be comparable
    with the coverage over all of it; those members are listed.

    Args:
        members: The aggregate's members for one indicator.
        unit: The indicator's unit: a percent is 100 times the ratio of the sums, any
            other unit (a daily rate) the ratio itself.
        polarity: Whether higher or lower is better (the achievement's formula).
        cap: Upper bound of the capped achievement.

    Returns:
        Sums, coverage, weighted target and member counts.
    """
    numerator = 0
    denominator = 0
    no_data_codes: list[str] = []
    no_target_codes: list[str] = []
    pairs: list[tuple[float, int]] = []
    for member in members:
        m = member.measurement
        if m is None:
            no_data_codes.append(member.code)
            continue
        numerator += m.numerator
        denominator += m.denominator
        if member.target is None:
            no_target_codes.append(member.code)
        else:
            pairs.append((member.target, m.denominator))

    scale = 100 if unit == "percent" else 1
    exact = None if denominator == 0 else Fraction(numerator * scale, denominator)
    with_data = len(members) - len(no_data_codes)
    target = None if no_target_codes else exact_weighted_target(pairs)
    return Aggregate(
        numerator=numerator,
        denominator=denominator,
        coverage=None if exact is None else float(exact),
        coverage_over_100=scale == 100 and exact is not None and exact > 100,
        target=None if target is None else float(target),
        members=len(members),
        with_data=with_data,
        no_data=len(no_data_codes),
        no_data_codes=tuple(no_data_codes),
        no_target_codes=tuple(no_target_codes),
        achievement=_exact_achievement(exact, target, polarity, cap),
    )


def _exact_achievement(
    coverage: Fraction | None, target: Fraction | None, polarity: Polarity, cap: float
) -> Achievement | None:
    if coverage is None or target is None or target <= 0:
        return None
    ratio = coverage / target
    exact = ratio * 100 if polarity == "higher" else (2 - ratio) * 100
    raw = float(exact)
    return Achievement(raw=raw, capped=min(raw, cap), over_100=exact > 100)
