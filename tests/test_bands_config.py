"""Band tables come from settings (DESIGN: "Bands are configurable threshold tables");
before, the reports always used the built-in tables."""

from __future__ import annotations

from datetime import date

import asyncpg
import msgspec
import pytest

from api.settings import Settings, settings_from_env
from scorecards.bands import (
    DUKCAPIL_LEVELS,
    SAKIP_PREDIKAT,
    TRAFFIC_LIGHT,
    parse_table,
    table_spec,
)
from scorecards.errors import ScorecardError
from tests.agreement_helpers import national_agreement
from tests.people import Person, bearer
from tests.submitting import register_key, served, submit

YEAR = 2021


async def test_a_district_card_uses_the_configured_tables(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """891 of 1,000 against 99 % is an achievement of 90: green and A (SAKIP is strict:
    90 is not AA) by the built-in tables; yellow and BB under stricter ones."""
    chosen = msgspec.structs.replace(
        settings,
        band_traffic_light="green=95,yellow=80,red",
        band_sakip="AA=95,A=90,BB=80,B=60,C",
        band_dukcapil_level="top=100,mid=85,low",
    )
    for config, expected in ((settings, ("green", "A")), (chosen, ("yellow", "BB"))):
        async with served(config) as (app, http):
            if config is settings:
                await national_agreement(
                    http,  # type: ignore[arg-type]
                    app,
                    conn,
                    people,
                    year=YEAR,
                    target_list=[{"indicator": "ktp_el", "annual": 99}],
                )
                signer = await register_key(conn, people["district_head"])
                await submit(
                    http,  # type: ignore[arg-type]
                    app,
                    signer,
                    values={"ktp_el": (891, 1000)},
                    as_of=date(YEAR, 5, 15),
                )
            card = await http.get(
                "/v1/scorecards/districts/16.71",
                params={"as_of": f"{YEAR}-05-31"},
                headers=bearer(app, people["province_monitor"]),
            )
            assert card.status_code == 200, card.text
            body = card.json()
            row = {r["indicator"]: r for r in body["indicators"]}["ktp_el"]
            assert row["achievement_raw"] == 90.0
            assert (row["band"], body["composite"]["predikat"]) == expected, body["composite"]
            assert body["method"]["bands"]["traffic_light"] == config.band_traffic_light
    assert body["composite"]["level"] == "mid"


@pytest.mark.parametrize(
    "spec",
    [
        "green=90,yellow=70",  # no label below them all
        "green=90,yellow=95,red",  # not descending
        "green=ninety,red",
        "green=90,green=70,red",
        "=90,red",
        "green=nan,red",
    ],
)
def test_a_table_that_cannot_be_read_stops_start_up(spec: str) -> None:
    with pytest.raises((ValueError, msgspec.ValidationError)) as caught:
        settings_from_env({"KINERJA_BAND_TRAFFIC_LIGHT": spec}, database_url="postgresql://x")
    assert "band table" in str(caught.value), caught.value


def test_the_defaults_are_the_built_in_tables() -> None:
    assert parse_table("traffic_light", table_spec(TRAFFIC_LIGHT), inclusive=True) == TRAFFIC_LIGHT
    assert parse_table("sakip", Settings().band_sakip, inclusive=False) == SAKIP_PREDIKAT
    assert (
        parse_table("dukcapil_level", Settings().band_dukcapil_level, inclusive=True)
        == DUKCAPIL_LEVELS
    )
    with pytest.raises(ScorecardError):
        parse_table("x", "a=1,b=1,c", inclusive=True)


async def test_other_tables_make_another_etag(
    settings: Settings, people: dict[str, Person]
) -> None:
    """A client polling with If-None-Match across a restart with other tables must not be
    told its body (with the old bands) is current."""
    tags = []
    for config in (settings, msgspec.structs.replace(settings, band_sakip="AA=95,A=90,D")):
        async with served(config) as (app, http):
            card = await http.get(
                "/v1/scorecards/districts/16.71",
                params={"as_of": f"{YEAR}-05-31"},
                headers=bearer(app, people["province_monitor"]),
            )
            assert card.status_code == 200, card.text
            tags.append(card.headers["etag"])
    assert tags[0] != tags[1]
