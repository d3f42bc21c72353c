"""Composite score: weighted mean of capped achievements."""

from __future__ import annotations

from datetime import date

import pytest

from scorecards import (
    CompositePart,
    Indicator,
    Measurement,
    ScorecardError,
    Target,
    composite,
    score_indicator,
)


def test_over_achievement_is_capped_so_it_cannot_hide_another_indicator() -> None:
    # ktp_el at 150 % counts as 120; kia at 60 %: (120 + 60) / 2 = 90, not (150 + 60) / 2 = 105.
    result = composite(
        [
            CompositePart(code="ktp_el", capped=120.0),
            CompositePart(code="kia", capped=60.0),
        ]
    )
    assert result.score == 90.0
    assert result.weights == {"ktp_el": 0.5, "kia": 0.5}


def test_capped_composite_from_scorecard_rows() -> None:
    on = date(2021, 6, 30)
    rows = [
        score_indicator(
            Indicator(code="kia"),
            Target(annual=30.0),
            Measurement(numerator=45, denominator=100),  # 150 % of target -> capped 120
            on,
        ),
        score_indicator(
            Indicator(code="akta_lahir"),
            Target(annual=95.0),
            Measurement(numerator=57, denominator=100),  # 60 % of target
            on,
        ),
    ]
    assert rows[0].raw == pytest.approx(150.0)
    assert composite(rows).score == pytest.approx(90.0)


def test_weights_are_normalised() -> None:
    result = composite(
        [
            CompositePart(code="ktp_el", capped=100.0, weight=2.0),
            CompositePart(code="kia", capped=70.0, weight=1.0),
            CompositePart(code="akta_lahir", capped=40.0, weight=1.0),
        ]
    )
    # (2*100 + 70 + 40) / 4 = 77.5
    assert result.score == 77.5
    assert result.weights == {"ktp_el": 0.5, "kia": 0.25, "akta_lahir": 0.25}


def test_indicators_without_data_are_excluded_and_reported() -> None:
    result = composite(
        [
            CompositePart(code="ktp_el", capped=100.0, weight=2.0),
            CompositePart(code="kia", capped=None, weight=1.0),
            CompositePart(code="akta_lahir", capped=70.0, weight=1.0),
        ]
    )
    # (2*100 + 70) / 3 = 90
    assert result.score == 90.0
    assert result.included == ("ktp_el", "akta_lahir")
    assert result.no_data == ("kia",)


def test_nothing_to_average_gives_none() -> None:
    result = composite([CompositePart(code="kia", capped=None)])
    assert result.score is None
    assert result.no_data == ("kia",)
    assert composite([]).score is None
    zero = composite([CompositePart(code="kia", capped=80.0, weight=0.0)])
    assert zero.score is None


def test_mixed_weights_are_rejected() -> None:
    with pytest.raises(ScorecardError):
        composite(
            [
                CompositePart(code="ktp_el", capped=100.0, weight=2.0),
                CompositePart(code="kia", capped=70.0),
            ]
        )


def test_duplicate_codes_are_rejected() -> None:
    with pytest.raises(ScorecardError):
        composite([CompositePart(code="kia", capped=1.0), CompositePart(code="kia", capped=2.0)])


def test_negative_weight_is_rejected() -> None:
    with pytest.raises(ScorecardError):
        composite([CompositePart(code="kia", capped=1.0, weight=-1.0)])
    with pytest.raises(ScorecardError):
        Target(annual=30.0, weight=-1.0)
