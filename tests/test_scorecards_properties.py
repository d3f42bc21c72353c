"""Property-based tests: the invariants people rely on when they argue about the numbers."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import example, given, settings
from hypothesis import strategies as st

from scorecards import (
    AggregateMember,
    CompositePart,
    Measurement,
    RankEntry,
    achievement,
    aggregate,
    composite,
    coverage,
    rank,
)
from scorecards.checks import denominator_jump, over_100

# Per-test settings rather than a global profile, so other suites are unaffected.
# No example database: keep test runs from writing into the working tree.
SETTINGS = settings(database=None, deadline=None, max_examples=200)

counts = st.integers(min_value=0, max_value=50_000_000)
measurements = st.builds(
    lambda d, share: Measurement(numerator=int(d * share), denominator=d),
    st.integers(min_value=1, max_value=50_000_000),
    st.floats(min_value=0.0, max_value=1.5),
)
positive = st.floats(min_value=0.01, max_value=1_000.0, allow_nan=False)
realisations = st.floats(min_value=0.0, max_value=1_000.0, allow_nan=False)
scores = st.one_of(st.none(), st.floats(min_value=-50.0, max_value=150.0, allow_nan=False))


@SETTINGS
@given(st.lists(measurements, min_size=1, max_size=30))
def test_aggregate_coverage_lies_between_members_min_and_max(
    members: list[Measurement],
) -> None:
    result = aggregate([AggregateMember(code=str(i), measurement=m) for i, m in enumerate(members)])
    values = [coverage(m.numerator, m.denominator) for m in members]
    present = [v for v in values if v is not None]
    assert result.coverage is not None
    assert min(present) <= result.coverage <= max(present)


@SETTINGS
@given(st.lists(st.tuples(measurements, positive), min_size=1, max_size=30))
def test_aggregate_target_lies_between_members_min_and_max(
    members: list[tuple[Measurement, float]],
) -> None:
    result = aggregate(
        [AggregateMember(code=str(i), measurement=m, target=t) for i, (m, t) in enumerate(members)]
    )
    targets = [t for _, t in members]
    assert result.target is not None
    assert min(targets) <= result.target <= max(targets)


@SETTINGS
@given(st.lists(st.tuples(st.from_regex(r"[0-9]{2}\.[0-9]{2}", fullmatch=True), scores)))
def test_ranking_is_a_permutation_and_equal_scores_share_a_rank(
    pairs: list[tuple[str, float | None]],
) -> None:
    entries = [RankEntry(code=code, score=score) for code, score in dict(pairs).items()]
    rows = rank(entries)
    assert sorted(r.code for r in rows) == sorted(e.code for e in entries)
    ranked = [r for r in rows if r.rank is not None]
    unranked = [r for r in rows if r.rank is None]
    assert rows == tuple(ranked + unranked)  # no_data last
    assert all(r.score is None and r.status == "no_data" for r in unranked)
    keyed = [(round(r.score, 6), r.rank) for r in ranked if r.score is not None]
    assert len(keyed) == len(ranked)
    by_score: dict[float, set[int | None]] = {}
    for key, place in keyed:
        by_score.setdefault(key, set()).add(place)
    assert all(len(shared) == 1 for shared in by_score.values())
    for position, (key, place) in enumerate(keyed, start=1):
        better = sum(1 for other, _ in keyed if other > key)
        assert place == better + 1
        assert place <= position


@SETTINGS
@given(realisations, realisations, positive)
def test_achievement_rises_with_realisation_when_higher_is_better(
    a: float, b: float, target: float
) -> None:
    low, high = sorted((a, b))
    assert achievement(low, target, "higher").raw <= achievement(high, target, "higher").raw


@SETTINGS
@given(realisations, realisations, positive)
def test_achievement_falls_with_realisation_when_lower_is_better(
    a: float, b: float, target: float
) -> None:
    low, high = sorted((a, b))
    assert achievement(low, target, "lower").raw >= achievement(high, target, "lower").raw


@SETTINGS
@given(realisations, positive, st.floats(min_value=0.0, max_value=500.0))
def test_a_cap_never_raises_a_value(realisation: float, target: float, cap: float) -> None:
    for polarity in ("higher", "lower"):
        result = achievement(realisation, target, polarity, cap)  # type: ignore[arg-type]
        assert result.capped <= result.raw
        assert result.capped <= cap
        assert result.capped == result.raw or result.capped == cap


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(min_value=-100.0, max_value=120.0)),
            st.floats(min_value=0.001, max_value=100.0),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_composite_lies_between_included_achievements(
    parts: list[tuple[float | None, float]],
) -> None:
    result = composite(
        [CompositePart(code=str(i), capped=c, weight=w) for i, (c, w) in enumerate(parts)]
    )
    present = [c for c, _ in parts if c is not None]
    if not present:
        assert result.score is None
        return
    assert result.score is not None
    assert min(present) <= result.score <= max(present)
    assert abs(sum(result.weights.values()) - 1.0) < 1e-9


@SETTINGS
@given(counts, counts)
def test_coverage_is_never_clipped(numerator: int, denominator: int) -> None:
    value = coverage(numerator, denominator)
    if denominator == 0:
        assert value is None
    else:
        assert value == numerator * 100 / denominator


@SETTINGS
@given(counts, st.integers(min_value=1, max_value=50_000_000))
@example(100, 100)
@example(101, 100)
def test_over_100_is_exactly_coverage_above_100(numerator: int, denominator: int) -> None:
    # Checked in integers; the definition is the exact percentage.
    assert over_100(numerator, denominator) == (Fraction(numerator * 100, denominator) > 100)


@SETTINGS
@given(
    st.integers(min_value=1, max_value=50_000_000),
    st.integers(min_value=1, max_value=50_000_000),
    st.sampled_from([0.0, 0.1, 0.05, 0.333, 1.0]) | st.floats(min_value=0.0, max_value=2.0),
)
@example(11, 10, 0.1)  # exactly the share: not a jump
@example(9, 10, 0.1)
@example(1_100_001, 1_000_000, 0.1)
def test_denominator_jump_is_exactly_the_share_as_printed(
    denominator: int, previous: int, share: float
) -> None:
    # Checked in integers; the definition: |d - p| / p above the share read as a decimal.
    exact = Fraction(abs(denominator - previous), previous) > Fraction(Decimal(repr(share)))
    assert denominator_jump(denominator, previous, share) == exact
