"""Population-weighted aggregates, worked by hand."""

from __future__ import annotations

import pytest

from scorecards import (
    AggregateMember,
    Measurement,
    ScorecardError,
    achievement,
    aggregate,
    weighted_target,
)

# Illustrative region of South Sumatra: a big city and a small one.
PALEMBANG = AggregateMember(
    code="16.71",
    measurement=Measurement(numerator=1_140_000, denominator=1_200_000),  # 95 %
    target=100.0,
)
PAGAR_ALAM = AggregateMember(
    code="16.72",
    measurement=Measurement(numerator=60_000, denominator=100_000),  # 60 %
    target=90.0,
)


def test_region_coverage_is_population_weighted_not_the_mean_of_percentages() -> None:
    result = aggregate([PALEMBANG, PAGAR_ALAM])
    # By hand: (1,140,000 + 60,000) / (1,200,000 + 100,000) = 1,200,000 / 1,300,000 = 92.3077 %.
    assert result.numerator == 1_200_000
    assert result.denominator == 1_300_000
    assert result.coverage == pytest.approx(92.30769231, abs=1e-8)
    # The mean of the percentages, (95 + 60) / 2 = 77.5 %, is what we must not report.
    assert result.coverage != pytest.approx(77.5)
    # Target: (100 * 1,200,000 + 90 * 100,000) / 1,300,000 = 129,000,000 / 1,300,000 = 99.2308 %.
    assert result.target == pytest.approx(99.23076923, abs=1e-8)
    # Achievement: 1,200,000 / 1,290,000 = 93.0233 %.
    assert result.target is not None and result.coverage is not None
    assert achievement(result.coverage, result.target).raw == pytest.approx(93.02325581, abs=1e-8)
    assert (result.members, result.with_data, result.no_data) == (2, 2, 0)


def test_members_without_data_are_left_out_of_both_sums_and_counted() -> None:
    silent = AggregateMember(code="16.04", measurement=None, target=100.0)
    result = aggregate([PALEMBANG, silent, PAGAR_ALAM])
    assert result.coverage == aggregate([PALEMBANG, PAGAR_ALAM]).coverage
    assert result.target == aggregate([PALEMBANG, PAGAR_ALAM]).target
    assert (result.members, result.with_data, result.no_data) == (3, 2, 1)
    assert result.no_data_codes == ("16.04",)


def test_no_data_at_all() -> None:
    result = aggregate([AggregateMember(code="16.04", measurement=None, target=100.0)])
    assert result.coverage is None
    assert result.target is None
    assert (result.members, result.with_data, result.no_data) == (1, 0, 1)
    assert aggregate([]).coverage is None


def test_target_is_withheld_when_a_member_with_data_has_none() -> None:
    untargeted = AggregateMember(
        code="16.74", measurement=Measurement(numerator=10, denominator=20), target=None
    )
    result = aggregate([PALEMBANG, untargeted])
    assert result.target is None
    assert result.no_target_codes == ("16.74",)
    assert result.coverage == pytest.approx(1_140_010 * 100 / 1_200_020)


def test_aggregate_over_100_is_flagged() -> None:
    result = aggregate(
        [AggregateMember(code="a", measurement=Measurement(numerator=110, denominator=100))]
    )
    assert result.coverage == 110.0
    assert result.coverage_over_100


def test_weighted_target_for_cascade_checks() -> None:
    # Districts aiming at 100 % (pop. 300) and 90 % (pop. 100): weighted 97.5 %.
    assert weighted_target([(100.0, 300), (90.0, 100)]) == 97.5
    assert weighted_target([]) is None
    with pytest.raises(ScorecardError):
        weighted_target([(100.0, -1)])
