"""What every scorecard and ranking request is computed against: the period asked
for (a year, an as-of date), the basis, the catalogue, the bands, and the worker's kept
values. Made once per request, so every document of one answer agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import asyncpg

from api.bands import Bands, bands_for
from api.errors import ApiError
from api.kept_values import KeptValues
from api.schemas.scorecards import (
    Basis,
    Method,
)
from api.settings import Settings
from db import indicators as indicator_db
from scorecards import Indicator

COMPOSITE = "composite"
#: The country's area code: the root of every area.
NATION = "ID"


class BadPeriod(ApiError):
    status_code = 400
    slug = "invalid-period"
    title = "Invalid period"


class UnknownIndicator(ApiError):
    status_code = 400
    slug = "unknown-indicator"
    title = "Unknown indicator"


@dataclass(frozen=True)
class Period:
    year: int
    as_of: date
    previous_as_of: date
    since: date


def resolve_period(year: int | None, as_of: date | None, today: date) -> Period:
    """``as_of`` defaults to today (or 31 December of a past ``year``); both must agree.

    The previous period, for trends and rank changes, ends on the last day of the
    month before ``as_of``'s.
    """
    if as_of is None:
        as_of = today if year is None or year == today.year else date(year, 12, 31)
        if year is not None and year > today.year:
            as_of = date(year, 1, 1)
    if year is None:
        year = as_of.year
    if not 2000 <= year <= 2100:
        raise BadPeriod("year and as_of must lie between 2000 and 2100.", extra={"year": year})
    if as_of.year != year:
        raise BadPeriod(f"as_of {as_of} is not in {year}.", extra={"year": year})
    previous = as_of.replace(day=1) - timedelta(days=1)
    return Period(year=year, as_of=as_of, previous_as_of=previous, since=date(year, 1, 1))


@dataclass
class Context:
    period: Period
    basis: Basis
    indicators: dict[str, Indicator]
    settings: Settings
    kept: KeptValues | None = None  # the worker's copy of kept values, if it has one
    #: The agreements' fingerprint of each year, read once per report: a province card
    #: looks up targets for each of its parts, and each read it again.
    fingerprints: dict[int, UUID | None] = field(default_factory=dict)

    @property
    def bands(self) -> Bands:
        return bands_for(self.settings)

    def method(self, indicator: str) -> Method:
        return Method(
            indicator=indicator,
            bands=self.bands.described(),
            basis=self.basis,
            as_of=self.period.as_of,
            previous_as_of=self.period.previous_as_of,
            year=self.period.year,
            caps={code: i.cap for code, i in self.indicators.items()},
            generated_at=datetime.now(UTC),
        )


async def context(
    conn: asyncpg.Connection,
    settings: Settings,
    *,
    year: int | None,
    as_of: date | None,
    basis: Basis,
    indicator: str,
    today: date,
    kept: KeptValues | None = None,
) -> Context:
    catalogue = {
        row.code: Indicator(code=row.code, polarity=row.polarity, cap=row.cap, unit=row.unit)  # type: ignore[arg-type]
        for row in await indicator_db.list_indicators(conn)
    }
    if indicator != COMPOSITE and indicator not in catalogue:
        raise UnknownIndicator(
            f"indicator must be 'composite' or one of {', '.join(sorted(catalogue))}.",
            extra={"indicator": indicator},
        )
    return Context(resolve_period(year, as_of, today), basis, catalogue, settings, kept)


async def context_for(
    conn: asyncpg.Connection,
    settings: Settings,
    period: Period,
    basis: Basis,
    indicator: str,
    kept: KeptValues | None = None,
) -> Context:
    """The context for an already resolved period (what every report route builds)."""
    return await context(
        conn,
        settings,
        year=period.year,
        as_of=period.as_of,
        basis=basis,
        indicator=indicator,
        today=period.as_of,
        kept=kept,
    )
