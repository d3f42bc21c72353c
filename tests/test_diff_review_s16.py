"""Diff review (47847ab..HEAD): defects found in the changed code, each failing."""

from __future__ import annotations

import csv
import io

from api.representation import rows_of, single_columns, to_csv
from api.schemas.scorecards import IndicatorBrief, RankingRow


def _row(weights: dict[str, float] | None) -> RankingRow:
    brief = IndicatorBrief(
        coverage=90.0,
        coverage_over_100=False,
        target=100.0,
        achievement=90.0,
        members=1,
        with_data=1,
        no_data=0,
    )
    return RankingRow(
        code="16.71",
        name="Kota Palembang",
        status="ranked",
        rank=1,
        previous_rank=None,
        change=None,
        score=90.0,
        band="green",
        predikat="A",
        indicators={"ktp_el": brief},
        weights=weights,
    )


def test_a_rankings_leading_columns_hold_one_value_each() -> None:
    """single_columns says it leaves out dicts; ``weights`` is ``dict | None`` and slips
    through, so an empty ranking's header names a column no filled ranking has."""
    assert "weights" not in single_columns(RankingRow)


def test_an_empty_composite_ranking_names_the_columns_a_filled_one_has() -> None:
    filled = to_csv(rows_of([_row({"ktp_el": 1.0})]), leading=single_columns(RankingRow)).decode()
    empty = to_csv([], leading=single_columns(RankingRow)).decode()
    header = next(csv.reader(io.StringIO(filled)))
    empty_header = next(csv.reader(io.StringIO(empty)))
    # Each column an empty ranking names is one a filled ranking names too.
    assert set(empty_header) <= set(header), set(empty_header) - set(header)
