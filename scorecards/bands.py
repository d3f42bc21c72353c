"""Configurable threshold tables that turn a percentage into a label.

A table is data (an ordered list of thresholds and whether they are strict), so
a province can adopt its own cut-offs without code changes. The defaults below
are applied to achievement (capaian) in percent.
"""

from __future__ import annotations

import itertools
import math

import msgspec

from scorecards.errors import ScorecardError


class Band(msgspec.Struct, frozen=True, kw_only=True):
    """A label and the threshold a value must pass to earn it.

    Attributes:
        label: Label given to values past the threshold.
        threshold: Lower bound (percent).
    """

    label: str
    threshold: float


class BandTable(msgspec.Struct, frozen=True, kw_only=True):
    """An ordered threshold table.

    Attributes:
        name: Table name, e.g. ``sakip``.
        bands: Bands from the highest threshold to the lowest (strictly descending).
        below: Label for values that pass no threshold.
        inclusive: ``True``: a value equal to a threshold earns the band
            (``>=``); ``False``: it must exceed it (``>``), as SAKIP's
            "AA > 90" does.
    """

    name: str
    bands: tuple[Band, ...]
    below: str
    inclusive: bool = True

    def __post_init__(self) -> None:
        """Reject tables whose order would make a band unreachable or ambiguous."""
        thresholds = [band.threshold for band in self.bands]
        if any(not math.isfinite(t) for t in thresholds):
            raise ScorecardError(f"band table {self.name!r}: thresholds must be finite")
        if any(a <= b for a, b in itertools.pairwise(thresholds)):
            raise ScorecardError(
                f"band table {self.name!r}: thresholds must be strictly descending"
            )


def band_for(value: float | None, table: BandTable) -> str | None:
    """Label of the first band (highest first) whose threshold the value passes.

    Args:
        value: Value in percent, or ``None`` without data.
        table: The threshold table.

    Returns:
        The band's label, ``table.below`` if no threshold is passed, ``None`` if
        ``value`` is ``None`` (no data earns no band, not the lowest one).

    Raises:
        ScorecardError: ``value`` is NaN.
    """
    if value is None:
        return None
    if math.isnan(value):
        raise ScorecardError("cannot band a value that is not a number")
    for band in table.bands:
        if value >= band.threshold if table.inclusive else value > band.threshold:
            return band.label
    return table.below


def parse_table(name: str, spec: str, *, inclusive: bool) -> BandTable:
    """A table as an operator writes it: ``label=threshold`` pairs from the highest
    threshold down, then the label below them all (``green=90,yellow=70,red``).

    Raises:
        ScorecardError: the text is not such a list, a threshold is not a number, a
            label is empty or repeated, or the thresholds do not descend.
    """
    parts = [part.strip() for part in spec.split(",")]
    below = parts[-1]
    if not below or "=" in below:
        raise ScorecardError(
            f"band table {name!r}: end with the label below every threshold ({spec!r})"
        )
    bands = []
    for part in parts[:-1]:
        label, sep, threshold = (x.strip() for x in part.partition("="))
        try:
            value = float(threshold) if sep and label else math.nan
        except ValueError:
            value = math.nan
        if math.isnan(value):
            raise ScorecardError(f"band table {name!r}: {part!r} is not label=threshold")
        bands.append(Band(label=label, threshold=value))
    labels = [band.label for band in bands] + [below]
    if len(set(labels)) != len(labels):
        raise ScorecardError(f"band table {name!r}: a label is given twice ({spec!r})")
    return BandTable(name=name, bands=tuple(bands), below=below, inclusive=inclusive)


def table_spec(table: BandTable) -> str:
    """The table in the form ``parse_table`` reads."""
    pairs = [f"{band.label}={band.threshold:g}" for band in table.bands]
    return ",".join([*pairs, table.below])


TRAFFIC_LIGHT = BandTable(
    name="traffic_light",
    bands=(Band(label="green", threshold=90.0), Band(label="yellow", threshold=70.0)),
    below="red",
    inclusive=True,
)
"""Default traffic light: green >= 90, yellow >= 70, red below (achievement, percent)."""

SAKIP_PREDIKAT = BandTable(
    name="sakip",
    bands=(
        Band(label="AA", threshold=90.0),
        Band(label="A", threshold=80.0),
        Band(label="BB", threshold=70.0),
        Band(label="B", threshold=60.0),
        Band(label="CC", threshold=50.0),
        Band(label="C", threshold=30.0),
    ),
    below="D",
    inclusive=False,
)
"""SAKIP predikat: AA > 90, A > 80, BB > 70, B > 60, CC > 50, C > 30, D otherwise.

Strict comparisons, as the rule is written: exactly 90 is A, not AA.
"""

DUKCAPIL_LEVELS = BandTable(
    name="dukcapil_level",
    bands=(
        Band(label="level_4", threshold=100.0),
        Band(label="level_3", threshold=90.0),
        Band(label="level_2", threshold=75.0),
    ),
    below="level_1",
    inclusive=True,
)
"""Default Dukcapil-style levels on achievement: 4 = target met (>= 100),
3 >= 90, 2 >= 75, 1 below. Our choice, not a regulation: replace the table if a
province uses other cut-offs."""
