"""ETags, a per-worker cache of rendered reports, and CSV for integrations.

A report's ETag is derived from the data versions of its scope (kept in PostgreSQL and
bumped in the same transaction as every change), the request's parameters and the
caller's view, never from the rendered bytes. So every replica gives the same ETag for
the same data, and a matching ``If-None-Match`` is answered with 304 before anything
is computed.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import lru_cache
from types import UnionType
from typing import Any, Union, get_args, get_origin

import msgspec
from litestar import Request, Response

#: Litestar adds "; charset=utf-8" to text types itself (it was sent twice).
CSV_MEDIA_TYPE = "text/csv"


def wants_csv(request: Request[Any, Any, Any], fmt: str | None) -> bool:
    """``?format=`` first; else CSV when ``Accept`` weighs it above JSON (RFC 9110
    12.5.1: each type takes the q of the most specific range that matches it, so a type
    refused by name stays refused under a wildcard). JSON on a tie and by default."""
    if fmt is not None:
        return fmt == "csv"
    accept = _header(request, b"accept").lower()
    if (
        "csv" not in accept
        and "text/*" not in accept
        and ("*/*" not in accept or "q=" not in accept)
    ):
        # Nothing that could give CSV, decided without parsing: the usual poll sends
        # "*/*" or none, and "*/*" without weights ranks JSON level with CSV (a tie).
        return False
    ranges = _media_ranges(accept)
    csv_q = _weight(ranges, "text", "csv")
    return csv_q > 0 and csv_q > _weight(ranges, "application", "json")


def _media_ranges(accept: str) -> list[tuple[str, str, float]]:
    """(type, subtype, q) of each range of a lower-cased ``Accept``; a q that is not a
    number from 0 to 1 makes its range refuse (a bad weight is no preference)."""
    ranges = []
    for part in accept.split(","):
        media, *params = part.split(";")
        main, _, sub = media.strip().partition("/")
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also NaN
                    q = 0.0
        ranges.append((main, sub.strip(), q))
    return ranges


def _weight(ranges: list[tuple[str, str, float]], main: str, sub: str) -> float:
    """The q of the most specific range matching ``main/sub`` (0: none matches)."""
    best, weight = -1, 0.0
    for r_main, r_sub, q in ranges:
        if (r_main, r_sub) == (main, sub):
            rank = 2
        elif (r_main, r_sub) == (main, "*"):
            rank = 1
        elif (r_main, r_sub) == ("*", "*"):
            rank = 0
        else:
            continue
        if rank > best:
            best, weight = rank, q
    return weight


def _header(request: Request[Any, Any, Any], name: bytes) -> str:
    """One request header, read from the ASGI scope (a polled report's hot path reads
    two; Litestar's Headers object would be built for each)."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, list):
        out[prefix] = ";".join(str(_cell(v)) for v in value)
    else:
        out[prefix] = _cell(value)


#: A text cell opening with one of these is read as a formula by spreadsheets (OWASP
#: "CSV injection"): region names and notes are typed by people.
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A value as its CSV cell: empty for null, true/false as the JSON writes them
    (Python's str gave True/False), and text that a spreadsheet would run as a formula
    behind a single quote (numbers are never text here, so a negative one stays)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_LEADS):
        return "'" + value
    return value


def to_csv(rows: Sequence[Mapping[str, Any]], *, leading: Sequence[str] = ()) -> bytes:
    """Rows as CSV; nested members become dotted columns named as in the JSON. The
    ``leading`` columns come first whether or not a row has them: an empty ranking still
    names its columns."""
    flat: list[dict[str, Any]] = []
    columns: dict[str, None] = dict.fromkeys(leading)
    for row in rows:
        record: dict[str, Any] = {}
        _flatten("", row, record)
        flat.append(record)
        columns.update(dict.fromkeys(record))
    # A member that is an object in some rows and null in others (a projection, a
    # provenance) is its dotted columns alone: a null leaves them empty, rather than
    # adding a column of its own name beside them.
    parts = [name.split(".") for name in columns if "." in name]
    nested = {".".join(p[:i]) for p in parts for i in range(1, len(p))}
    columns = {name: None for name in columns if name not in nested}
    buffer = io.StringIO()
    # RFC 4180's CRLF: the writer quotes a field holding any character of the line
    # terminator, so with "\n" alone a name with a bare CR was left unquoted, and every
    # reader split its record there.
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    for record in flat:
        writer.writerow({name: cell for name, cell in record.items() if name in columns})
    return buffer.getvalue().encode()


class ReportCache:
    """A small LRU of rendered bodies keyed by ETag (which includes the data versions).

    It also coalesces: while one request renders a key, others for the same key wait
    for that rendering instead of repeating it (after a change, a burst of identical
    polls costs one computation per worker).
    """

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[tuple[bytes, str]]] = {}

    def get(self, key: str) -> tuple[bytes, str] | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: str, body: bytes, media_type: str) -> None:
        self._items[key] = (body, media_type)
        self._items.move_to_end(key)
        while len(self._items) > self.entries:
            self._items.popitem(last=False)


def etag_for(parts: Sequence[Any]) -> str:
    digest = hashlib.sha256(msgspec.json.encode(parts)).hexdigest()
    return f'"{digest[:40]}"'


def _matches(header: str | None, etag: str) -> tuple[bool, bool]:
    """Whether ``If-None-Match`` names this ETag, and whether it says ``*`` (any current
    representation: whether there is one is known only once the request is rendered)."""
    if not header:
        return False, False
    candidates = [c.strip() for c in header.split(",")]
    return etag in candidates or f"W/{etag}" in candidates, "*" in candidates


#: Changed whenever a document's fields or order change, so a poller's ETag from an
#: earlier deploy is not answered 304 with the old body kept.
DOCUMENT_SHAPE = "2026-11-28"


#: The rows of a document's CSV, made only when CSV is asked for.
CsvRows = Callable[[], list[dict[str, Any]]]


async def respond(
    request: Request[Any, Any, Any],
    cache: ReportCache,
    key_parts: Sequence[Any],
    as_csv: bool,
    render: Callable[[], Awaitable[tuple[Any, CsvRows]]],
    *,
    leading: Sequence[str] = (),
) -> Response[Any]:
    """304, a cached body, or render (document, its CSV rows when asked for) and cache
    it."""
    settings = request.app.state.settings
    # The documents' shape, the offices' UTC offset (which agreements are in force on a
    # date), the band tables and the projection's settings shape bodies too: a change of
    # any (a deploy, a restart, replicas set apart) makes new bodies, never a 304 for the
    # old ones.
    shaping = (
        DOCUMENT_SHAPE,
        settings.utc_offset_hours,
        settings.band_traffic_light,
        settings.band_sakip,
        settings.band_dukcapil_level,
        settings.projection_window_reports,
        settings.projection_on_track_ratio,
        settings.projection_at_risk_ratio,
    )
    etag = etag_for([*key_parts, *shaping, "csv" if as_csv else "json"])
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Accept, Authorization"}
    named, any_current = _matches(_header(request, b"if-none-match"), etag)
    if named:
        return Response(b"", status_code=304, headers=headers)
    cached = cache.get(etag)
    if cached is None:
        pending = cache._pending.get(etag)
        if pending is not None:
            cached = await asyncio.shield(pending)
        else:
            future: asyncio.Future[tuple[bytes, str]] = asyncio.get_running_loop().create_future()
            cache._pending[etag] = future
            try:
                document, rows = await render()
                if as_csv:
                    cached = (to_csv(rows(), leading=leading), CSV_MEDIA_TYPE)
                else:
                    cached = (msgspec.json.encode(document), "application/json")
                cache.put(etag, *cached)
                future.set_result(cached)
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # retrieved here, so an unawaited failure is not logged
                raise
            finally:
                del cache._pending[etag]
    if any_current:  # there is one (a request refused as it stands raised above)
        return Response(b"", status_code=304, headers=headers)
    body, media_type = cached
    return Response(body, media_type=media_type, headers=headers)


@lru_cache(maxsize=64)
def _blank(cls: type[msgspec.Struct]) -> dict[str, Any]:
    """Each member of ``cls`` that may hold a struct, as that struct with every field
    null (its own such members likewise): what a null one is written as in CSV."""
    blank: dict[str, Any] = {}
    for field in msgspec.structs.fields(cls):
        # A struct, or a union holding one (``X | None``); not a dict or list of them,
        # whose members are named by the data (``indicators.<code>``).
        union = get_origin(field.type) in (Union, UnionType)
        options = get_args(field.type) if union else (field.type,)
        inner = next(
            (t for t in options if isinstance(t, type) and issubclass(t, msgspec.Struct)), None
        )
        if inner is not None:
            blank[field.encode_name] = {
                f.encode_name: None for f in msgspec.structs.fields(inner)
            } | _blank(inner)
    return blank


def _filled(row: dict[str, Any], blank: dict[str, Any]) -> dict[str, Any]:
    for name, empty in blank.items():
        if row.get(name) is None:
            row[name] = empty
        elif isinstance(row[name], dict):
            _filled(row[name], empty)
    return row


def single_columns(cls: type[msgspec.Struct], *extra: str) -> tuple[str, ...]:
    """The columns of ``cls`` holding one value each (not a struct, dict or list), after
    ``extra``: the header of its rows' CSV when there are none."""
    nested = set(_blank(cls))
    own = tuple(
        f.encode_name
        for f in msgspec.structs.fields(cls)
        if f.encode_name not in nested and not _holds_many(f.type)
    )
    return (*extra, *own)


def _holds_many(annotation: Any) -> bool:
    """Whether a field's type is a dict or list, alone or in a union (``X | None``)."""
    union = get_origin(annotation) in (Union, UnionType)
    options = get_args(annotation) if union else (annotation,)
    return any(t in (dict, list) or get_origin(t) in (dict, list) for t in options)


def rows_of(items: Sequence[Any], **extra: Any) -> list[dict[str, Any]]:
    """Struct rows as plain dicts (for CSV), with ``extra`` columns first. A member that
    may hold a struct and is null keeps that struct's columns, empty: a district with no
    projection has the same columns as one with, so a reader's columns stay put."""
    return [{**extra, **_filled(msgspec.to_builtins(item), _blank(type(item)))} for item in items]


def card_rows(
    indicators: Sequence[Any], composite: Any, *, row_type: type[msgspec.Struct], **where: Any
) -> list[dict[str, Any]]:
    """A card's indicator rows (of ``row_type``), then its composite as a row of its own
    (``indicator`` "composite"): the CSV carries every headline number the JSON has. The
    composite row holds every column of an indicator row, empty, so the columns come in
    the same order when it is a CSV's first row (a division head's card, without the
    district office's rows, led with the composite's columns)."""
    blank = {f.encode_name: None for f in msgspec.structs.fields(row_type)} | _blank(row_type)
    return [
        *rows_of(indicators, **where),
        {
            **where,
            **blank,
            "indicator": "composite",
            "achievement_capped": composite.score,
            "band": composite.band,
            "predikat": composite.predikat,
            "level": composite.level,
        },
    ]


def aggregate_row(aggregate: Any, **where: Any) -> dict[str, Any]:
    """An area's population-weighted aggregate as a ranking-shaped row (a province
    card's CSV leads with it), its composite as the score."""
    return {
        **where,
        "code": aggregate.code,
        "name": aggregate.name,
        "status": None,
        "rank": None,
        "previous_rank": None,
        "change": None,
        "score": aggregate.composite.score,
        "band": aggregate.composite.band,
        "predikat": aggregate.composite.predikat,
        "indicators": {
            row.indicator: {
                "coverage": row.coverage,
                "coverage_over_100": row.coverage_over_100,
                "target": row.target,
                "achievement": row.achievement_raw,
                "members": row.members,
                "with_data": row.with_data,
                "no_data": row.no_data,
            }
            for row in aggregate.indicators
        },
    }
