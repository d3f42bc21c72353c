"""Standard competition ranking, ties, no-data rows and change against the previous period."""

from __future__ import annotations

import pytest

from scorecards import RankEntry, ScorecardError, rank


def test_ties_share_a_rank_and_the_next_rank_skips() -> None:
    rows = rank(
        [
            RankEntry(code="16.03", score=80.0),
            RankEntry(code="16.01", score=95.0),
            RankEntry(code="16.72", score=90.0),
            RankEntry(code="16.02", score=90.0),
        ]
    )
    assert [(r.code, r.rank) for r in rows] == [
        ("16.01", 1),
        ("16.02", 2),  # tie listed by code
        ("16.72", 2),
        ("16.03", 4),
    ]
    assert all(r.status == "ranked" for r in rows)


def test_no_data_goes_last_unranked() -> None:
    rows = rank(
        [
            RankEntry(code="16.05", score=None),
            RankEntry(code="16.01", score=10.0),
            RankEntry(code="16.04", score=None),
            RankEntry(code="16.02", score=0.0),
        ]
    )
    assert [(r.code, r.rank, r.status) for r in rows] == [
        ("16.01", 1, "ranked"),
        ("16.02", 2, "ranked"),
        ("16.04", None, "no_data"),
        ("16.05", None, "no_data"),
    ]


def test_change_against_previous_period() -> None:
    rows = rank(
        [
            RankEntry(code="a", score=90.0),
            RankEntry(code="b", score=80.0),
            RankEntry(code="c", score=70.0),
            RankEntry(code="d", score=None),
        ],
        previous={"a": 3, "b": 2, "d": 1},
    )
    by_code = {r.code: r for r in rows}
    assert (by_code["a"].previous_rank, by_code["a"].change) == (3, 2)  # moved up two places
    assert by_code["b"].change == 0
    assert (by_code["c"].previous_rank, by_code["c"].change) == (None, None)
    assert (by_code["d"].previous_rank, by_code["d"].change) == (1, None)


def test_float_noise_does_not_break_a_tie() -> None:
    # 0.1 + 0.2 != 0.3 in binary floating point; both show as 30.000000 %.
    noisy = (0.1 + 0.2) * 100
    assert noisy != 30.0
    rows = rank([RankEntry(code="b", score=noisy), RankEntry(code="a", score=30.0)])
    assert [(r.code, r.rank) for r in rows] == [("a", 1), ("b", 1)]
    assert rows[1].score == noisy  # the row keeps the unrounded score


def test_lower_is_better_ranking() -> None:
    rows = rank(
        [RankEntry(code="a", score=5.0), RankEntry(code="b", score=3.0)],
        higher_is_better=False,
    )
    assert [(r.code, r.rank) for r in rows] == [("b", 1), ("a", 2)]


def test_rejects_duplicates_and_nan() -> None:
    with pytest.raises(ScorecardError):
        rank([RankEntry(code="a", score=1.0), RankEntry(code="a", score=2.0)])
    with pytest.raises(ScorecardError):
        rank([RankEntry(code="a", score=float("nan"))])


def test_empty() -> None:
    assert rank([]) == ()
