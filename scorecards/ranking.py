"""Ranking of districts, regions or provinces by a score.

Standard competition ranking ("1, 2, 2, 4"): equal scores share a rank and the
next rank skips the tied places, so a rank always says how many did better.

Scores are compared after rounding to :data:`RANK_DECIMALS` decimals. Scores
computed along different paths (e.g. a composite of the same achievements in a
different order) can differ in the last bits of a float; without rounding, two
areas that every report shows as equal would get different ranks. The rounding
is used for the comparison only: rows keep the unrounded score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import msgspec

from scorecards.errors import ScorecardError

RANK_DECIMALS = 6
"""Decimals kept when comparing scores for ties (see the module docstring)."""


class RankEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An area to rank.

    Attributes:
        code: Area or region code; ties are listed by it.
        score: Score to rank by (percent), ``None`` if the area has no data.
    """

    code: str
    score: float | None


class RankedRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of a ranking.

    Attributes:
        code: Area or region code.
        score: The unrounded score, ``None`` without data.
        rank: Competition rank (1 is best), ``None`` without data.
        previous_rank: Rank in the previous period, if known.
        change: ``previous_rank - rank``: positive = moved up; ``None`` if either is unknown.
        status: ``ranked`` or ``no_data``.
    """

    code: str
    score: float | None
    rank: int | None
    previous_rank: int | None
    change: int | None
    status: Literal["ranked", "no_data"]


def rank(
    entries: Sequence[RankEntry],
    previous: Mapping[str, int | None] | None = None,
    *,
    decimals: int = RANK_DECIMALS,
    higher_is_better: bool = True,
) -> tuple[RankedRow, ...]:
    """Rank entries by score with standard competition ranking.

    Rows come best first; equal (rounded) scores share a rank and are listed by
    code. Entries without a score come after all ranked ones, by code, with
    rank ``None`` and status ``no_data``: an area that has not reported is not
    last, it is unranked.

    Args:
        entries: Areas with their scores; codes must be unique.
        previous: Ranks of the previous period by code, for the change column.
        decimals: Decimals kept when comparing scores.
        higher_is_better: Rank the highest score first (achievements, composites);
            pass ``False`` to rank a raw lower-is-better value.

    Returns:
        All entries as ranked rows, a permutation of the input.

    Raises:
        ScorecardError: Duplicate codes or a NaN score.
    """
    codes = [entry.code for entry in entries]
    if len(set(codes)) != len(codes):
        raise ScorecardError("each code may appear only once in a ranking")
    previous = previous or {}

    scored: list[tuple[float, RankEntry]] = []
    unscored: list[RankEntry] = []
    for entry in entries:
        if entry.score is None:
            unscored.append(entry)
        elif math.isnan(entry.score):
            raise ScorecardError(f"score of {entry.code!r} is not a number")
        else:
            rounded = round(entry.score, decimals)
            scored.append((-rounded if higher_is_better else rounded, entry))
    scored.sort(key=lambda item: (item[0], item[1].code))
    unscored.sort(key=lambda entry: entry.code)

    rows: list[RankedRow] = []
    current_rank = 0
    last_key: float | None = None
    for position, (key, entry) in enumerate(scored, start=1):
        if key != last_key:
            current_rank, last_key = position, key
        before = previous.get(entry.code)
        rows.append(
            RankedRow(
                code=entry.code,
                score=entry.score,
                rank=current_rank,
                previous_rank=before,
                change=None if before is None else before - current_rank,
                status="ranked",
            )
        )
    rows.extend(
        RankedRow(
            code=entry.code,
            score=None,
            rank=None,
            previous_rank=previous.get(entry.code),
            change=None,
            status="no_data",
        )
        for entry in unscored
    )
    return tuple(rows)
