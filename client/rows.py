"""Reports typed at the keyboard or kept in a CSV or JSON file, as submissions to sign.

A row file is read and checked as a whole before anything is signed or sent, so
a typo on line 40 does not leave lines 1 to 39 on the server and the rest not.

CSV (one line per district x indicator; lines with the same district and as-of
date make one submission, in the order they first appear)::

    district,as_of,indicator,numerator,denominator,stated_pct,office,mobile,note
    16.71,2021-02-15,ktp_el,5545117,5940433,97.70,1200,300,recording device broken
    16.71,2021-02-15,akta_lahir,401000,452000,,,,

Required columns: ``district, as_of, indicator, numerator, denominator``.
Optional: ``stated_pct``, the channels (``office, kecamatan, mobile, school,
hospital, other``; empty means 0 when any channel of the line is given), and
``note`` (one per submission). A UTF-8 BOM and ``;`` as the separator (as
spreadsheets in an Indonesian locale write it) are accepted.

JSON: one object or a list of objects::

    {"district": "16.71", "as_of": "2021-02-15", "note": "...",
     "values": {"ktp_el": {"numerator": 5545117, "denominator": 5940433,
                           "stated_pct": 97.70, "channels": {"office": 1200}}}}
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from client.signing import CHANNELS

REQUIRED_COLUMNS = ("district", "as_of", "indicator", "numerator", "denominator")
OPTIONAL_COLUMNS = ("stated_pct", *CHANNELS, "note")
JSON_KEYS = frozenset({"district", "as_of", "values", "note", "division", "supersedes"})


class RowError(ValueError):
    """A row file (or a command-line value) that cannot become a submission."""


@dataclass
class Report:
    """One submission to sign: a district's cumulative counts as of a date.

    Attributes:
        district: District code, e.g. ``16.71``.
        as_of: Date the counts refer to.
        values: Per indicator: ``numerator``, ``denominator`` and optionally
            ``stated_pct`` and ``channels`` (the shape ``build_payload`` takes).
        note: Free text.
        division: Division id, when reporting for a division.
        supersedes: ``{"id": ..., "reason": ...}`` of a submission this corrects.
        source: Where it came from, for messages (``rows.csv:2-4``).
        jti: The ``jti`` it was signed with before, if it was (signed again, it keeps it).
    """

    district: str
    as_of: date
    values: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    division: str | None = None
    supersedes: dict[str, Any] | None = None
    source: str = ""
    jti: str | None = None


def read_reports(path: Path) -> list[Report]:
    """Read a CSV or JSON row file (by suffix; ``.json`` is JSON, anything else CSV).

    Raises:
        RowError: Unreadable file or a bad row, naming the file and line.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RowError(f"{path}: {exc}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        return parse_json(text, path.name)
    return parse_csv(text, path.name)


def parse_date(value: str, where: str) -> date:
    """An ISO date (``2021-02-15``)."""
    try:
        return date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise RowError(f"{where}: as_of must be a date like 2021-02-15, got {value!r}") from None


def parse_count(value: str, where: str) -> int:
    """A non-negative whole number (``_`` allowed as a digit separator)."""
    text = value.strip().replace("_", "")
    # "²" is a digit to isdigit, not to int; and int refuses over 4,300 digits with its
    # own error, where no count has more than a bigint's 19.
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 19:
        raise RowError(f"{where}: expected a whole number >= 0, got {value[:40]!r}")
    return int(text)


def parse_percent(value: str, where: str) -> float:
    """A percentage such as ``97.70``, or ``97,70`` as a spreadsheet in an Indonesian
    locale writes it (which is why it separates cells with ``;``)."""
    text = value.strip()
    if text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        raise RowError(f"{where}: expected a number such as 97.70, got {value!r}") from None


def parse_csv(text: str, source: str) -> list[Report]:
    """Group a long-format CSV into reports (see the module docstring)."""
    try:
        return _parse_csv(text, source)
    except csv.Error as exc:  # e.g. a quote never closed, over the field size limit
        raise RowError(f"{source}: not valid CSV: {exc}") from None


def _parse_csv(text: str, source: str) -> list[Report]:
    # Blank lines before the header are skipped, as blank lines everywhere else are (the
    # reader would take the first for an empty header); line numbers still count them.
    body = text.lstrip("\r\n")
    skipped = text[: len(text) - len(body)].count("\n")
    first_line = body.split("\n", 1)[0]
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.DictReader(io.StringIO(body), delimiter=delimiter)
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        raise RowError(f"{source}: empty file; expected a header line")
    # Each column with no name gets one of its own (the reader would keep only the last
    # of several under ""), which no real column can have.
    unnamed = [f"\0{i}" for i, name in enumerate(header) if not name]
    header = [name or f"\0{i}" for i, name in enumerate(header)]
    reader.fieldnames = header
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:  # the reader would keep the last copy, silently
        raise RowError(f"{source}: column named more than once: {', '.join(twice)}")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    # Columns with no name (a spreadsheet's cells touched right of the table) are read
    # only to check that they hold nothing.
    unknown = [
        name
        for name in header
        if name not in unnamed and name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    ]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        raise RowError(
            f"{source}: {'; '.join(problems)}; expected "
            f"{','.join(REQUIRED_COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}]"
        )
    reports: dict[tuple[str, date], Report] = {}
    lines: dict[tuple[str, date], list[int]] = {}
    for line in reader:
        number = reader.line_num + skipped
        where = f"{source}:{number}"
        if line.get(None):  # more cells than header columns
            raise RowError(f"{where}: more values than columns")
        cells = {name: (value or "").strip() for name, value in line.items() if name}
        if not any(cells.values()):
            continue
        if any(cells[name] for name in unnamed):
            raise RowError(f"{where}: a value under a column with no name")
        district = cells["district"]
        as_of = parse_date(cells["as_of"], where)
        indicator = cells["indicator"]
        if not indicator:
            raise RowError(f"{where}: indicator is empty")
        value: dict[str, Any] = {
            "numerator": parse_count(cells["numerator"], f"{where}: numerator"),
            "denominator": parse_count(cells["denominator"], f"{where}: denominator"),
        }
        if cells.get("stated_pct"):
            value["stated_pct"] = parse_percent(cells["stated_pct"], f"{where}: stated_pct")
        if any(cells.get(name) for name in CHANNELS):
            value["channels"] = {
                name: parse_count(cells[name], f"{where}: {name}")
                for name in CHANNELS
                if cells.get(name)
            }
        key = (district, as_of)
        report = reports.get(key)
        if report is None:
            report = reports[key] = Report(district=district, as_of=as_of)
            lines[key] = []
        if indicator in report.values:
            raise RowError(f"{where}: {indicator} given twice for {district} as of {as_of}")
        report.values[indicator] = value
        lines[key].append(number)
        note = cells.get("note")
        if note:
            if report.note is not None and report.note != note:
                raise RowError(
                    f"{where}: a different note for {district} as of {as_of}; "
                    "give the note on one line only"
                )
            report.note = note
    if not reports:
        raise RowError(f"{source}: no rows")
    for key, report in reports.items():
        numbers = lines[key]
        span = f"{numbers[0]}" if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"
        report.source = f"{source}:{span}"
    return list(reports.values())


class _NamedTwice(Exception):
    pass


def _one_of_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object, refused if it names a member twice (``json`` would keep the last, and
    the server refuses a signed payload that does)."""
    found = dict(pairs)
    if len(found) < len(pairs):
        names = [name for name, _ in pairs]
        twice = sorted({name for name in names if names.count(name) > 1})
        raise _NamedTwice(f"{', '.join(twice)} given more than once in one object")
    return found


def parse_json(text: str, source: str) -> list[Report]:
    """Reports from a JSON object or list of objects (see the module docstring)."""
    try:
        data = json.loads(text, object_pairs_hook=_one_of_each)
    except _NamedTwice as exc:
        raise RowError(f"{source}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # also a 5,000-digit number, [[[[...
        raise RowError(f"{source}: not valid JSON: {str(exc)[:200]}") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise RowError(f"{source}: no rows")
    reports = []
    seen: dict[tuple[str, str, date, str], str] = {}
    for index, item in enumerate(items, start=1):
        where = f"{source}[{index}]"
        if not isinstance(item, dict):
            raise RowError(f"{where}: expected an object")
        unknown = sorted(set(item) - JSON_KEYS)
        if unknown:
            known = ", ".join(sorted(JSON_KEYS))
            raise RowError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {known}")
        for name in ("district", "as_of", "values"):
            if name not in item:
                raise RowError(f"{where}: {name} is required")
        if not isinstance(item["district"], str):
            raise RowError(f'{where}: district must be a string like "16.71"')
        if not isinstance(item["as_of"], str):
            raise RowError(f'{where}: as_of must be a string like "2021-02-15"')
        if not isinstance(item["values"], dict) or not item["values"]:
            raise RowError(f"{where}: values must be a non-empty object of indicator to counts")
        as_of = parse_date(item["as_of"], where)
        if item.get("supersedes") is None:
            # As in a CSV, an indicator given twice for one district and date is refused:
            # most often a copy of an entry, which sent would be stored twice.
            for code in item["values"]:
                key = (item["district"], str(item.get("division")), as_of, str(code))
                if key in seen:
                    raise RowError(
                        f"{where}: {code} for {item['district']} as of {as_of} is already "
                        f"given in {seen[key]}"
                    )
                seen[key] = where
        reports.append(
            Report(
                district=item["district"],
                as_of=as_of,
                values=dict(item["values"]),
                note=item.get("note"),
                division=item.get("division"),
                supersedes=item.get("supersedes"),
                source=where,
            )
        )
    return reports
