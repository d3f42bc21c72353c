"""The band tables the reports use, read from settings (DESIGN: bands are configurable
threshold tables), parsed once per distinct setting."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

from scorecards.bands import BandTable, parse_table, table_spec

if TYPE_CHECKING:
    from api.settings import Settings


class Bands(NamedTuple):
    traffic_light: BandTable
    sakip: BandTable
    dukcapil_level: BandTable

    def described(self) -> dict[str, str]:
        """Each table as configured, for a document's ``method``."""
        return {
            table.name: table_spec(table) + ("" if table.inclusive else " (strict: > threshold)")
            for table in self
        }


@lru_cache(maxsize=8)
def _parsed(traffic_light: str, sakip: str, dukcapil_level: str) -> Bands:
    return Bands(
        parse_table("traffic_light", traffic_light, inclusive=True),
        parse_table("sakip", sakip, inclusive=False),
        parse_table("dukcapil_level", dukcapil_level, inclusive=True),
    )


def bands_for(settings: Settings) -> Bands:
    return _parsed(settings.band_traffic_light, settings.band_sakip, settings.band_dukcapil_level)
