"""Plausibility checks on a reported count: the numbers behind a submission's flags.

A flagged value is kept, never clipped or rejected: coverage above 100 % is real
(people record where they live now), and a printed percentage that disagrees with
its own counts is the report's mistake, not the counts'. Comparisons are exact
(:class:`fractions.Fraction`), so a tolerance boundary does not wobble with float
rounding: the stated figure is read as the decimal it was printed as.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from scorecards.errors import ScorecardError

DEFAULT_STATED_TOLERANCE = 0.01
"""Percentage points a stated figure may be off; a truncation (87.17 for 87.176) is within."""


def _check_counts(numerator: int, denominator: int) -> None:
    if numerator < 0 or denominator <= 0:
        raise ScorecardError("numerator must be >= 0 and denominator > 0")


def _exact_coverage(numerator: int, denominator: int, scale: int = 100) -> Fraction:
    _check_counts(numerator, denominator)
    return Fraction(numerator * scale, denominator)


@lru_cache(maxsize=1024)  # tolerances and shares (settings) repeat; stated figures churn it
def _decimal(value: float, name: str) -> Fraction:
    """The decimal a float was written as (``87.17``, not its binary neighbour)."""
    if not math.isfinite(value):
        raise ScorecardError(f"{name} must be finite")
    return Fraction(Decimal(repr(float(value))))


def over_100(numerator: int, denominator: int) -> bool:
    """Whether coverage exceeds 100 % (more holders than people obliged to hold)."""
    _check_counts(numerator, denominator)
    return numerator > denominator  # n * 100 / d > 100, without building the fraction


def stated_mismatch(
    numerator: int,
    denominator: int,
    stated_pct: float | None,
    tolerance: float = DEFAULT_STATED_TOLERANCE,
    scale: int = 100,
) -> bool:
    """Whether a stated percentage is more than ``tolerance`` points from the counts.

    Args:
        numerator: Holders (>= 0).
        denominator: People obliged to hold (> 0).
        stated_pct: The percentage the report prints, or ``None`` (nothing to compare).
        tolerance: Allowed distance in percentage points; exactly at it is no mismatch.
        scale: 100 for a percent; 1 for an indicator in another unit (a daily rate),
            whose stated figure is in that unit.

    Returns:
        ``True`` when ``|stated - computed| > tolerance``. Example from the field:
        5,545,117 of 5,940,433 is 93.35 %, printed as 97.70 %: a mismatch;
        1,916,099 of 2,197,959 is 87.176 %, printed as 87.17 %: not one.
    """
    if stated_pct is None:
        return False
    if tolerance < 0:
        raise ScorecardError("tolerance must be >= 0")
    computed = _exact_coverage(numerator, denominator, scale)
    distance = abs(_decimal(stated_pct, "stated_pct") - computed)
    return distance > _decimal(tolerance, "tolerance")


def numerator_decreased(numerator: int, previous: int | None) -> bool:
    """Whether a cumulative count went down against the previous counting report."""
    return previous is not None and numerator < previous


def denominator_jump(denominator: int, previous: int | None, share: float) -> bool:
    """Whether the population moved by more than ``share`` of the previous one.

    A denominator is a population estimate; a jump of more than a few percent between
    two reports usually means someone typed another population, not that people moved.
    """
    if previous is None or previous <= 0:
        return False
    if not math.isfinite(share) or share < 0:
        raise ScorecardError("share must be a finite number >= 0")
    limit = _decimal(share, "share")
    # |d - p| / p > a / b, in integers: runs for every value of every report.
    return abs(denominator - previous) * limit.denominator > limit.numerator * previous
