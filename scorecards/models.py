"""Structs the scorecard functions take and return.

All structs are frozen (a computed number must not change under the caller) and
keyword-only (positional arguments invite swapping numerator and denominator).
Percentages are floats in percent (``93.5`` means 93.5 %); counts are ints, and
every percentage is computed from counts, never taken from a printed figure.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from scorecards.errors import ScorecardError

Polarity = Literal["higher", "lower"]
"""Whether a larger realisation is better (``higher``) or worse (``lower``)."""

Quarterly = tuple[float | None, float | None, float | None, float | None]
"""Milestones for TW I-IV in percent; ``None`` where a quarter has no milestone."""

DEFAULT_CAP = 120.0
"""Default cap on an indicator's achievement, so one over-achiever cannot hide another."""


class Indicator(msgspec.Struct, frozen=True, kw_only=True):
    """An indicator of the catalogue, as far as the numbers need it.

    Attributes:
        code: Stable code, e.g. ``ktp_el``.
        polarity: ``higher`` or ``lower`` is better; picks the achievement formula.
        cap: Upper bound applied to the achievement in composites (percent).
        unit: Unit of the realisation and the target, e.g. ``percent``.
    """

    code: str
    polarity: Polarity = "higher"
    cap: float = DEFAULT_CAP
    unit: str = "percent"


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """The target an agreement sets for one indicator.

    Attributes:
        annual: Year-end target (percent).
        quarterly: Optional milestones for TW I-IV; a present milestone overrides
            ``annual`` for dates in its quarter.
        weight: Optional weight in the composite score; relative, any positive scale.
    """

    annual: float
    quarterly: Quarterly | None = None
    weight: float | None = None

    def __post_init__(self) -> None:
        """Reject weights the composite cannot use."""
        if self.weight is not None and not (math.isfinite(self.weight) and self.weight >= 0):
            raise ScorecardError("weight must be a finite number >= 0")


class Measurement(msgspec.Struct, frozen=True, kw_only=True):
    """A cumulative count: ``numerator`` of ``denominator`` people.

    The numerator may exceed the denominator (people record where they live now,
    not where they are registered); that is kept and flagged, not rejected.
    """

    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        """Reject negative counts, which no report can mean."""
        if self.numerator < 0 or self.denominator < 0:
            raise ScorecardError("numerator and denominator must be >= 0")


class Achievement(msgspec.Struct, frozen=True, kw_only=True):
    """Achievement (capaian) of a realisation against a target, in percent.

    Attributes:
        raw: Uncapped achievement, kept so that over-achievement stays visible.
        capped: ``min(raw, cap)``; what composites use.
        over_100: The target was exceeded (``raw > 100``).
    """

    raw: float
    capped: float
    over_100: bool


class IndicatorScore(msgspec.Struct, frozen=True, kw_only=True):
    """One indicator of one area at one date: counts, coverage and achievement.

    Fields derived from counts are ``None`` when there is no measurement or the
    denominator is zero (``status == "no_data"``).

    Attributes:
        code: Indicator code.
        status: ``ok`` or ``no_data``.
        numerator: Count achieved, if measured.
        denominator: Population the indicator covers, if measured.
        coverage: ``numerator / denominator`` in percent, unclipped.
        coverage_over_100: Coverage exceeds 100 % (kept, flagged for review).
        target: Target applying at the date (quarterly milestone or annual).
        raw: Uncapped achievement.
        capped: Capped achievement.
        over_100: Achievement exceeds 100 % (target exceeded).
        weight: Weight from the target, passed on to the composite.
    """

    code: str
    status: Literal["ok", "no_data"]
    numerator: int | None
    denominator: int | None
    coverage: float | None
    coverage_over_100: bool
    target: float
    raw: float | None
    capped: float | None
    over_100: bool
    weight: float | None = None
