"""Composite score: the weighted mean of an area's capped achievements.

Capped achievements are used (cap per indicator, default 120) so that one
over-achieved indicator cannot hide an under-achieved one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import msgspec

from scorecards.errors import ScorecardError


class Scored(Protocol):
    """Anything with a code, a capped achievement and a weight.

    Both :class:`CompositePart` and :class:`~scorecards.models.IndicatorScore`
    qualify, so scorecard rows can be passed straight in.
    """

    @property
    def code(self) -> str:
        """Indicator code."""
        ...

    @property
    def capped(self) -> float | None:
        """Capped achievement in percent, ``None`` without data."""
        ...

    @property
    def weight(self) -> float | None:
        """Relative weight, ``None`` if the agreement sets none."""
        ...


class CompositePart(msgspec.Struct, frozen=True, kw_only=True):
    """One indicator's contribution to a composite.

    Attributes:
        code: Indicator code.
        capped: Capped achievement in percent, ``None`` without data.
        weight: Relative weight, ``None`` if the agreement sets none.
    """

    code: str
    capped: float | None
    weight: float | None = None


class Composite(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A composite score and what went into it.

    Attributes:
        score: Weighted mean of the included capped achievements; ``None`` when
            nothing (or only zero weight) is left to average.
        included: Codes that contributed, in input order.
        no_data: Codes left out because they had no achievement, in input order.
        weights: Normalised weights (summing to 1) of the included codes.

    Untracked by the cycle collector (``gc=False``): its tuples and dict hold only
    strings and floats, so it is never in a cycle, and report caches keep one per
    district.
    """

    score: float | None
    included: tuple[str, ...]
    no_data: tuple[str, ...]
    weights: dict[str, float]


def composite(parts: Sequence[Scored]) -> Composite:
    """Weighted mean of capped achievements, skipping indicators without data.

    Weights are relative and normalised over the indicators that have data, so
    a missing indicator neither counts as 0 nor shifts the scale. When no part
    has a weight, all count equally. Mixing weighted and unweighted parts is
    rejected: there is no sound share to guess for the unweighted ones, and the
    agreement should be fixed instead.

    The mean is an exactly summed (``math.fsum``) float, clamped so it always lies between the
    smallest and largest included achievement.

    Args:
        parts: One entry per indicator of the area's agreement.

    Returns:
        The score with the included and excluded codes and normalised weights.

    Raises:
        ScorecardError: Duplicate codes, mixed weighted/unweighted parts,
            negative or non-finite weights, or a non-finite achievement.
    """
    codes = [part.code for part in parts]
    if len(set(codes)) != len(codes):
        raise ScorecardError("each indicator may appear only once in a composite")
    weighted = [part.weight is not None for part in parts]
    if any(weighted) and not all(weighted):
        raise ScorecardError("set a weight on every indicator of the composite or on none")

    included: list[str] = []
    no_data: list[str] = []
    shares: list[float] = []
    values: list[float] = []
    for part in parts:
        if part.capped is None:
            no_data.append(part.code)
            continue
        if not math.isfinite(part.capped):
            raise ScorecardError(f"achievement of {part.code!r} must be finite")
        weight = 1.0 if part.weight is None else part.weight
        if not (math.isfinite(weight) and weight >= 0):
            raise ScorecardError(f"weight of {part.code!r} must be a finite number >= 0")
        included.append(part.code)
        shares.append(weight)
        values.append(part.capped)

    total = math.fsum(shares)
    if total == 0:
        return Composite(
            score=None,
            included=tuple(included),
            no_data=tuple(no_data),
            weights={code: 0.0 for code in included},
        )
    mean = math.fsum(s * v for s, v in zip(shares, values, strict=True)) / total
    # Rounding must not push a mean outside its values (it is a mean of them).
    score = min(max(mean, min(values)), max(values))
    return Composite(
        score=score,
        included=tuple(included),
        no_data=tuple(no_data),
        weights={code: s / total for code, s in zip(included, shares, strict=True)},
    )
