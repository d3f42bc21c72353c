"""Plain-text tables and a progress bar for the terminal (standard library only).

Output is ASCII so it reads the same in a Windows console, over SSH, or pasted
into a WhatsApp message to the province office.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

DASH = "-"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Iterable[int] = ()) -> str:
    """Columns padded to their widest cell; the columns in ``right`` right-aligned (numbers)."""
    body = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    align_right = set(right)

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in align_right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in body]
    return "\n".join(out)


def count(value: Any) -> str:
    """A count with thousands separators: ``5,545,117``."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else DASH


def number(value: Any, digits: int = 2, suffix: str = "") -> str:
    """A rounded number, or a dash when absent."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,.{digits}f}{suffix}"
    return DASH


def signed(value: Any, digits: int = 2) -> str:
    """A change with its sign: ``+1.20``, ``-3``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:+d}" if value else "0"
    if isinstance(value, float):
        return f"{value:+.{digits}f}"
    return DASH


def text(value: Any) -> str:
    """A string, or a dash when absent or empty."""
    return str(value) if value not in (None, "", []) else DASH


def local_time(unix: float) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM`` (a dash for one no date can hold: an
    outbox written by hand must not stop it being listed)."""
    try:
        return datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return DASH


def scorecard(doc: Mapping[str, Any]) -> str:
    """A district scorecard (``GET /v1/scorecards/districts/{code}``) as text."""
    district = doc.get("district") or {}
    method = doc.get("method") or {}
    lines = [
        f"{district.get('name', '?')} ({district.get('code', '?')})"
        f"  year {method.get('year', '?')}, as of {method.get('as_of', '?')}"
        f", basis {method.get('basis', '?')}",
        "",
        _indicator_table(doc.get("indicators") or []),
        "",
        "Composite: " + _composite(doc.get("composite") or {}),
    ]
    for division in doc.get("divisions") or []:
        lines += [
            "",
            f"Division {division.get('name', '?')} ({division.get('code', '?')})",
            _indicator_table(division.get("indicators") or []),
            "Composite: " + _composite(division.get("composite") or {}),
        ]
    return "\n".join(lines)


def _indicator_table(rows: Sequence[Mapping[str, Any]]) -> str:
    headers = (
        "Indicator",
        "Numerator",
        "Denominator",
        "Coverage %",
        "Target %",
        "Achievement",
        "Band",
        "Change",
        "Projection",
        "Flags",
    )
    body = []
    for row in rows:
        status = row.get("status")
        trend = row.get("trend") or {}
        projection = row.get("projection") or {}
        coverage = number(row.get("coverage"))
        if row.get("coverage_over_100"):
            coverage += " (!)"
        body.append(
            (
                row.get("indicator"),
                count(row.get("numerator")),
                count(row.get("denominator")),
                coverage if status != "no_data" else "no data",
                number(row.get("target")),
                number(row.get("achievement_raw")),
                text(row.get("band")),
                signed(trend.get("change_points")),
                text(projection.get("status")),
                ", ".join(row.get("flags") or []) or DASH,
            )
        )
    return table(headers, body, right=(1, 2, 3, 4, 5, 7))


def _composite(composite: Mapping[str, Any]) -> str:
    score = composite.get("score")
    if score is None:
        return "no score (no indicator with data and a target)"
    parts = [
        f"score {number(score)}",
        f"band {text(composite.get('band'))}",
        f"predikat {text(composite.get('predikat'))}",
        f"level {text(composite.get('level'))}",
    ]
    if composite.get("no_data"):
        parts.append("no data: " + ", ".join(composite["no_data"]))
    return "; ".join(parts)


def ranking(doc: Mapping[str, Any]) -> str:
    """A ranking (``GET /v1/rankings/districts``) as text."""
    method = doc.get("method") or {}
    rows = doc.get("rows") or []
    codes: list[str] = []
    for row in rows:
        for code in row.get("indicators") or {}:
            if code not in codes:
                codes.append(code)
    headers = ("Rank", "Change", "Code", "Name", "Score", "Band", "Predikat", *codes)
    body = []
    for row in rows:
        status = row.get("status")
        rank = row.get("rank")
        indicators = row.get("indicators") or {}
        body.append(
            (
                rank if rank is not None else DASH,
                _change(row),
                row.get("code"),
                row.get("name"),
                number(row.get("score")) if status == "ranked" else str(status).replace("_", " "),
                text(row.get("band")),
                text(row.get("predikat")),
                *(number((indicators.get(code) or {}).get("coverage")) for code in codes),
            )
        )
    counts = doc.get("counts") or {}
    where = f"province {doc['province']}" if doc.get("province") else "nationwide"
    title = (
        f"{str(doc.get('kind', 'districts')).capitalize()}, {where}: indicator "
        f"{method.get('indicator', '?')}, year {method.get('year', '?')}, "
        f"as of {method.get('as_of', '?')}, basis {method.get('basis', '?')}"
    )
    footer = (
        f"{counts.get('rows', len(rows))} rows: {counts.get('ranked', 0)} ranked, "
        f"{counts.get('no_data', 0)} without data, {counts.get('no_target', 0)} without a target"
    )
    if codes:
        footer += f"; indicator columns are coverage % ({', '.join(codes)})"
    right = (0, 1, 4, *range(7, 7 + len(codes)))
    return "\n".join([title, "", table(headers, body, right=right), "", footer])


def _change(row: Mapping[str, Any]) -> str:
    """Places moved since the previous period (+ is up), ``new`` if unranked then."""
    if row.get("rank") is None:
        return DASH
    if row.get("previous_rank") is None:
        return "new"
    return signed(row.get("change"))


class ProgressBar:
    """``[#######.............]  7/17  16.07`` redrawn in place on a terminal stream."""

    def __init__(self, total: int, stream: TextIO, *, enabled: bool, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self.done = 0
        self._started = time.monotonic()
        self._last_len = 0

    def advance(self, label: str = "") -> None:
        """Count one item as done and redraw."""
        self.done += 1
        self.draw(label)

    def draw(self, label: str = "") -> None:
        """Redraw the bar (no-op when disabled)."""
        if not self.enabled:
            return
        filled = int(self.width * self.done / self.total)
        elapsed = time.monotonic() - self._started
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {self.done}/{self.total} {elapsed:5.1f}s {label}".rstrip()
        pad = " " * max(0, self._last_len - len(line))
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self._last_len = len(line)

    def close(self) -> None:
        """End the bar's line so later output starts on a fresh one."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
