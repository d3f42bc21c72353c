"""Bounded offset pagination shared by list endpoints."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from api.errors import ApiError
from api.settings import Settings

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of results: ``total`` counts every match, not just this page."""

    items: list[T]
    total: int
    limit: int
    offset: int


MAX_OFFSET = 2**31 - 1


class PageOutOfRange(ApiError):
    status_code = 400
    slug = "invalid-page"
    title = "Invalid page parameters"


def bounded(limit: int | None, offset: int, *, default: int, maximum: int) -> tuple[int, int]:
    """Clamp nothing silently: out-of-range values are a client error worth telling."""
    chosen = default if limit is None else limit
    if chosen < 1 or chosen > maximum:
        raise PageOutOfRange(f"limit must be between 1 and {maximum}", extra={"limit": chosen})
    if offset < 0:
        raise PageOutOfRange("offset must not be negative", extra={"offset": offset})
    if offset > MAX_OFFSET:
        # Beyond any table; a larger value would not even fit the query's bigint (a 500).
        raise PageOutOfRange(f"offset must be at most {MAX_OFFSET}", extra={"offset": offset})
    return chosen, offset


def page_bounds(limit: int | None, offset: int, settings: Settings) -> tuple[int, int]:
    """``bounded`` with the configured default and maximum page sizes."""
    return bounded(
        limit, offset, default=settings.page_size_default, maximum=settings.page_size_max
    )
