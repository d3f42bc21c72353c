"""Projection to the year end from recent snapshots."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from scorecards import ProjectionThresholds, ScorecardError, Snapshot, project

YEAR_END_2018 = date(2018, 12, 31)


def makassar(last_numerator: int = 587_000) -> list[Snapshot]:
    """Makassar, April 2018: ~500 recordings a day, 1,000 a day needed for 85 %.

    Illustrative counts: 1,000,000 obliged; 581,500 recorded on 1 Apr, 587,000 on
    12 Apr (5,500 in 11 days = 500/day). Target count 85 % = 850,000, so 263,000
    remain, over the 263 days from 12 Apr to 31 Dec: 1,000/day.
    """
    return [
        Snapshot(as_of=date(2018, 4, 12), numerator=last_numerator, denominator=1_000_000),
        Snapshot(as_of=date(2018, 4, 1), numerator=581_500, denominator=1_000_000),
    ]


def test_makassar_is_off_track() -> None:
    result = project(makassar(), 85.0, YEAR_END_2018)
    assert result.as_of == date(2018, 4, 12)
    assert result.days_left == 263
    assert result.target_count == 850_000
    assert result.remaining == 263_000
    assert result.achieved_rate == 500.0
    assert result.needed_rate == 1_000.0
    assert result.ratio == 0.5
    assert result.status == "off_track"
    assert not result.reached
    # 263,000 / 500 = 526 days after 12 Apr 2018.
    assert result.projected_date == date(2018, 4, 12) + timedelta(days=526)
    assert result.projected_date == date(2019, 9, 20)


def test_status_bands_are_inclusive_and_configurable() -> None:
    exactly_needed = [
        Snapshot(as_of=date(2018, 12, 1), numerator=0, denominator=1_000),
        Snapshot(as_of=date(2018, 12, 11), numerator=100, denominator=1_000),  # 10/day
    ]
    # 20 days left, 900 needed for 100 % -> 45/day: ratio 10/45.
    assert project(exactly_needed, 100.0, YEAR_END_2018).status == "off_track"
    # 30 % target: 300 - 100 = 200 in 20 days -> 10/day needed: ratio exactly 1.0.
    assert project(exactly_needed, 30.0, YEAR_END_2018).status == "on_track"
    # 34 %: 240 remaining -> 12/day: ratio 0.8333 -> at risk.
    at_risk = project(exactly_needed, 34.0, YEAR_END_2018)
    assert at_risk.ratio == pytest.approx(10 / 12)
    assert at_risk.status == "at_risk"
    strict = ProjectionThresholds(on_track=1.2, at_risk=0.9)
    assert project(exactly_needed, 34.0, YEAR_END_2018, strict).status == "off_track"


def test_already_reached_is_on_track_with_nothing_needed() -> None:
    result = project(makassar(last_numerator=860_000), 85.0, YEAR_END_2018)
    assert result.reached
    assert result.status == "on_track"
    assert result.needed_rate == 0.0
    assert result.remaining == 0.0
    assert result.ratio is None
    assert result.projected_date == date(2018, 4, 12)


def test_no_progress_has_no_projected_date() -> None:
    flat = [
        Snapshot(as_of=date(2018, 4, 1), numerator=500, denominator=1_000),
        Snapshot(as_of=date(2018, 4, 12), numerator=500, denominator=1_000),
    ]
    result = project(flat, 85.0, YEAR_END_2018)
    assert result.achieved_rate == 0.0
    assert result.projected_date is None
    assert result.status == "off_track"


def test_single_snapshot_has_unknown_rate() -> None:
    result = project(makassar()[:1], 85.0, YEAR_END_2018)
    assert result.achieved_rate is None
    assert result.ratio is None
    assert result.status == "unknown"
    assert result.needed_rate == 1_000.0


def test_last_day_of_year_not_reached_is_off_track() -> None:
    snaps = [
        Snapshot(as_of=date(2018, 12, 1), numerator=0, denominator=1_000),
        Snapshot(as_of=date(2018, 12, 31), numerator=300, denominator=1_000),
    ]
    result = project(snaps, 85.0, YEAR_END_2018)
    assert result.days_left == 0
    assert result.needed_rate is None
    assert result.status == "off_track"
    assert result.projected_date == date(2018, 12, 31) + timedelta(days=55)  # 550 / 10 per day


def test_later_duplicate_date_wins() -> None:
    snaps = [
        Snapshot(as_of=date(2018, 4, 1), numerator=581_500, denominator=1_000_000),
        Snapshot(as_of=date(2018, 4, 12), numerator=999, denominator=1_000_000),
        Snapshot(as_of=date(2018, 4, 12), numerator=587_000, denominator=1_000_000),
    ]
    assert project(snaps, 85.0, YEAR_END_2018).numerator == 587_000


def test_rejects_bad_input() -> None:
    with pytest.raises(ScorecardError):
        project([], 85.0, YEAR_END_2018)
    with pytest.raises(ScorecardError):
        project(makassar(), 85.0, date(2018, 4, 11))
    with pytest.raises(ScorecardError):
        project(makassar(), float("nan"), YEAR_END_2018)
    with pytest.raises(ScorecardError):
        ProjectionThresholds(on_track=0.8, at_risk=1.0)
