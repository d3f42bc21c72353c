"""Coverage and achievement (capaian) of one indicator.

Coverage is ``numerator * 100 / denominator`` in one integer-to-float division, which
Python rounds correctly: each result is the nearest float to the exact ratio, so the
same counts give the same float on every replica. An indicator in another unit (a
daily rate: recordings / days) is ``numerator / denominator`` in that unit. From counts
and a target (the decimal it was written as), an achievement is one integer division
too, so a realisation exactly at a band's threshold is exactly that threshold (891 of
1,000 against 99 % is 90, not 89.99999999999999, and green). Nothing is rounded to a
number of decimals here (display rounding is the caller's business).
"""

from __future__ import annotations

import math
from datetime import date

from scorecards.aggregate import as_written
from scorecards.errors import ScorecardError
from scorecards.models import (
    DEFAULT_CAP,
    Achievement,
    Indicator,
    IndicatorScore,
    Measurement,
    Polarity,
    Target,
)

PERCENT = "percent"


def scale_of(unit: str) -> int:
    """What counts are multiplied by to be read in ``unit``: a percent is 100 times the
    ratio; any other unit (per_day, ...) is the ratio itself."""
    return 100 if unit == PERCENT else 1


def _coverage(numerator: int, denominator: int, scale: int = 100) -> float | None:
    """Coverage in its unit (correctly rounded), or ``None`` when there is no population."""
    if numerator < 0 or denominator < 0:
        raise ScorecardError("numerator and denominator must be >= 0")
    if denominator == 0:
        return None
    return numerator * scale / denominator


def coverage(numerator: int, denominator: int, unit: str = PERCENT) -> float | None:
    """Coverage in percent (or the indicator's own ``unit``: ``scale_of``), from counts.

    Never clipped: above 100 % is real (people record where they live now) and
    is kept so it can be flagged.

    Args:
        numerator: People who hold the document (>= 0).
        denominator: People who should hold it (>= 0).

    Returns:
        ``numerator / denominator * 100``, or ``None`` when ``denominator`` is 0
        (no population means no coverage, not 0 % and not 100 %).

    Raises:
        ScorecardError: A count is negative.
    """
    return _coverage(numerator, denominator, scale_of(unit))


def target_on(target: Target, on: date) -> float:
    """The target that applies at a date: its quarter's milestone, else the annual one.

    Quarters are calendar quarters (TW I = January-March, ...). A quarter without
    a milestone falls back to the annual target rather than to another quarter's,
    because milestones are only meaningful for the quarter they were set for.

    Args:
        target: The agreement's target for one indicator.
        on: The as-of date of the realisation being judged.

    Returns:
        Target in percent.
    """
    if target.quarterly is not None:
        milestone = target.quarterly[(on.month - 1) // 3]
        if milestone is not None:
            return milestone
    return target.annual


def _check_finite(name: str, value: float) -> None:
    """Reject NaN and infinities, which would silently poison every later comparison."""
    if not math.isfinite(value):
        raise ScorecardError(f"{name} must be a finite number")


def _achievement(realisation: float, target: float, polarity: Polarity, cap: float) -> Achievement:
    """The shared core: float arithmetic, one division and one multiplication.

    Floats, not fractions: a national ranking scores every district twice per request,
    and correctly rounded division keeps the properties that matter (meeting the target
    exactly gives exactly 100; achievement is monotone in the realisation).
    """
    _check_finite("target", target)
    if target <= 0:
        raise ScorecardError("target must be > 0 to compute an achievement")
    if math.isnan(cap):
        raise ScorecardError("cap must be a number")
    ratio = realisation / target
    if polarity == "higher":
        raw = ratio * 100
    elif polarity == "lower":
        raw = (2 - ratio) * 100
    else:
        raise ScorecardError(f"unknown polarity {polarity!r}")
    return Achievement(raw=raw, capped=min(raw, cap), over_100=raw > 100)


def achievement_of_counts(
    indicator: Indicator, numerator: int, denominator: int, target: float
) -> Achievement | None:
    """The achievement of counts (``None`` without a population), exactly: one correctly
    rounded division of integers, in the indicator's unit, the target read as written."""
    if numerator < 0 or denominator < 0:
        raise ScorecardError("numerator and denominator must be >= 0")
    if denominator == 0:
        return None
    return _achievement_of_counts(
        numerator, denominator, scale_of(indicator.unit), target, indicator.polarity, indicator.cap
    )


def _achievement_of_counts(
    numerator: int, denominator: int, scale: int, target: float, polarity: Polarity, cap: float
) -> Achievement:
    _check_finite("target", target)
    if target <= 0:
        raise ScorecardError("target must be > 0 to compute an achievement")
    written = as_written(target)
    below = denominator * written.numerator
    above = numerator * scale * 100 * written.denominator
    if polarity == "higher":
        raw = above / below
        exceeded = above > 100 * below
    elif polarity == "lower":
        raw = (200 * below - above) / below
        exceeded = above < 100 * below
    else:
        raise ScorecardError(f"unknown polarity {polarity!r}")
    if math.isnan(cap):
        raise ScorecardError("cap must be a number")
    return Achievement(raw=raw, capped=min(raw, cap), over_100=exceeded)


def achievement(
    realisation: float,
    target: float,
    polarity: Polarity = "higher",
    cap: float = DEFAULT_CAP,
) -> Achievement:
    """Achievement (capaian) of a realisation against a target, raw and capped.

    ``higher``: ``realisation / target * 100``. ``lower``:
    ``(2 - realisation / target) * 100``, so meeting the target exactly is 100 in
    both cases. The lower-is-better formula is kept as written even when it goes
    below 0 (realisation above twice the target): clipping it would hide how far
    off the area is. The cap is ``min(raw, cap)``: it can lower a value, never
    raise one.

    Args:
        realisation: Realised value, in the target's unit.
        target: Target value (> 0).
        polarity: Whether higher or lower realisations are better.
        cap: Upper bound for the capped achievement (``math.inf`` for none).

    Returns:
        The raw and capped achievement and whether the target was exceeded.

    Raises:
        ScorecardError: Target not positive, or a non-finite input.
    """
    _check_finite("realisation", realisation)
    return _achievement(realisation, target, polarity, cap)


def score_indicator(
    indicator: Indicator,
    target: Target,
    measurement: Measurement | None,
    on: date,
) -> IndicatorScore:
    """Everything a scorecard row shows for one indicator of one area at one date.

    The realisation is the coverage computed from the counts; the target is the
    one applying at ``on`` (see :func:`target_on`).

    Args:
        indicator: Catalogue entry (polarity and cap).
        target: Target from the area's agreement.
        measurement: Latest accepted counts, or ``None`` if the area has not reported.
        on: As-of date.

    Returns:
        The row; ``status == "no_data"`` when there is no measurement or its
        denominator is 0.
    """
    applying = target_on(target, on)
    scale = scale_of(indicator.unit)
    cov = (
        None
        if measurement is None
        else _coverage(measurement.numerator, measurement.denominator, scale)
    )
    if measurement is None or cov is None:
        return IndicatorScore(
            code=indicator.code,
            status="no_data",
            numerator=None if measurement is None else measurement.numerator,
            denominator=None if measurement is None else measurement.denominator,
            coverage=None,
            coverage_over_100=False,
            target=applying,
            raw=None,
            capped=None,
            over_100=False,
            weight=target.weight,
        )
    result = _achievement_of_counts(
        measurement.numerator,
        measurement.denominator,
        scale,
        applying,
        indicator.polarity,
        indicator.cap,
    )
    return IndicatorScore(
        code=indicator.code,
        status="ok",
        numerator=measurement.numerator,
        denominator=measurement.denominator,
        coverage=cov,
        # Over 100 % is a percent's flag: a daily rate has no such ceiling.
        coverage_over_100=scale == 100 and measurement.numerator > measurement.denominator,
        target=applying,
        raw=result.raw,
        capped=result.capped,
        over_100=result.over_100,
        weight=target.weight,
    )
