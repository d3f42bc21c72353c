"""Projection: will an area reach its annual target by the end of the year?

From a district's recent cumulative snapshots of one indicator, compare the
daily rate it is achieving with the daily rate it needs, as the field does
("about 500 recordings a day, we need 1,000 a day"). The year end is an
argument: this core has no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from fractions import Fraction
from typing import Literal

import msgspec

from scorecards.aggregate import as_written
from scorecards.errors import ScorecardError

ProjectionStatus = Literal["on_track", "at_risk", "off_track", "unknown"]
"""``unknown``: not reached, and the snapshots span no time, so no rate is known."""


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Cumulative counts of one indicator as of a date.

    Attributes:
        as_of: Date the counts refer to (end of that day).
        numerator: People covered so far.
        denominator: People to cover.
    """

    as_of: date
    numerator: int
    denominator: int


class ProjectionThresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Cut-offs on ``achieved_rate / needed_rate`` for the projection status.

    Attributes:
        on_track: Ratio at or above which the area is on track.
        at_risk: Ratio at or above which (and below ``on_track``) it is at risk;
            below it, off track.
    """

    on_track: float = 1.0
    at_risk: float = 0.8

    def __post_init__(self) -> None:
        """Keep the bands ordered, or some ratios would fall in no band."""
        if not self.at_risk <= self.on_track:
            raise ScorecardError("at_risk threshold must not exceed on_track threshold")


DEFAULT_THRESHOLDS = ProjectionThresholds()


class Projection(msgspec.Struct, frozen=True, kw_only=True):
    """Where an indicator is heading by the year end.

    Attributes:
        as_of: Date of the latest snapshot.
        numerator: Latest numerator.
        denominator: Latest denominator (the target count is based on it).
        target: Annual target (percent).
        target_count: ``target * denominator / 100``: the numerator to reach.
        remaining: ``target_count - numerator``, 0 once reached.
        days_left: Days from ``as_of`` to the year end.
        achieved_rate: Numerator increase per day from the first to the latest
            snapshot; ``None`` if they span no time. May be negative after a correction.
        needed_rate: Increase per day needed to reach the target by the year end;
            0 once reached; ``None`` when not reached and no days are left.
        ratio: ``achieved_rate / needed_rate``; ``None`` when either is unknown or
            nothing is needed.
        reached: The target count has been reached.
        status: ``on_track``, ``at_risk``, ``off_track`` or ``unknown``.
        projected_date: Date the target is reached at the achieved rate (may be
            after the year end); ``as_of`` once reached; ``None`` if the rate is not
            positive.
    """

    as_of: date
    numerator: int
    denominator: int
    target: float
    target_count: float
    remaining: float
    days_left: int
    achieved_rate: float | None
    needed_rate: float | None
    ratio: float | None
    reached: bool
    status: ProjectionStatus
    projected_date: date | None


def _status(ratio: Fraction, thresholds: ProjectionThresholds) -> ProjectionStatus:
    """Band a rate ratio; thresholds are inclusive (exactly 1.0 is on track)."""
    if ratio >= Fraction(thresholds.on_track):
        return "on_track"
    if ratio >= Fraction(thresholds.at_risk):
        return "at_risk"
    return "off_track"


def project(
    snapshots: Sequence[Snapshot],
    annual_target: float,
    year_end: date,
    thresholds: ProjectionThresholds = DEFAULT_THRESHOLDS,
    *,
    on: date | None = None,
) -> Projection:
    """Project an indicator to the year end from its recent snapshots.

    The achieved rate is measured over the window the caller passes (first to
    latest snapshot), so the caller chooses how "recent" is recent. Snapshots
    may come in any order; for equal dates the one given last wins (a correction
    supersedes). The target count uses the latest denominator, since that is the
    population the target must be met for. Computed exactly, rounded once per
    reported float.

    Args:
        snapshots: Cumulative snapshots of one indicator of one area (at least one).
        annual_target: Annual target in percent.
        year_end: Last day of the target year, e.g. ``date(2021, 12, 31)``.
        thresholds: Cut-offs for the status.
        on: The date the projection is made for (a scorecard's as-of date; default:
            the latest snapshot's). The days left and the needed rate count from it:
            counted from the last report, a district that stopped reporting looked
            better the longer it stayed silent.

    Returns:
        Rates, ratio, status and projected date.

    Raises:
        ScorecardError: No snapshots, a snapshot after ``year_end`` or after ``on``,
            negative counts, or a non-finite or negative target.
    """
    if not snapshots:
        raise ScorecardError("a projection needs at least one snapshot")
    if not (math.isfinite(annual_target) and annual_target >= 0):
        raise ScorecardError("annual target must be a finite number >= 0")
    ordered = sorted(snapshots, key=lambda s: s.as_of)
    first, last = ordered[0], ordered[-1]
    for snap in ordered:
        if snap.numerator < 0 or snap.denominator < 0:
            raise ScorecardError("numerator and denominator must be >= 0")
    made_on = last.as_of if on is None else on
    if made_on < last.as_of:
        raise ScorecardError("snapshot is dated after the projection's date")
    days_left = (year_end - made_on).days
    if days_left < 0:
        raise ScorecardError("snapshot is dated after the year end")

    # The target as written (90.12, not the float a little above it): met exactly, it is met.
    target_count = as_written(annual_target) * last.denominator / 100
    remaining = max(target_count - last.numerator, Fraction(0))
    span = (last.as_of - first.as_of).days
    rate = None if span == 0 else Fraction(last.numerator - first.numerator, span)

    needed: Fraction | None
    status: ProjectionStatus
    ratio: Fraction | None = None
    if remaining == 0:
        needed, status = Fraction(0), "on_track"
    elif days_left == 0:
        needed, status = None, "off_track"
    else:
        needed = remaining / days_left
        if rate is None:
            status = "unknown"
        else:
            ratio = rate / needed
            status = _status(ratio, thresholds)

    projected: date | None = None
    if remaining == 0:
        projected = last.as_of
    elif rate is not None and rate > 0:
        days = math.ceil(remaining / rate)
        if days <= (date.max - last.as_of).days:
            projected = last.as_of + timedelta(days=days)

    return Projection(
        as_of=last.as_of,
        numerator=last.numerator,
        denominator=last.denominator,
        target=annual_target,
        target_count=float(target_count),
        remaining=float(remaining),
        days_left=days_left,
        achieved_rate=None if rate is None else float(rate),
        needed_rate=None if needed is None else float(needed),
        ratio=None if ratio is None else float(ratio),
        reached=remaining == 0,
        status=status,
        projected_date=projected,
    )
