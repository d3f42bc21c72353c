"""Group commit for signed submissions: each worker appends, in one transaction, the
submissions that arrived while its previous batch was being written.

One transaction per submission spent most of its time, in PostgreSQL and in the
worker, on round trips, statement starts and commits rather than on the rows. A batch
takes the locks a single append takes (``db.appends``), then checks each submission in
arrival order against the heads, keys, stored answers and values it holds, as
``api.submissions.submit`` would, and writes all the accepted ones in one statement.
A submission refused in the batch gets its own problem and writes nothing; the others
are not affected. When the batch transaction fails as a whole, nothing of it was
committed, and each submission is appended again on its own (``submit``), so one bad
submission cannot fail its neighbours. Corrections (``supersedes``) always take the
single path: they lock the submission they correct, which a batch does not.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from uuid import UUID

import asyncpg

from api.auth.middleware import still_admitted
from api.auth.principal import Principal
from api.change_feed import ChangeFeed
from api.errors import ApiError
from api.settings import Settings
from api.signatures import check_holder
from api.submission_errors import JtiReplayed
from api.submission_rules import SubmitResult, check_times, replay
from api.submission_views import created_response
from api.submissions import Prepared, new_entry, prepare, purge_if_due, submit
from api.transactions import transaction
from db import appends, changes
from db import submissions as sub_db
from db.idempotency import IdempotencyRecord
from db.ledger import Head

log = logging.getLogger("kinerja.ingest")


class AppenderClosed(ApiError):
    status_code = 503
    slug = "shutting-down"
    title = "The service is shutting down"


#: A wait shorter than this is no wait: uvloop's clock counts milliseconds, and a timer
#: due within one fires at once, so the loop would look again and again until it passed.
_CLOCK_S = 0.0005


@dataclass(eq=False, slots=True)
class _Pending:
    job: Prepared
    future: asyncio.Future[SubmitResult]
    #: When it was queued (loop time): the linger counts from it.
    at: float


@dataclass(slots=True)
class _Written:
    """A value appended earlier in the same batch, for the flags of later ones."""

    as_of: date
    seq: int
    numerator: int
    denominator: int


@dataclass
class _Batch:
    """What one batch holds and has decided so far; ``add`` mirrors ``submit``."""

    settings: Settings
    heads: dict[str, Head]
    keys: dict[str, appends.KeyState]
    now: datetime
    jtis: set[UUID]
    records: dict[tuple[UUID, str], IdempotencyRecord]
    prior: dict[int, appends.PriorValue]
    submitters: dict[UUID, appends.Submitter]
    entries: list[sub_db.NewSubmission] = field(default_factory=list)
    answers: list[tuple[UUID, sub_db.IdempotentAnswer]] = field(default_factory=list)
    moved: set[str] = field(default_factory=set)
    written: dict[tuple[str, UUID | None, str], list[_Written]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def add(self, job: Prepared, first_probe: int) -> SubmitResult:
        caller, payload = job.caller, job.payload
        key = (caller.id, job.idempotency_key or "")
        if job.idempotency_key is not None:
            record = self.records.get(key)
            if record is not None:
                return replay(
                    record.request_sha256, record.status_code, record.response, job.fingerprint
                )
        held = self.keys.get(job.kid)
        check_holder(
            job.kid, held.owner_id if held else None, held.revoked_at if held else None, caller
        )
        if payload.jti in self.jtis:  # before the times, as ``submit`` checks
            raise JtiReplayed("A submission with this jti was already received.")
        check_times(payload, self.now, self.settings)
        if job.unknown_indicator is not None:  # found before the batch, refused in order
            raise job.unknown_indicator
        # Last, as ``submit`` reads it once it holds the head: a stored report resent is
        # still known as stored.
        account = self.submitters.get(caller.id)
        still_admitted(
            caller,
            found=account is not None,
            active=account is not None and account.active,
            token_generation=account.token_generation if account else -1,
            role=account.role if account else "",
            area_code=account.area_code if account else "",
            division_id=account.division_id if account else None,
        )
        new = new_entry(
            caller=caller,
            payload=payload,
            signed=job.signed,
            token=job.token,
            kid=job.kid,
            head=self.heads[payload.district],
            previous=self._previous(job, first_probe),
            now=self.now,
            settings=self.settings,
            units=job.units,
        )
        response = created_response(new)
        self.entries.append(new)
        self.heads[new.district_code] = Head(
            district_code=new.district_code, seq=new.seq, hash=new.hash
        )
        self.moved.add(new.district_code)
        self.jtis.add(new.jti)
        for v in new.values:
            self.written[(new.district_code, new.division_id, v.indicator_code)].append(
                _Written(new.as_of, new.seq, v.numerator, v.denominator)
            )
        if job.idempotency_key is not None:
            answer = sub_db.IdempotentAnswer(
                key=job.idempotency_key,
                request_sha256=job.fingerprint,
                status_code=201,
                response=response,
            )
            self.answers.append((caller.id, answer))
            # A later request of this batch with the same key is a retry of this one.
            self.records[key] = IdempotencyRecord(
                request_sha256=job.fingerprint,
                status_code=201,
                response=response,
                created_at=self.now,
            )
        return SubmitResult(status_code=201, body=response, submission_id=new.id, replayed=False)

    def _previous(self, job: Prepared, first_probe: int) -> dict[str, sub_db.Previous]:
        """Per indicator, the latest counting value as of the report's date: the stored
        one read after the locks, or one appended earlier in this batch (always later in
        the chain, so it wins on the same date)."""
        payload = job.payload
        found: dict[str, sub_db.Previous] = {}
        for offset, code in enumerate(sorted(payload.values)):
            best: _Written | None = None
            stored = self.prior.get(first_probe + offset)
            if stored is not None:
                best = _Written(stored.as_of, stored.seq, stored.numerator, stored.denominator)
            for w in self.written.get((payload.district, payload.division, code), ()):
                if w.as_of <= payload.as_of and (
                    best is None or (w.as_of, w.seq) > (best.as_of, best.seq)
                ):
                    best = w
            if best is not None:
                found[code] = sub_db.Previous(
                    indicator_code=code, numerator=best.numerator, denominator=best.denominator
                )
        return found


async def settle(
    conn: asyncpg.Connection, settings: Settings, jobs: list[Prepared], *, make_heads: bool
) -> tuple[list[SubmitResult | ApiError], dict[str, int]]:
    """Check and write ``jobs`` in the caller's transaction: each one's outcome, in order,
    and the data versions written. Raises ``appends.HeadsMissing`` (roll back, then call
    again with ``make_heads``) when a district has no ledger head yet."""
    keyed = [j for j in jobs if j.idempotency_key is not None]
    pairs = sorted({(j.caller.id, j.idempotency_key or "") for j in keyed})
    probes: list[appends.Probe] = []
    firsts: list[int] = []
    for j in jobs:
        firsts.append(len(probes))
        p = j.payload
        probes += [
            appends.Probe(p.district, p.division, code, p.as_of) for code in sorted(p.values)
        ]
    found = await appends.begin_batch(
        conn,
        lock_names=[appends.idempotency_lock_name(user, key) for user, key in pairs],
        districts=sorted({j.payload.district for j in jobs}),
        kids=sorted({j.kid for j in jobs}),
        jtis=[j.payload.jti for j in jobs],
        probes=probes,
        pairs=pairs,
        ttl_s=settings.idempotency_ttl_s,
        make_missing=make_heads,
        submitters=sorted({j.caller.id for j in jobs}),
    )
    if keyed:
        await purge_if_due(conn, settings)
    batch = _Batch(
        settings=settings,
        heads=dict(found.heads),
        keys=found.keys,
        now=found.now,
        jtis=found.seen,
        records=dict(found.records),
        prior={p.index: p for p in found.prior},
        submitters=found.submitters,
    )
    outcomes: list[SubmitResult | ApiError] = []
    for job, first in zip(jobs, firsts, strict=True):
        try:
            outcomes.append(batch.add(job, first))
        except ApiError as exc:
            outcomes.append(exc)
    if unused := sorted(set(found.created) - batch.moved):
        await appends.forget_heads(conn, unused)
    if not batch.entries:
        return outcomes, {}
    moved = [batch.heads[d] for d in sorted(batch.moved)]
    versions = await appends.write(conn, batch.entries, moved, batch.answers)
    return outcomes, versions


def _follow(turn: asyncio.Future[None], earlier: asyncio.Future[None] | None) -> None:
    """End ``turn`` once ``earlier`` has ended (now, if it has)."""
    if earlier is None or earlier.done():
        turn.set_result(None)
    else:
        earlier.add_done_callback(lambda _: turn.set_result(None))


class Appender:
    """A worker's queue of checked submissions and the task that writes them in batches
    of at most ``batch_max``, ``in_flight`` batches at a time (each in its own
    transaction); whatever arrives meanwhile makes the next batch.

    Another batch starts beside those being written only once the youngest of them has
    taken twice as long as batches recently took, and at most ``overlap_after_s``: a
    batch is usually written in a few milliseconds, and waiting for it makes the next one
    larger, while each batch costs its round trips and statements whatever its size
    (measured in turns at 64 connections against starting at once: 7-15% less CPU a
    submission, worker and PostgreSQL alike; throughput the same to 10% more). A batch
    held up for longer than its kind, by a district's lock or a slow disk, does not hold
    up what comes after it. A request alone in the queue waits the same way: between
    full load and none, a batch of one each time is what filled the cores (reports
    offered at 1,000/s, in turns against starting it at once: p99 17-22 ms against
    23-84, p50 8-11 against 11-18, 7% less PostgreSQL CPU a report). When nothing is
    being written, the first request waits ``linger_s`` for others to share its batch,
    unless the queue already fills one: between full load and none, batches of one or two
    pay their round trips and commit per report (offered 500 to 1,500 reports/s, in
    turns, a 3 ms linger against none: 7-20% less CPU a report, p99 0.73-1.14 of none,
    p50 up to 3 ms more; 6 ms against 3: 5-10% less CPU again, p99 worse at 1,000/s)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        feed: ChangeFeed | None,
        *,
        batch_max: int,
        in_flight: int = 1,
        overlap_after_s: float = 0.0,
        linger_s: float = 0.0,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._feed = feed
        self._batch_max = batch_max
        self._in_flight = max(in_flight, 1)
        self._overlap_after_s = overlap_after_s
        self._linger_s = linger_s
        #: How long batches have recently taken (seconds, a moving average).
        self._usual_s = 0.0
        #: Each batch being written, with when it started (loop time).
        self._running: dict[asyncio.Task[None], float] = {}
        self._look_timer: asyncio.Handle | None = None
        self._look_due: float | None = None
        self._queue: list[_Pending] = []
        #: Per (user, Idempotency-Key), the latest request here carrying it: done once it
        #: and every earlier one with the key are answered.
        self._keyed: dict[tuple[UUID, str], asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        #: Counters for tests and diagnostics.
        self.batches = 0
        self.largest = 0
        self.fallbacks = 0

    def start(self) -> None:
        if self._batch_max == 0:
            return
        # A context of its own: the writes a batch records must not land in the record
        # of whichever request happened to start the task.
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), context=contextvars.Context()
        )
        self._task.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """If the loop dies of a bug, whoever waits in the queue is answered (a 500)
        rather than left waiting for ever; later appends are refused (503)."""
        if task.cancelled() or task.exception() is None:
            return
        log.error("the ingest appender stopped", exc_info=task.exception())
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the ingest appender stopped"))
        self._queue.clear()

    async def close(self) -> None:
        """Write what is queued, then stop; later appends are refused (503)."""
        self._closing = True
        if self._task is not None:
            self._wake.set()
            # A loop that died was logged, and its queue answered, when it ended.
            await asyncio.gather(self._task, return_exceptions=True)
        if self._look_timer is not None:
            self._look_timer.cancel()

    async def receive(
        self,
        caller: Principal,
        body: bytes,
        *,
        content_type: str | None,
        idempotency_key: str | None,
    ) -> SubmitResult:
        """Check a signed submission and append it, in a batch unless batching is off
        (``batch_max`` 0) or it corrects another submission."""
        if self._batch_max > 0:
            if idempotency_key is None:
                return await self._receive(caller, body, content_type=content_type)
            # Requests with the same (user, Idempotency-Key) are taken one after another,
            # in the order they arrived, as alone (where the first holds the key's lock
            # from its first statement): the second then finds the first's answer, good
            # or refused, whatever the checks that would have refused it itself.
            keyed = (caller.id, idempotency_key)
            earlier = self._keyed.get(keyed)
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            turn.add_done_callback(lambda done: self._unkey(keyed, done))
            self._keyed[keyed] = turn
            try:
                if earlier is not None:
                    await asyncio.wait([earlier])
                return await self._receive(
                    caller, body, content_type=content_type, key=idempotency_key
                )
            finally:
                # Left while still waiting (cancelled): the next one waits for the earlier.
                _follow(turn, earlier)
        async with transaction(self._pool, self._feed) as conn:
            return await submit(
                conn,
                self._settings,
                caller,
                body,
                content_type=content_type,
                idempotency_key=idempotency_key,
            )

    def _unkey(self, keyed: tuple[UUID, str], done: asyncio.Future[None]) -> None:
        if self._keyed.get(keyed) is done:
            del self._keyed[keyed]

    async def _receive(
        self, caller: Principal, body: bytes, *, content_type: str | None, key: str | None = None
    ) -> SubmitResult:
        """Check and append, in a batch unless it corrects another submission."""
        prepared = await prepare(
            self._pool, self._settings, caller, body, content_type=content_type, idempotency_key=key
        )
        if isinstance(prepared, SubmitResult):
            return prepared
        if prepared.payload.supersedes is None:
            return await self.append(prepared)
        async with transaction(self._pool, self._feed) as conn:
            return await submit(
                conn, self._settings, caller, body, content_type=content_type, idempotency_key=key
            )

    async def append(self, job: Prepared) -> SubmitResult:
        if self._closing or self._task is None or self._task.done():  # off, or stopped
            raise AppenderClosed("The service is shutting down; send the report again shortly.")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SubmitResult] = loop.create_future()
        self._queue.append(_Pending(job, future, loop.time()))
        self._wake.set()
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and len(self._running) < self._in_flight:
                if self._running and not self._closing:
                    wait = min(2 * self._usual_s, self._overlap_after_s)
                    due = max(self._running.values()) + wait
                    if due - loop.time() > _CLOCK_S:  # look again then, or when a batch ends
                        self._look_at(loop, due)
                        break
                elif (
                    self._linger_s > 0 and not self._closing and len(self._queue) < self._batch_max
                ):
                    due = self._queue[0].at + self._linger_s
                    if due - loop.time() > _CLOCK_S:  # look again then, or when one arrives
                        self._look_at(loop, due)
                        break
                taken = self._queue[: self._batch_max]
                del self._queue[: self._batch_max]
                batch = [p for p in taken if not p.future.done()]  # cancelled: never sent
                if batch:
                    task = loop.create_task(self._guarded(batch))
                    self._running[task] = loop.time()
                    task.add_done_callback(self._finished)
            if self._closing and not self._queue and not self._running:
                return

    def _look_at(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        """Wake the loop at ``due``, unless a look still to come is set for no later.

        The time is kept here, not read from the handle: uvloop answers a wait shorter
        than its millisecond clock with a plain handle, which has no ``when()``."""
        if self._look_due is not None and self._look_due <= due:
            return
        if self._look_timer is not None:
            self._look_timer.cancel()
        self._look_due = due
        self._look_timer = loop.call_at(due, self._look)

    def _look(self) -> None:
        self._look_due = None
        self._wake.set()

    def _finished(self, task: asyncio.Task[None]) -> None:
        started = self._running.pop(task, None)
        if started is not None:
            took = asyncio.get_running_loop().time() - started
            self._usual_s += (took - self._usual_s) / 8 if self.batches > 1 else took
        self._wake.set()  # the next batch: whatever queued meanwhile

    async def _guarded(self, batch: list[_Pending]) -> None:
        try:
            await self._run(batch)
        except Exception as exc:  # a bug: answer whoever still waits, keep serving
            log.exception("an ingest batch failed unexpectedly")
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)

    async def _run(self, batch: list[_Pending]) -> None:
        changes.record_writes()
        jobs = [p.job for p in batch]
        committed: tuple[list[SubmitResult | ApiError], dict[str, int]] | None = None
        try:
            async with self._pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        settled = await settle(conn, self._settings, jobs, make_heads=False)
                except appends.HeadsMissing:  # a district's first report: rolled back
                    async with conn.transaction():
                        settled = await settle(conn, self._settings, jobs, make_heads=True)
                committed = settled
        except Exception:
            if committed is None:
                log.warning(
                    "an ingest batch of %d failed; appending each on its own",
                    len(batch),
                    exc_info=True,
                )
                self.fallbacks += 1
                for pending in batch:
                    await self._single(pending)
                return
            # Stored: sent again one by one, each would find its jti taken (409).
            log.warning("an ingest batch's connection failed after its commit", exc_info=True)
        outcomes, versions = committed
        self.batches += 1
        self.largest = max(self.largest, len(batch))
        if self._feed is not None and versions:
            self._feed.committed(versions.items())
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():
                continue
            if isinstance(outcome, ApiError):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    async def _single(self, pending: _Pending) -> None:
        if pending.future.done():  # the request went away while its batch failed
            return
        job = pending.job
        changes.record_writes()
        try:
            async with transaction(self._pool, self._feed) as conn:
                result = await submit(
                    conn,
                    self._settings,
                    job.caller,
                    job.body,
                    content_type=job.content_type,
                    idempotency_key=job.idempotency_key,
                )
        except Exception as exc:
            if not pending.future.done():
                pending.future.set_exception(exc)
        else:
            if not pending.future.done():
                pending.future.set_result(result)
