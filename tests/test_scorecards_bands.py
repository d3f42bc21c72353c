"""Threshold tables: traffic light, SAKIP predikat, Dukcapil levels, custom tables."""

from __future__ import annotations

import msgspec
import pytest

from scorecards import (
    DUKCAPIL_LEVELS,
    SAKIP_PREDIKAT,
    TRAFFIC_LIGHT,
    Band,
    BandTable,
    ScorecardError,
    band_for,
)


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (95.0, "AA"),
        (90.01, "AA"),
        (90.0, "A"),  # strictly greater: exactly 90 is not AA
        (80.0, "BB"),
        (70.5, "BB"),
        (70.0, "B"),
        (60.0, "CC"),
        (50.0, "C"),
        (30.0, "D"),
        (0.0, "D"),
        (-10.0, "D"),
    ],
)
def test_sakip_predikat_is_strict(value: float, label: str) -> None:
    assert band_for(value, SAKIP_PREDIKAT) == label


@pytest.mark.parametrize(
    ("value", "label"),
    [(120.0, "green"), (90.0, "green"), (89.99, "yellow"), (70.0, "yellow"), (69.9, "red")],
)
def test_traffic_light_is_inclusive(value: float, label: str) -> None:
    assert band_for(value, TRAFFIC_LIGHT) == label


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (100.0, "level_4"),
        (99.9, "level_3"),
        (90.0, "level_3"),
        (75.0, "level_2"),
        (10.0, "level_1"),
    ],
)
def test_dukcapil_levels(value: float, label: str) -> None:
    assert band_for(value, DUKCAPIL_LEVELS) == label


def test_no_data_gets_no_band() -> None:
    assert band_for(None, SAKIP_PREDIKAT) is None


def test_nan_is_rejected() -> None:
    with pytest.raises(ScorecardError):
        band_for(float("nan"), TRAFFIC_LIGHT)


def test_thresholds_must_descend() -> None:
    with pytest.raises(ScorecardError):
        BandTable(
            name="bad",
            bands=(Band(label="low", threshold=50.0), Band(label="high", threshold=90.0)),
            below="none",
        )


def test_tables_are_data_and_decode_from_json() -> None:
    raw = (
        b'{"name":"province_16","inclusive":false,"below":"merah",'
        b'"bands":[{"label":"hijau","threshold":95},{"label":"kuning","threshold":85}]}'
    )
    table = msgspec.json.decode(raw, type=BandTable)
    assert band_for(95.0, table) == "kuning"
    assert band_for(95.5, table) == "hijau"
    assert band_for(85.0, table) == "merah"
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            b'{"name":"x","below":"z","bands":[{"label":"a","threshold":1},'
            b'{"label":"b","threshold":2}]}',
            type=BandTable,
        )
