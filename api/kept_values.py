"""Each district's counting values at a date, copied per worker and tagged with its data
version.

A cold national ranking read every district's kept values (1,542 rows) and probed the
history of most of them for the previous period, although one district had reported
since the last ranking. Every write that changes a district's values (a report, a
review, a correction) bumps that district's data version in the same transaction, and
the change feed hears of it: so values read after the feed said version *v* are good
for as long as it still says *v*, and only the districts that moved are read again.

The tag is taken before the read: the values are at least as new as the version they
are filed under, never older. Without a live feed nothing is kept or trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import asyncpg

from api.change_feed import ChangeFeed
from db import scorecards as data

Found = dict[tuple[str, str], data.Value]  # (district, indicator) → its value

# basis, indicators, since, day, districts
_Key = tuple[str, tuple[str, ...], date, date, tuple[str, ...]]


async def read_values_at(
    conn: asyncpg.Connection,
    districts: list[str],
    indicators: list[str],
    *,
    basis: data.Basis,
    since: date,
    days: Sequence[date],
) -> list[Found]:
    """The latest counting values in [since, day] for each day, read from PostgreSQL."""
    if not days:
        return []
    current = await data.current_values(conn, districts, indicators, basis=basis)
    return [
        await data.values_at(conn, current, indicators, as_of=day, since=since, basis=basis)
        for day in days
    ]


class KeptValues:
    """Views (basis, catalogue, districts, day) → values, each with the versions of its
    districts when it was read: a view is brought up to date by reading again only the
    districts whose version moved. Views are shared: callers must not change them."""

    def __init__(self, feed: ChangeFeed | None, views: int) -> None:
        self._feed = feed
        self._max = views
        self._views: dict[_Key, tuple[int, list[int], Found]] = {}
        self._districts: dict[str | None, list[asyncpg.Record]] = {}

    def tags(self, districts: list[str]) -> tuple[int, list[int]] | None:
        """(epoch, each district's version) while the feed is live: anything read after
        this call and remembered under these numbers is at least that new."""
        if self._feed is None or self._max == 0:
            return None
        return self._feed.own_versions(districts)

    async def districts(
        self, conn: asyncpg.Connection, province: str | None
    ) -> list[asyncpg.Record]:
        """``data.districts``, read once per province: areas are reference data, loaded
        at start-up and never edited through the API."""
        found = self._districts.get(province)
        if found is None:
            found = self._districts[province] = await data.districts(conn, province)
        return found

    async def values_at(
        self,
        conn: asyncpg.Connection,
        districts: list[str],
        indicators: list[str],
        *,
        basis: data.Basis,
        since: date,
        days: Sequence[date],
    ) -> list[Found]:
        """What ``read_values_at`` answers, reading only the districts that changed."""
        if not districts:  # a coordinator who leads no region yet: nothing to read
            return [{} for _ in days]
        tags = self.tags(districts)
        if tags is None or not days:
            return await read_values_at(
                conn, districts, indicators, basis=basis, since=since, days=days
            )
        epoch, versions = tags
        wanted = tuple(indicators)
        keys = [(basis, wanted, since, day, tuple(districts)) for day in days]
        views = [self._views.get(key) for key in keys]
        stale: set[str] = set()
        for view in views:
            if view is None or view[0] != epoch:
                stale = set(districts)
                break
            moved = zip(districts, view[1], versions, strict=True)
            stale.update(code for code, old, new in moved if old != new)
        if not stale:
            return [view[2] for view in views]  # type: ignore[index]
        fresh = await read_values_at(
            conn, sorted(stale), indicators, basis=basis, since=since, days=days
        )
        out = []
        for key, view, read in zip(keys, views, fresh, strict=True):
            found: Found = {}
            if view is not None and view[0] == epoch:
                found = dict(view[2])
                for code in stale:
                    for indicator in wanted:
                        found.pop((code, indicator), None)
            found.update(read)
            out.append(found)
            if len(self._views) >= self._max and key not in self._views:
                del self._views[next(iter(self._views))]
            self._views[key] = (epoch, versions, found)
        return out
