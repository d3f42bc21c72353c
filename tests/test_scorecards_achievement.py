"""Coverage, applicable target and achievement, with the seeds' figures worked by hand."""

from __future__ import annotations

import math
from datetime import date

import pytest

from scorecards import (
    Indicator,
    Measurement,
    ScorecardError,
    Target,
    achievement,
    coverage,
    score_indicator,
    target_on,
)

KTP_EL = Indicator(code="ktp_el")
QUARTERLY_2021 = Target(annual=100.0, quarterly=(98.5, 99.0, None, 100.0))


def test_sumsel_coverage_is_computed_from_counts_not_the_printed_figure() -> None:
    # Sumsel, 15 Feb 2021: 5,545,117 of 5,940,433 recorded; the article prints 97.70 %.
    # By hand: 5,545,117 / 5,940,433 = 0.933453...  -> 93.345 %.
    value = coverage(5_545_117, 5_940_433)
    assert value == 5_545_117 * 100 / 5_940_433
    assert value == pytest.approx(93.34533358, abs=1e-8)
    assert round(value, 2) == 93.35
    assert round(value, 2) != 97.70


def test_kaltim_coverage_rounds_to_87_18_not_the_printed_87_17() -> None:
    # Kaltim: 1,916,099 of 2,197,959 -> 0.871762... -> 87.176 %, 87.18 rounded.
    value = coverage(1_916_099, 2_197_959)
    assert value == pytest.approx(87.17628491, abs=1e-8)
    assert round(value, 2) == 87.18


def test_coverage_above_100_is_kept() -> None:
    assert coverage(1_050, 1_000) == 105.0


def test_coverage_without_population_is_none() -> None:
    assert coverage(0, 0) is None
    assert coverage(12, 0) is None


def test_coverage_rejects_negative_counts() -> None:
    with pytest.raises(ScorecardError):
        coverage(-1, 10)


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2021, 2, 15), 98.5),  # 15 Feb -> TW I
        (date(2021, 1, 1), 98.5),
        (date(2021, 3, 31), 98.5),
        (date(2021, 4, 1), 99.0),  # TW II
        (date(2021, 8, 17), 100.0),  # TW III has no milestone -> annual
        (date(2021, 12, 31), 100.0),  # TW IV
    ],
)
def test_target_on_picks_the_quarter_milestone_of_the_date(on: date, expected: float) -> None:
    assert target_on(QUARTERLY_2021, on) == expected


def test_target_on_without_milestones_is_annual() -> None:
    assert target_on(Target(annual=30.0), date(2021, 2, 15)) == 30.0


def test_achievement_higher_is_better() -> None:
    result = achievement(93.0, 100.0)
    assert result.raw == 93.0
    assert result.capped == 93.0
    assert not result.over_100
    # KIA 2021: 24 % coverage against a 30 % target -> 80 %.
    assert achievement(24.0, 30.0).raw == pytest.approx(80.0)


def test_achievement_lower_is_better() -> None:
    # e.g. days to issue a document, target 10 days: (2 - r / 10) * 100.
    assert achievement(10.0, 10.0, "lower").raw == 100.0
    assert achievement(8.0, 10.0, "lower").raw == pytest.approx(120.0)
    assert achievement(12.0, 10.0, "lower").raw == pytest.approx(80.0)
    assert achievement(8.0, 10.0, "lower").over_100
    # Worse than twice the target goes below 0 and is kept, not clipped.
    assert achievement(25.0, 10.0, "lower").raw == pytest.approx(-50.0)


def test_cap_lowers_over_achievement_and_keeps_raw() -> None:
    result = achievement(150.0, 100.0)
    assert result.raw == 150.0
    assert result.capped == 120.0
    assert result.over_100
    assert achievement(150.0, 100.0, cap=math.inf).capped == 150.0


def test_cap_never_raises_a_value() -> None:
    assert achievement(50.0, 100.0, cap=120.0).capped == 50.0


@pytest.mark.parametrize("target", [0.0, -5.0, math.nan, math.inf])
def test_achievement_rejects_unusable_targets(target: float) -> None:
    with pytest.raises(ScorecardError):
        achievement(50.0, target)


def test_achievement_rejects_unknown_polarity() -> None:
    with pytest.raises(ScorecardError):
        achievement(50.0, 100.0, "sideways")  # type: ignore[arg-type]


def test_score_indicator_sumsel_against_tw1_milestone() -> None:
    row = score_indicator(
        KTP_EL,
        QUARTERLY_2021,
        Measurement(numerator=5_545_117, denominator=5_940_433),
        date(2021, 2, 15),
    )
    assert row.status == "ok"
    assert row.target == 98.5
    assert row.coverage == 5_545_117 * 100 / 5_940_433
    # 93.3453 / 98.5 * 100 = 94.7668 %
    assert row.raw == pytest.approx(94.76683612, abs=1e-8)
    assert row.capped == row.raw
    assert not row.over_100
    assert not row.coverage_over_100


def test_score_indicator_exact_target_gives_coverage_bit_for_bit() -> None:
    row = score_indicator(
        KTP_EL,
        Target(annual=100.0),
        Measurement(numerator=5_545_117, denominator=5_940_433),
        date(2021, 6, 30),
    )
    assert row.raw == row.coverage


def test_score_indicator_flags_coverage_over_100_and_caps() -> None:
    row = score_indicator(
        Indicator(code="kia", cap=120.0),
        Target(annual=30.0, weight=2.0),
        Measurement(numerator=45, denominator=100),
        date(2021, 5, 1),
    )
    assert row.coverage == 45.0
    assert not row.coverage_over_100
    assert row.raw == pytest.approx(150.0)
    assert row.capped == 120.0
    assert row.over_100
    assert row.weight == 2.0

    over = score_indicator(
        KTP_EL,
        Target(annual=100.0),
        Measurement(numerator=1_020, denominator=1_000),
        date(2021, 5, 1),
    )
    assert over.coverage == 102.0
    assert over.coverage_over_100


@pytest.mark.parametrize("measurement", [None, Measurement(numerator=0, denominator=0)])
def test_score_indicator_without_data(measurement: Measurement | None) -> None:
    row = score_indicator(KTP_EL, QUARTERLY_2021, measurement, date(2021, 2, 15))
    assert row.status == "no_data"
    assert row.coverage is None
    assert row.raw is None
    assert row.capped is None
    assert row.target == 98.5


def test_measurement_rejects_negative_counts() -> None:
    with pytest.raises(ScorecardError):
        Measurement(numerator=-1, denominator=10)
