"""Typed settings, read from the environment once.

Every limit the API enforces (body size, page size, rates, windows) lives here so
an operator can change it without touching code.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from scorecards.errors import ScorecardError

ENV_PREFIX = "KINERJA_"

# Upper bounds: a value past them is a typo or "for ever", and would reach PostgreSQL as
# an interval or LIMIT outside its range (a 500 on every request that used it).
_DAY = 24 * 3600
_TEN_YEARS = 3653 * _DAY
_MONTH = 31 * _DAY
#: ``submission_iat_max_skew_s`` unless set; ledger verify's bound where no server has
#: recorded the one it ran with (``db.ledger.note_iat_skew``).
DEFAULT_IAT_SKEW_S = 300


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Service configuration. ``database_url`` None means: run the embedded PostgreSQL."""

    environment: Literal["development", "test", "production"] = "development"
    database_url: str | None = None
    data_dir: str = ".data"
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    workers: Annotated[int, msgspec.Meta(ge=1)] = 1
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"
    pool_min_size: Annotated[int, msgspec.Meta(ge=0)] = 1
    pool_max_size: Annotated[int, msgspec.Meta(ge=1)] = 10
    migrate_on_start: bool = True
    # Every request body, a signed report's too (a few indicators and a note): 413 above.
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1, le=64 * 1024 * 1024)] = 64 * 1024
    # A request's header section (names, values and their separators): 431 above.
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1024 * 1024)] = 32 * 1024
    # A list asked for no ``limit`` gets the default, which must be a size it may ask for.
    page_size_default: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 50
    page_size_max: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    demo: bool = False
    # Access tokens.
    jwt_issuer: str = "kinerja"
    jwt_audience: str = "kinerja-api"
    access_token_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=_DAY)] = 15 * 60
    jwt_leeway_s: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 30
    # Access tokens already verified, kept per worker so a polling client's token is not
    # re-verified on every request (expiry is still checked each time).
    token_cache_entries: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    # Failed logins: per account and per client address, within a window, then a lockout.
    login_max_failures_account: Annotated[int, msgspec.Meta(ge=1)] = 5
    login_max_failures_address: Annotated[int, msgspec.Meta(ge=1)] = 20
    login_window_s: Annotated[int, msgspec.Meta(ge=1, le=_MONTH)] = 15 * 60
    login_lockout_s: Annotated[int, msgspec.Meta(ge=1, le=_MONTH)] = 15 * 60
    # Attempts from one address are judged one at a time; one waits at most this long for
    # those before it (holding a pooled connection), then is told to try again (429).
    login_wait_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    # Signed submissions: how old (or how far ahead) a JWS ``iat`` may be; an offline
    # client's outbox may hold a signed report for days, so the window is generous.
    submission_iat_max_age_s: Annotated[int, msgspec.Meta(ge=0, le=_TEN_YEARS)] = 7 * _DAY
    submission_iat_max_skew_s: Annotated[int, msgspec.Meta(ge=0, le=_DAY)] = DEFAULT_IAT_SKEW_S
    # An agreement signature statement's ``iat``: no further ahead than the same skew, and
    # no older than this (a party reviews the document, then signs it).
    agreement_signature_max_age_s: Annotated[int, msgspec.Meta(ge=0, le=_TEN_YEARS)] = 7 * _DAY
    # How long an Idempotency-Key is remembered: at least a day, and by default longer than
    # a signed report stays acceptable, so a retry from an outbox always gets its answer.
    idempotency_ttl_s: Annotated[int, msgspec.Meta(ge=_DAY, le=_TEN_YEARS)] = 8 * _DAY
    # Expired keys are deleted in batches, at most this often per worker.
    idempotency_purge_s: Annotated[float, msgspec.Meta(ge=0, le=_DAY)] = 10.0
    # Flags: a denominator moving by more than this share; the day of the next month a
    # report is due; how far (percentage points) a stated percentage may be from the counts.
    # The share is a fraction (0.10 is 10%): above 1 no fall could be flagged.
    denominator_jump_share: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.10
    reporting_deadline_day: Annotated[int, msgspec.Meta(ge=1, le=31)] = 10
    stated_tolerance_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0.01

    # Projections: how many recent reports give the achieved daily rate, and the ratio
    # (achieved / needed rate) at or above which a district is on track or at risk.
    projection_window_reports: Annotated[int, msgspec.Meta(ge=1)] = 6
    projection_on_track_ratio: Annotated[float, msgspec.Meta(ge=0, le=100)] = 1.0
    projection_at_risk_ratio: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0.8
    # Local dates ("today", the default as_of) are in WIB (UTC+7) unless changed; every
    # place on Earth is between UTC-12 and UTC+14.
    utc_offset_hours: Annotated[int, msgspec.Meta(ge=-12, le=14)] = 7
    # Serve GET /bench/bytes, the benchmark's "same bytes from memory" yardstick.
    bench_routes: bool = False
    # Rendered scorecards and rankings kept per worker, keyed by data version.
    report_cache_entries: Annotated[int, msgspec.Meta(ge=0)] = 512
    # Keep data versions and authenticated users per worker, current through PostgreSQL
    # LISTEN/NOTIFY (false: read both from PostgreSQL on every request). The listening
    # connection is pinged this often so a silent loss is noticed.
    change_feed: bool = True
    change_feed_heartbeat_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    principal_cache_entries: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    # Counting values of a report's districts at a date, kept per worker while the change
    # feed is live; a district is read again only when its data version moves (0: off).
    kept_value_views: Annotated[int, msgspec.Meta(ge=0)] = 64
    # Signed submissions arriving while a worker writes a batch are written together in
    # the next one, at most this many per transaction (0: one transaction each).
    ingest_batch_max: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 64
    # Batches a worker writes at once, each in its own transaction and connection.
    ingest_batches_in_flight: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2
    # Another batch starts beside one being written only once that one has taken twice
    # as long as batches recently took, and at most this long (0: at once).
    ingest_overlap_after_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] = 50.0
    # With nothing being written, the first request queued waits this long for others to
    # share its batch, unless they already fill one (0: it starts at once).
    ingest_linger_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] = 3.0
    # Answer POST /v1/submissions in its own lane, outside Litestar's routing and
    # middleware chain (same checks and answers, less CPU); false: through Litestar.
    submission_lane: bool = True
    # Band tables on achievement (percent), highest threshold first, then the label below
    # them all. The traffic light and levels count a value equal to a threshold as
    # reaching it; SAKIP's predikat is strict (AA > 90), as the rule is written.
    band_traffic_light: str = "green=90,yellow=70,red"
    band_sakip: str = "AA=90,A=80,BB=70,B=60,CC=50,C=30,D"
    band_dukcapil_level: str = "level_4=100,level_3=90,level_2=75,level_1"

    def __post_init__(self) -> None:
        from api.bands import bands_for  # the check is the parse the reports use

        try:
            bands_for(self)
        except ScorecardError as exc:
            raise ValueError(f"KINERJA_BAND_*: {exc}") from None
        if self.page_size_default > self.page_size_max:
            raise ValueError(
                f"KINERJA_PAGE_SIZE_DEFAULT ({self.page_size_default}) exceeds "
                f"KINERJA_PAGE_SIZE_MAX ({self.page_size_max}): every list asked for no "
                "limit would be refused"
            )
        if self.projection_at_risk_ratio > self.projection_on_track_ratio:
            raise ValueError(
                f"KINERJA_PROJECTION_AT_RISK_RATIO ({self.projection_at_risk_ratio}) exceeds "
                f"KINERJA_PROJECTION_ON_TRACK_RATIO ({self.projection_on_track_ratio}): a "
                "district could be both"
            )
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(
                f"KINERJA_POOL_MIN_SIZE ({self.pool_min_size}) exceeds "
                f"KINERJA_POOL_MAX_SIZE ({self.pool_max_size})"
            )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).absolute()


def local_today(settings: Settings, now: datetime | None = None) -> date:
    """Today where the offices are (``utc_offset_hours``): the date every "this year" and
    default as-of date is read from, so a scope check and a scorecard agree on the year."""
    moment = datetime.now(UTC) if now is None else now
    return (moment + timedelta(hours=settings.utc_offset_hours)).date()


def settings_from_env(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from ``KINERJA_*`` variables (and plain ``DATABASE_URL``)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        raw = env.get(ENV_PREFIX + field.name.upper())
        if raw is not None and raw != "":
            values[field.name] = raw
    if env.get("DATABASE_URL"):
        values["database_url"] = env["DATABASE_URL"]
    values.update(overrides)
    return msgspec.convert(values, Settings, strict=False)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_env()
