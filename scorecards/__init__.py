"""The numbers of Kinerja as pure functions over msgspec structs.

No clock, no I/O, no framework: every function takes structs (or plain numbers)
and returns structs, so the API, the client and the benchmarks compute the same
figures, and property-based tests can pin them down. See ``DESIGN.md``, "Numbers".
"""

from scorecards.achievement import (
    achievement,
    achievement_of_counts,
    coverage,
    score_indicator,
    target_on,
)
from scorecards.aggregate import Aggregate, AggregateMember, aggregate, weighted_target
from scorecards.bands import (
    DUKCAPIL_LEVELS,
    SAKIP_PREDIKAT,
    TRAFFIC_LIGHT,
    Band,
    BandTable,
    band_for,
)
from scorecards.cascade import DistrictPlan, Finding, province_findings
from scorecards.composite import Composite, CompositePart, Scored, composite
from scorecards.errors import ScorecardError
from scorecards.models import (
    DEFAULT_CAP,
    Achievement,
    Indicator,
    IndicatorScore,
    Measurement,
    Polarity,
    Quarterly,
    Target,
)
from scorecards.projection import (
    DEFAULT_THRESHOLDS,
    Projection,
    ProjectionStatus,
    ProjectionThresholds,
    Snapshot,
    project,
)
from scorecards.ranking import RANK_DECIMALS, RankedRow, RankEntry, rank

__all__ = [
    "DEFAULT_CAP",
    "DEFAULT_THRESHOLDS",
    "DUKCAPIL_LEVELS",
    "RANK_DECIMALS",
    "SAKIP_PREDIKAT",
    "TRAFFIC_LIGHT",
    "Achievement",
    "Aggregate",
    "AggregateMember",
    "Band",
    "BandTable",
    "Composite",
    "CompositePart",
    "DistrictPlan",
    "Finding",
    "Indicator",
    "IndicatorScore",
    "Measurement",
    "Polarity",
    "Projection",
    "ProjectionStatus",
    "ProjectionThresholds",
    "Quarterly",
    "RankEntry",
    "RankedRow",
    "ScorecardError",
    "Scored",
    "Snapshot",
    "Target",
    "achievement",
    "achievement_of_counts",
    "aggregate",
    "band_for",
    "composite",
    "coverage",
    "project",
    "province_findings",
    "rank",
    "score_indicator",
    "target_on",
    "weighted_target",
]
