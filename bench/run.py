"""``make bench``: one reproducible national-scale run, figures written to a file.

Builds a national dataset (38 provinces, 514 districts, regions, agreements, monthly
signed submissions) in the embedded PostgreSQL, starts the server the way users run it
(``kinerja serve``, workers = cores) against it, drives load from a separate process
(``bench/load.py``) over loopback, and writes ``bench/results/latest.json`` and
``latest.md``. Every figure is the median of several runs with min and max, all in the
same run, so ratios hold on a noisy machine. ``--quick`` (CI smoke test, under a
minute) only proves the run completes and writes its file: its figures mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg

from api.auth.tokens import KeyRing, ensure_server_key
from api.ledger import entry_hash
from api.settings import settings_from_env
from api.submission_views import created_response
from bench import bare, cpu, dataset, disk, tails
from bench.tails import percentile
from db import appends
from db.areas import load_areas
from db.embedded import EmbeddedPostgres
from db.ledger import Head
from db.migrate import migrate
from db.pool import connect
from db.submissions import (
    IdempotentAnswer,
    NewSubmission,
    NewValue,
    append_submission,
    lock_head,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


class Mode:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.runs = 1 if quick else 3
        self.turns = 1 if quick else 5
        self.years = 1 if quick else 10
        self.plain_requests = 300 if quick else 6000
        self.ingest_requests = 200 if quick else 3000
        self.direct_rows = 200 if quick else 3000
        self.cold_samples = 5 if quick else 40
        self.warm_requests = 200 if quick else 3000
        self.last_month = 2 if quick else 10
        # Ingest offered at fixed rates (an open loop, ``bench.load``), each for this long.
        self.offered_rates = (100,) if quick else (500, 750, 1000, 1500, 2000)
        self.offered_seconds = 1.0 if quick else 3.0
        # The rates at which the API and the bare route are also offered reports in turns;
        # the API's p99 over the bare route's is given at the first.
        self.turns_rates = (100,) if quick else (1000, 1500)
        self.turns_rate = self.turns_rates[0]
        # The disk probe (``bench.disk``) at the start, before ingest and at the end.
        self.disk_probe_seconds = 0.5 if quick else 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def write_out(conn: asyncpg.Connection) -> None:
    """After a bulk load: a checkpoint, then the kernel's dirty pages to disk (see
    ``Bench.drive``), so hundreds of MB are not written out in the middle of the next
    figures. The checkpoint also leaves the load's WAL segments to be reused, as on a
    server that has run a while, rather than made in the middle of a figure."""
    await conn.execute("CHECKPOINT")
    await asyncio.to_thread(os.sync)


def load_run(
    port: int,
    requests: list[bytes],
    concurrency: int,
    workdir: Path,
    rate: float | None = None,
) -> dict[str, Any]:
    """Run the load generator in its own process; return what it recorded of each
    request (``bench/load.py``: latencies, when each was answered, statuses)."""
    spec = workdir / f"spec-{uuid.uuid4().hex}.json"
    out = workdir / f"out-{uuid.uuid4().hex}.json"
    spec.write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "port": port,
                "concurrency": concurrency,
                "max_seconds": 120,
                "requests": [base64.b64encode(r).decode() for r in requests],
                **({} if rate is None else {"rate": rate}),
            }
        )
    )
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), str(spec), str(out)], check=True
    )
    result = json.loads(out.read_text())
    spec.unlink()
    out.unlink()
    return result


def drive(
    port: int,
    requests: list[bytes],
    concurrency: int,
    workdir: Path,
    rate: float | None = None,
) -> dict[str, Any]:
    """Run the load generator in its own process; return throughput and latencies. With
    ``rate``, requests fall due at that rate over ``concurrency`` connections (an open
    loop, latency timed from when each fell due); without, each connection sends its next
    as soon as the last is answered."""
    result = load_run(port, requests, concurrency, workdir, rate)
    latencies = sorted(result["latencies_s"])
    bad = [s for s in result["statuses"] if s >= 400]
    slow_share, worst_start = tails.worst_span(result["latencies_s"], result["done_s"])
    outside = tails.p99_outside(result["latencies_s"], result["done_s"], worst_start)
    return {
        "load_cpu_s": result["cpu_s"],
        "rps": len(latencies) / result["elapsed_s"],
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "slow_in_worst_half_s": slow_share,
        # None when every request was answered within that half-second.
        **({} if outside is None else {"p99_outside_worst_half_s_ms": outside * 1000}),
        "n": len(latencies),
        "errors": len(bad),
        "statuses": sorted(set(result["statuses"])),
    }


#: What ``Bench.drive`` adds to a run where the server is known (``bench.cpu``).
CPU_KEYS = ("server_cpu_us", "postgres_cpu_us", "load_cpu_us")
#: What the hypervisor took meanwhile (``bench.cpu``): not part of the total.
STOLEN_KEY = "stolen_cpu_us"


def pooled_cpu(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The runs' CPU per request over all their requests, by who spent it: a run's CPU is
    a few dozen 10 ms ticks, so runs are pooled rather than their figures averaged."""
    out: dict[str, float] = {}
    for key in (*CPU_KEYS, STOLEN_KEY):
        metered = [r for r in runs if key in r]
        if metered:
            spent = sum(r[key] * r["n"] for r in metered)
            out[key] = spent / max(1, sum(r["n"] for r in metered))
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of the rates and latencies over the runs; the CPU per
    request of all the runs together."""
    out: dict[str, Any] = {"runs": len(runs)}
    for key in (
        "rps",
        "p50_ms",
        "p99_ms",
        "rows_per_s",
        "slow_in_worst_half_s",
        "p99_outside_worst_half_s_ms",
    ):
        values = [r[key] for r in runs if key in r]
        if values:
            out[key] = {
                "median": round(statistics.median(values), 2),
                "min": round(min(values), 2),
                "max": round(max(values), 2),
            }
    out.update({k: round(v, 1) for k, v in pooled_cpu(runs).items()})
    errors = sum(r.get("errors", 0) for r in runs)
    if errors:
        out["errors"] = errors
        out["statuses"] = sorted({s for r in runs for s in r.get("statuses", [])})
    return out


def server_memory_kib(pid: int) -> int:
    """Peak resident memory (VmHWM) of the server and its worker processes, summed."""
    total = 0
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        pids += [int(p) for p in children.split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class Bench:
    def __init__(self, mode: Mode, workdir: Path) -> None:
        self.mode = mode
        self.workdir = workdir
        self.figures: dict[str, Any] = {}
        #: Each turn's req/s and p99 per figure taken in turns, for paired ratios.
        self.turns: dict[str, dict[str, list[float]]] = {}
        self.settings = settings_from_env({})
        self.ring = KeyRing(self.settings)
        self.rng = random.Random(8)
        self.district_tokens: dict[str, tuple[float, str]] = {}
        self.server_pids: dict[int, int] = {}  # port -> the server's main process
        self.postgres_pid: int | None = None

    # -- setup ---------------------------------------------------------------------------

    async def prepare(self, dsn: str) -> None:
        self.dsn = dsn
        conn = await connect(dsn)
        try:
            await migrate(conn)
            await load_areas(conn)
            await ensure_server_key(conn)
            await self.ring.load(conn)
            self.today = (datetime.now(UTC) + timedelta(hours=7)).date()
            started = time.monotonic()
            self.data = await dataset.build(conn, self.today, self.rng)
            raw = await asyncpg.connect(self.dsn)
            try:
                written = await dataset.add_history(
                    raw,
                    self.data,
                    [self.today.year],
                    last_month=min(self.mode.last_month, self.today.month - 1 or 1),
                )
            finally:
                await raw.close()
            self.figures["dataset"] = {
                "provinces": len(self.data.provinces),
                "districts": len(self.data.heads),
                "history_years": 1,
                "submissions": written,
                "build_s": round(time.monotonic() - started, 1),
            }
            await write_out(conn)
        finally:
            await conn.close()

    def token(self, user_id: Any, role: str, area: str) -> str:
        return self.ring.issue({"sub": str(user_id), "role": role, "area": area})[0]

    def district_token(self, head: dataset.Head) -> str:
        """A district head's access token, kept for half its lifetime as a client keeps
        one: a new token per run of requests made every worker verify every district's
        token again, a check a real client's reports do not pay each time."""
        now = time.monotonic()
        issued, token = self.district_tokens.get(head.district, (0.0, ""))
        if not token or now - issued > self.settings.access_token_ttl_s / 2:
            token = self.token(head.user_id, "district_head", head.district)
            self.district_tokens[head.district] = (now, token)
        return token

    # -- measurements ----------------------------------------------------------------------

    def drive(
        self, port: int, requests: list[bytes], concurrency: int, rate: float | None = None
    ) -> dict[str, Any]:
        """``drive``, with the CPU each request cost the server, PostgreSQL and the load
        generator (``bench.cpu``) where the server's process is known.

        Each run starts with the kernel's dirty pages written out (``os.sync``): the
        kernel writes pages out some 30 s after they were written, and while 100+ MB
        were under writeback an fdatasync took 40-70 ms here, so every commit waited
        that long (a probe beside ingest at 1,000/s: that run's p99 went to 59-140 ms,
        its slow requests all within 100-200 ms). Unsynced, the writes of one figure
        (the 64-connection ingest writes some 10 MB/s) land in another. A run's own
        writes are written out after it ends, so on a server taking a rate for longer,
        such a flush holds commits for 100-200 ms about every 30 s."""
        os.sync()
        pid = self.server_pids.get(port)
        before = cpu.reading(pid, self.postgres_pid) if pid else None
        run = drive(port, requests, concurrency, self.workdir, rate)
        if before is not None:
            run.update(cpu.per_request(before, run["n"], run["load_cpu_s"]))
        return run

    def repeated(self, name: str, build: Any, concurrency: int, rate: float | None = None) -> None:
        runs = [self.drive(self.port, build(), concurrency, rate) for _ in range(self.mode.runs)]
        offered = {} if rate is None else {"offered_rps": rate}
        self.figures[name] = {"concurrency": concurrency, **offered, **summarise(runs)}

    def get(
        self, path: str, token: str | None = None, extra: dict[str, str] | None = None
    ) -> bytes:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        headers.update(extra or {})
        return http_request("GET", path, headers)

    async def change(self) -> None:
        """A real change before each cold sample: Kota Palembang (16.71) reports new
        counts, written the way the API writes them (head lock, one append statement).
        Its data version moves (so its scorecard, its province's and the national
        ranking must be recomputed) and its own scores change."""
        self.changes = getattr(self, "changes", 0) + 1
        head = self.data.heads["16.71"]
        jws, payload = dataset.signed_submission(
            head, self.today, dataset.values_for(head, 100 + self.changes)
        )
        conn = await connect(self.dsn)
        try:
            async with conn.transaction():
                await append_directly(conn, head, jws, payload, self.today)
        finally:
            await conn.close()

    async def cold(self, name: str, request: bytes, concurrency: int) -> None:
        """Each sample: a data change, then ``concurrency`` requests that must recompute
        (each sample a run of ``self.drive``: synced first, its CPU metered)."""
        runs = []
        for _ in range(self.mode.runs):
            samples: list[dict[str, Any]] = []
            for _ in range(max(1, self.mode.cold_samples // max(1, concurrency // 4))):
                await self.change()
                samples.append(self.drive(self.port, [request] * concurrency, concurrency))
            merged: dict[str, Any] = {
                "rps": statistics.median(r["rps"] for r in samples),
                "p50_ms": statistics.median(r["p50_ms"] for r in samples),
                "p99_ms": max(r["p99_ms"] for r in samples),
                "n": sum(r["n"] for r in samples),
                "errors": sum(r["errors"] for r in samples),
                "statuses": sorted({s for r in samples for s in r["statuses"]}),
            }
            runs.append({**merged, **pooled_cpu(samples)})
        self.figures[name] = {"concurrency": concurrency, **summarise(runs)}

    def body_size(self, request: bytes) -> int:
        sock = socket.create_connection(("127.0.0.1", self.port))
        with sock:
            sock.sendall(request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return len(data.split(b"\r\n\r\n", 1)[1])

    def etag_of(self, request: bytes) -> str:
        sock = socket.create_connection(("127.0.0.1", self.port))
        with sock:
            sock.sendall(request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
            if line.lower().startswith(b"etag:"):
                return line.split(b":", 1)[1].strip().decode()
        raise RuntimeError("no ETag in the response")

    async def reports(self, suffix: str) -> None:
        ministry = self.token(self.data.ministry_id, "ministry_monitor", "ID")
        query = urlencode({"year": self.today.year})
        paths = {
            "ranking_national": f"/v1/rankings/districts?{query}",
            "scorecard_district": f"/v1/scorecards/districts/16.71?{query}",
        }
        for label, path in paths.items():
            for c in (1, 32):
                await self.cold(f"{label}_cold_c{c}{suffix}", self.get(path, ministry), c)
        if suffix:
            return
        # The warm figures and their yardsticks are measured in turns (one run of each,
        # then again), so a noisy moment on the shared machine hits all of them alike.
        many, few = self.mode.warm_requests, max(50, self.mode.warm_requests // 10)
        specs: list[tuple[str, list[bytes], int]] = []
        for label, path in paths.items():
            request = self.get(path, ministry)
            not_modified = self.get(path, ministry, {"If-None-Match": self.etag_of(request)})
            same = self.get(f"/bench/bytes?size={self.body_size(request)}")
            specs += [
                (f"{label}_warm_c1", [request] * few, 1),
                (f"{label}_warm_c32", [request] * many, 32),
                (f"{label}_304_c32", [not_modified] * many, 32),
                (f"{label}_same_bytes_from_memory_c32", [same] * many, 32),
            ]
        specs.append(("plain_json_health_live_c32", [self.get("/health/live")] * many, 32))
        self.in_turns(specs)

    def in_turns(self, specs: list[tuple[str, list[bytes], int]]) -> None:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in specs}
        for _ in range(self.mode.turns):
            for name, requests, concurrency in specs:
                runs[name].append(self.drive(self.port, requests, concurrency))
        for name, _, concurrency in specs:
            self.figures[name] = {"concurrency": concurrency, **summarise(runs[name])}
            self.turns[name] = _per_turn(runs[name])

    def warm_ingest(self, port: int) -> None:
        """Reports not measured, to a server that has taken none yet: a worker's first
        report from each district also reads the caller and their key into the worker's
        memory and the ingest indexes into PostgreSQL's, once per process, not per report.
        It also has each worker check every district's access token once, as a client's
        first report after signing in does (``district_token``).
        """
        drive(port, self.ingest_requests(self.mode.ingest_requests), 64, self.workdir)

    def ingest_in_turns(
        self, unbatched_port: int, bare_port: int, bare_own_sockets_port: int
    ) -> None:
        """Signed ingest at 64 connections, batched (this server), with one transaction
        per submission (a second server on the same database, KINERJA_INGEST_BATCH_MAX=0)
        and the issue's bare route (``bench.bare``, the same requests) under stock
        uvicorn and with a socket per worker as the API has, in turns, so the ratios
        compare the same moments of the machine."""
        servers = {
            "ingest_batched_c64_in_turns": self.port,
            "ingest_one_transaction_each_c64": unbatched_port,
            "bare_jws_insert_c64_in_turns": bare_port,
            "bare_jws_insert_own_sockets_c64_in_turns": bare_own_sockets_port,
        }
        # Below saturation too: the API and the bare route (a socket per worker, as the
        # API has) offered the same rate in the same turns, so the API's p99 there is read
        # beside what the machine gives, at that moment, a route that only checks a
        # signature and inserts one row.
        offered = {
            f"{kind}_offered_{rate}_in_turns": (port, rate)
            for rate in self.mode.turns_rates
            for kind, port in (
                ("ingest_batched", self.port),
                ("bare_jws_insert_own_sockets", bare_own_sockets_port),
            )
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in {**servers, **offered}}
        self.warm_ingest(unbatched_port)  # fresh servers; this one took reports before
        self.warm_ingest(bare_port)
        self.warm_ingest(bare_own_sockets_port)
        for _ in range(self.mode.turns):
            for name, port in servers.items():
                requests = self.ingest_requests(self.mode.ingest_requests)
                runs[name].append(self.drive(port, requests, 64))
            for name, (port, rate) in offered.items():
                requests = self.ingest_requests(round(rate * self.mode.offered_seconds))
                runs[name].append(self.drive(port, requests, 64, rate))
        for name in servers:
            self.figures[name] = {"concurrency": 64, **summarise(runs[name])}
            self.turns[name] = _per_turn(runs[name])
        for name, (_, rate) in offered.items():
            self.figures[name] = {"concurrency": 64, "offered_rps": rate, **summarise(runs[name])}
            self.turns[name] = _per_turn(runs[name])

    def ingest_requests(self, count: int) -> list[bytes]:
        heads = list(self.data.heads.values())
        out = []
        for i in range(count):
            head = heads[i % len(heads)]
            values = dataset.values_for(head, 30 + i // len(heads))
            jws, _ = dataset.signed_submission(head, self.today, values)
            out.append(
                http_request(
                    "POST",
                    "/v1/submissions",
                    {
                        "Authorization": f"Bearer {self.district_token(head)}",
                        "Content-Type": "application/jose",
                        "Idempotency-Key": uuid.uuid4().hex,
                    },
                    jws.encode(),
                )
            )
        return out

    async def _direct(self, name: str, connections: int, size: int | None, month: int) -> None:
        """The same submission rows written with asyncpg directly, without the API, over
        ``connections``: one transaction each (``size`` None: the single append) or in
        transactions of ``size`` (the batch append)."""
        runs = []
        for _ in range(self.mode.runs):
            heads = list(self.data.heads.values())
            jobs = []
            for i in range(self.mode.direct_rows):
                head = heads[i % len(heads)]
                jws, payload = dataset.signed_submission(
                    head, self.today, dataset.values_for(head, month)
                )
                jobs.append((head, jws, payload))
            conns = [await connect(self.dsn) for _ in range(connections)]
            os.sync()  # as ``drive``: no earlier figure's writes land in this one
            started = time.perf_counter()

            async def worker(conn: Any, share: list[Any]) -> None:
                step = size or 1
                for start in range(0, len(share), step):
                    async with conn.transaction():
                        if size is None:
                            await append_directly(conn, *share[start], self.today)
                        else:
                            await append_batch_directly(
                                conn, share[start : start + step], self.today
                            )

            await asyncio.gather(*(worker(c, jobs[i::connections]) for i, c in enumerate(conns)))
            elapsed = time.perf_counter() - started
            for c in conns:
                await c.close()
            runs.append({"rows_per_s": len(jobs) / elapsed})
        self.figures[name] = summarise(runs)

    async def direct_inserts(self) -> None:
        """One transaction per submission with the ledger lock (4 connections): the floor
        under the API writing one submission at a time."""
        await self._direct("direct_insert_asyncpg_4conn", 4, None, 40)

    async def direct_batched_inserts(self, size: int = 32) -> None:
        """As the API's batches write (2 connections, one per worker, transactions of
        ``size``): the floor under the batched API."""
        await self._direct("direct_batched_insert_asyncpg_2conn", 2, size, 41)

    async def settle(self) -> None:
        """Requests after a bulk load, not measured: the first ones pay for the load
        itself (pages not yet in cache, tuples first read since they were written), which
        is not what the cold figures are about: a real history was not loaded at once.
        Done after each load, so the 1-year and 10-year figures start alike.
        """
        ministry = self.token(self.data.ministry_id, "ministry_monitor", "ID")
        query = urlencode({"year": self.today.year})
        requests = [
            self.get(f"/v1/rankings/districts?{query}", ministry),
            self.get(f"/v1/scorecards/districts/16.71?{query}", ministry),
        ]
        for _ in range(2 if self.mode.quick else 20):
            await self.change()
            drive(self.port, requests, 1, self.workdir)

    async def history(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            started = time.monotonic()
            years = list(range(self.today.year - self.mode.years + 1, self.today.year))
            written = await dataset.add_history(conn, self.data, years, last_month=12)
            self.figures["dataset"]["history_years"] = self.mode.years
            self.figures["dataset"]["submissions"] += written
            self.figures["dataset"]["history_build_s"] = round(time.monotonic() - started, 1)
            await write_out(conn)
        finally:
            await conn.close()


def _entry(
    head: dataset.Head, current: Head, jws: str, payload: dict[str, Any], as_of: Any
) -> NewSubmission:
    """One submission's rows as the API writes them, appended after ``current``; the
    dataset's copy of the head follows, so history added later continues the chain."""
    new_hash = entry_hash(current.hash, jws)
    head.seq, head.hash = current.seq + 1, new_hash
    return NewSubmission(
        id=uuid.uuid4(),
        district_code=head.district,
        division_id=None,
        seq=current.seq + 1,
        prev_hash=current.hash,
        hash=new_hash,
        jws=jws,
        payload=payload,
        jti=uuid.UUID(payload["jti"]),
        iat=datetime.fromtimestamp(payload["iat"], UTC),
        as_of=as_of,
        submitter_id=head.user_id,
        kid=head.kid,
        received_at=datetime.now(UTC),
        flags=[],
        note=None,
        supersedes_id=None,
        supersede_reason=None,
        values=[
            NewValue(
                indicator_code=c,
                numerator=n,
                denominator=d,
                stated_pct=None,
                channels=None,
                flags=[],
            )
            for c, (n, d) in payload_values(payload).items()
        ],
    )


def _answer(entry: NewSubmission) -> IdempotentAnswer:
    """The stored answer to the entry's Idempotency-Key: the benchmark's requests, as the
    client's, all carry one, so the API writes one for each submission."""
    return IdempotentAnswer(
        key=uuid.uuid4().hex,
        request_sha256=hashlib.sha256(entry.jws.encode()).hexdigest(),
        status_code=201,
        response=created_response(entry),
    )


async def append_directly(
    conn: Any, head: dataset.Head, jws: str, payload: dict[str, Any], as_of: Any
) -> None:
    """One submission as the API writes it alone, without the API: its locks (ledger
    head, latest values), then its append statement with the entry's values, head,
    Idempotency-Key answer and data version (the caller holds the transaction)."""
    current = await lock_head(conn, head.district, hold_latest=True)
    entry = _entry(head, current, jws, payload, as_of)
    await append_submission(conn, entry, _answer(entry))


async def append_batch_directly(
    conn: Any, jobs: list[tuple[dataset.Head, str, dict[str, Any]]], as_of: Any
) -> None:
    """Submissions as the API writes a batch, without the API: the heads and their
    latest-values locks (the API's call, with nothing to read), then one write statement
    with the same rows as the API's (the caller holds the transaction)."""
    found = await appends.begin_batch(
        conn,
        lock_names=[],
        districts=sorted({h.district for h, _, _ in jobs}),
        kids=[],
        jtis=[],
        probes=[],
        pairs=[],
        ttl_s=0,
        make_missing=False,
        submitters=[],
    )
    heads = dict(found.heads)
    entries = []
    for head, jws, payload in jobs:
        entry = _entry(head, heads[head.district], jws, payload, as_of)
        heads[head.district] = Head(district_code=head.district, seq=entry.seq, hash=entry.hash)
        entries.append(entry)
    answers = [(entry.submitter_id, _answer(entry)) for entry in entries]
    await appends.write(conn, entries, [heads[d] for d in sorted(heads)], answers)


def payload_values(payload: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {c: (v["numerator"], v["denominator"]) for c, v in payload["values"].items()}


def start_server(
    dsn: str, port: int, workers: int, log: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "KINERJA_PORT": str(port),
        "KINERJA_WORKERS": str(workers),
        "KINERJA_LOG_LEVEL": "WARNING",
        "KINERJA_POOL_MAX_SIZE": "10",
        "KINERJA_BENCH_ROUTES": "true",
        **(extra_env or {}),
    }
    kinerja = Path(sys.executable).parent / "kinerja"
    return _await_ready([str(kinerja), "serve"], env, port, log, b" 200 ")


def start_bare_server(
    dsn: str, port: int, workers: int, log: Path, *, own_sockets: bool = False
) -> subprocess.Popen[bytes]:
    """The issue's bare route (``bench.bare``), served by stock uvicorn (its workers
    sharing one listening socket), or with ``own_sockets`` a socket per worker, as
    ``kinerja serve`` runs the API."""
    if own_sockets:
        command = [sys.executable, "-m", "bench.bare", str(port), str(workers)]
    else:
        command = [sys.executable, "-m", "uvicorn", "bench.bare:create_app", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        command += ["--log-level", "warning", "--no-access-log"]
    env = {**os.environ, "DATABASE_URL": dsn}
    return _await_ready(command, env, port, log, b" 404 ")  # it has no health route


def _await_ready(
    command: list[str], env: dict[str, str], port: int, log: Path, ready: bytes
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if ready in s.recv(100):
                    return process
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not become ready; see " + str(log))


def disk_lines(probes: dict[str, dict[str, float]]) -> list[str]:
    """The disk probe's readings (``bench.disk``), a line and a blank one; none if absent."""
    if not probes:
        return []
    readings = "; ".join(
        f"{when} p50 {p['p50_ms']} / p99 {p['p99_ms']} / max {p['max_ms']} ms, "
        f"{p['over_50ms']} of {p['writes']} over 50 ms"
        for when, p in probes.items()
    )
    return [
        "Disk probe (an 8 KiB write and fdatasync every 10 ms, as a commit waits for; "
        f"`bench/disk.py`): {readings}.",
        "",
    ]


def tail_lines(figures: dict[str, Any]) -> list[str]:
    """Per ingest figure at an offered rate, whether its p99 was one stall
    (``bench.tails``): the p99 outside the half-second holding most of its slowest 1%,
    and their share in it."""
    shown = {
        name: fig
        for name, fig in figures.items()
        if isinstance(fig, dict) and "slow_in_worst_half_s" in fig and fig.get("offered_rps")
    }
    if not shown:
        return []
    lines = [
        "",
        "Whether each offered-rate figure's p99 was one stall: the half-second that held "
        "the most of a run's slowest 1%, their share in it, and the p99 of the requests "
        "answered outside it (median [min-max] over the runs). A stall shows as a high "
        "share and a much lower p99 outside; queueing, as a p99 that hardly moves.",
        "",
        "| figure | p99 ms | slowest 1% within the half-second | p99 ms outside it |",
        "|---|---|---|---|",
    ]

    def cell(v: dict[str, float] | None) -> str:
        return "" if v is None else f"{v['median']} [{v['min']}-{v['max']}]"

    for name, fig in shown.items():
        lines.append(
            f"| {name} | {cell(fig['p99_ms'])} | {cell(fig['slow_in_worst_half_s'])} | "
            f"{cell(fig.get('p99_outside_worst_half_s_ms'))} |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark ({result['mode']}) — {result['finished_at']}",
        "",
        f"Machine: {result['machine']['cores']} cores, Python {result['machine']['python']}, "
        f"{result['machine']['postgres']}. Dataset: {json.dumps(result['figures']['dataset'])}.",
        "",
        "Speed probe (one Ed25519 verification, best of 5, µs; higher is a slower machine): "
        + ", ".join(f"{k} {v}" for k, v in result["machine"].get("speed_probe_us", {}).items())
        + ".",
        "",
        *disk_lines(result["machine"].get("disk_probe", {})),
        "| figure | concurrency | req/s (median [min-max]) | p50 ms | p99 ms | failed |",
        "|---|---|---|---|---|---|",
    ]

    def cell(v: Any) -> str:
        return "" if v is None else f"{v['median']} [{v['min']}-{v['max']}]"

    for name, fig in result["figures"].items():
        if name in ("dataset", "ratios", "server_peak_memory_mib"):
            continue
        rate = fig.get("rps") or fig.get("rows_per_s")
        clients = str(fig.get("concurrency", ""))
        if fig.get("offered_rps"):
            clients += f", {fig['offered_rps']}/s offered"
        failed = ""
        if fig.get("errors"):
            failed = f"{fig['errors']} (statuses {', '.join(map(str, fig['statuses']))})"
        elif "rps" in fig:
            failed = "0"
        lines.append(
            f"| {name} | {clients} | {cell(rate)} | {cell(fig.get('p50_ms'))} | "
            f"{cell(fig.get('p99_ms'))} | {failed} |"
        )
    cores = result["machine"]["cores"] or 1
    figures = result["figures"].items()
    metered = {n: f for n, f in figures if isinstance(f, dict) and CPU_KEYS[0] in f}
    if metered:
        lines += [
            "",
            "CPU per request, µs (all the runs together): the server's processes, "
            "PostgreSQL's and the load generator's; "
            f"{cores} cores divided by their sum, the rate at which that cost fills every "
            "core; and the CPU the hypervisor took from this machine meanwhile (not 0: the "
            "figure had less than every core).",
            "",
            "| figure | server | PostgreSQL | load generator | total | req/s filling the cores "
            "| stolen |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, fig in metered.items():
            parts = [fig.get(k) for k in CPU_KEYS]
            total = sum(p for p in parts if p is not None)
            alone = round(cores * 1e6 / total) if total else ""
            shown = ["" if p is None else f"{p:.0f}" for p in parts]
            stolen = fig.get(STOLEN_KEY)
            lines.append(
                f"| {name} | {' | '.join(shown)} | {total:.0f} | {alone} | "
                f"{'' if stolen is None else f'{stolen:.0f}'} |"
            )
    lines += tail_lines(result["figures"])
    lines += ["", "| ratio | value |", "|---|---|"]
    for name, value in result["figures"].get("ratios", {}).items():
        lines.append(f"| {name} | {value} |")
    lines.append("")
    lines.append(
        "Server peak memory (all processes): "
        f"{result['figures'].get('server_peak_memory_mib')} MiB."
    )
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> int:
    mode = Mode(args.quick)
    started = time.monotonic()
    probe_at_start = cpu.speed_probe_us()
    base = Path(tempfile.mkdtemp(prefix="kinerja-bench-", dir="/tmp"))
    base.chmod(0o755)
    disk_probe = {"start": disk.fsync_probe(base, mode.disk_probe_seconds)}
    cluster = EmbeddedPostgres(base / "data")
    dsn = cluster.start()
    server = None
    try:
        bench = Bench(mode, base)
        await bench.prepare(dsn)
        bench.port = free_port()
        workers = os.cpu_count() or 2
        server = start_server(dsn, bench.port, workers, base / "server.log")
        bench.server_pids[bench.port] = server.pid
        bench.postgres_pid = cpu.postmaster_pid(cluster.pgdata)
        bench.repeated(
            "plain_json_health_live", lambda: [bench.get("/health/live")] * mode.plain_requests, 64
        )
        await bench.settle()
        await bench.reports("")
        await bench.history()
        await bench.settle()
        await bench.reports(f"_{mode.years}y")
        speed = {"start": probe_at_start}
        bench.warm_ingest(bench.port)
        speed["before_ingest"] = cpu.speed_probe_us()
        disk_probe["before_ingest"] = disk.fsync_probe(base, mode.disk_probe_seconds)
        bench.repeated("ingest_signed_c64", lambda: bench.ingest_requests(mode.ingest_requests), 64)
        bench.repeated(
            "ingest_signed_c8", lambda: bench.ingest_requests(mode.ingest_requests // 3), 8
        )
        # Two clients: the latency a district head sees when nobody else is reporting.
        bench.repeated(
            "ingest_signed_c2", lambda: bench.ingest_requests(mode.ingest_requests // 6), 2
        )
        # Below saturation and at the aim: reports falling due at fixed rates (an open
        # loop over 64 connections), each timed from when it fell due. A closed loop of
        # 8 clients already fills the cores (small batches cost more a report), so it
        # does not say what latency is below saturation; these do.
        for rate in mode.offered_rates:
            count = round(rate * mode.offered_seconds)
            bench.repeated(
                f"ingest_signed_offered_{rate}",
                lambda count=count: bench.ingest_requests(count),
                64,
                rate=rate,
            )
        await bench.direct_inserts()
        await bench.direct_batched_inserts()
        figures = bench.figures
        figures["server_peak_memory_mib"] = round(server_memory_kib(server.pid) / 1024, 1)
        unbatched_port = free_port()
        unbatched = start_server(
            dsn,
            unbatched_port,
            workers,
            base / "server-unbatched.log",
            {"KINERJA_INGEST_BATCH_MAX": "0"},
        )
        bare_port, bare_own_port = free_port(), free_port()
        bare_server = bare_own_server = None
        try:
            conn = await connect(dsn)
            try:
                await conn.execute(bare.CREATE_TABLE)
            finally:
                await conn.close()
            bare_server = start_bare_server(dsn, bare_port, workers, base / "server-bare.log")
            bare_own_server = start_bare_server(
                dsn, bare_own_port, workers, base / "server-bare-own.log", own_sockets=True
            )
            bench.server_pids[unbatched_port] = unbatched.pid
            bench.server_pids[bare_port] = bare_server.pid
            bench.server_pids[bare_own_port] = bare_own_server.pid
            bench.ingest_in_turns(unbatched_port, bare_port, bare_own_port)
        finally:
            for process in (unbatched, bare_server, bare_own_server):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=20)
        figures["ratios"] = {
            "ingest_api_over_direct_insert": _ratio(
                bench, ("ingest_signed_c64", "rps"), ("direct_insert_asyncpg_4conn", "rows_per_s")
            ),
            "ingest_api_over_direct_batched_insert": _ratio(
                bench,
                ("ingest_signed_c64", "rps"),
                ("direct_batched_insert_asyncpg_2conn", "rows_per_s"),
            ),
            "ingest_batched_over_one_transaction_each": _ratio(
                bench,
                ("ingest_batched_c64_in_turns", "rps"),
                ("ingest_one_transaction_each_c64", "rps"),
            ),
            "ingest_batched_over_bare_jws_insert": _ratio(
                bench,
                ("ingest_batched_c64_in_turns", "rps"),
                ("bare_jws_insert_c64_in_turns", "rps"),
            ),
            "ingest_batched_over_bare_jws_insert_own_sockets": _ratio(
                bench,
                ("ingest_batched_c64_in_turns", "rps"),
                ("bare_jws_insert_own_sockets_c64_in_turns", "rps"),
            ),
            # Latency below saturation: the API's p99 over the bare route's, the same rate
            # offered to each in the same turns.
            "ingest_p99_over_bare_p99_offered_in_turns": _ratio(
                bench,
                (f"ingest_batched_offered_{mode.turns_rate}_in_turns", "p99_ms"),
                (f"bare_jws_insert_own_sockets_offered_{mode.turns_rate}_in_turns", "p99_ms"),
            ),
            # The same comparison by CPU per request (bench.cpu): the bare route's over the
            # API's, the ratio of rates were each to fill every core.
            "ingest_batched_over_bare_jws_insert_by_cpu": _cpu_ratio(
                figures, "bare_jws_insert_c64_in_turns", "ingest_batched_c64_in_turns"
            ),
            "ingest_over_plain_json": _ratio(
                bench, ("ingest_signed_c64", "rps"), ("plain_json_health_live", "rps")
            ),
            "ranking_warm_c32_over_plain_json_c32": _ratio(
                bench, ("ranking_national_warm_c32", "rps"), ("plain_json_health_live_c32", "rps")
            ),
            "ranking_304_c32_over_plain_json_c32": _ratio(
                bench, ("ranking_national_304_c32", "rps"), ("plain_json_health_live_c32", "rps")
            ),
            "ranking_304_c32_over_plain_json_c64": _ratio(
                bench, ("ranking_national_304_c32", "rps"), ("plain_json_health_live", "rps")
            ),
            "ranking_warm_c32_over_same_bytes_from_memory": _ratio(
                bench,
                ("ranking_national_warm_c32", "rps"),
                ("ranking_national_same_bytes_from_memory_c32", "rps"),
            ),
            "scorecard_warm_c32_over_same_bytes_from_memory": _ratio(
                bench,
                ("scorecard_district_warm_c32", "rps"),
                ("scorecard_district_same_bytes_from_memory_c32", "rps"),
            ),
            "scorecard_304_c32_over_plain_json_c32": _ratio(
                bench,
                ("scorecard_district_304_c32", "rps"),
                ("plain_json_health_live_c32", "rps"),
            ),
            "ranking_cold_p50_ms": figures.get("ranking_national_cold_c1", {})
            .get("p50_ms", {})
            .get("median"),
            f"ranking_cold_p50_{mode.years}y_over_1y": _ratio(
                bench,
                (f"ranking_national_cold_c1_{mode.years}y", "p50_ms"),
                ("ranking_national_cold_c1", "p50_ms"),
            ),
            f"scorecard_cold_p50_{mode.years}y_over_1y": _ratio(
                bench,
                (f"scorecard_district_cold_c1_{mode.years}y", "p50_ms"),
                ("scorecard_district_cold_c1", "p50_ms"),
            ),
        }
        pg_version = subprocess.run(
            [str(cluster.bindir / "postgres"), "--version"], capture_output=True, text=True
        ).stdout.strip()
        result = {
            "mode": "quick" if mode.quick else "full",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - started, 1),
            "machine": {
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "postgres": pg_version,
                "server_workers": workers,
                "load": "bench/load.py, a separate process, raw HTTP/1.1 keep-alive on loopback",
                "speed_probe_us": {**speed, "end": cpu.speed_probe_us()},
                "disk_probe": {
                    **disk_probe,
                    "end": disk.fsync_probe(base, mode.disk_probe_seconds),
                },
            },
            "figures": figures,
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(markdown(result))
        print(markdown(result))
        failed = sorted(n for n, f in figures.items() if isinstance(f, dict) and f.get("errors"))
        if failed:  # a figure with refused requests measured something else
            print(f"requests failed in: {', '.join(failed)}", file=sys.stderr)
            return 1
        return 0
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        cluster.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def _cpu_ratio(figures: dict[str, Any], a: str, b: str) -> float | None:
    """Total CPU per request of figure ``a`` over that of ``b``."""
    totals = [sum(figures.get(name, {}).get(k, 0.0) for k in CPU_KEYS) for name in (a, b)]
    return round(totals[0] / totals[1], 3) if totals[0] and totals[1] else None


def _per_turn(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    return {key: [run[key] for run in runs] for key in ("rps", "p99_ms")}


def _ratio(bench: Bench, a: tuple[str, str], b: tuple[str, str]) -> float | None:
    """a / b. For two figures measured in turns, the median of the ratios of each turn:
    both halves of a ratio then share the same moment of the shared machine."""
    paired = [bench.turns.get(a[0], {}).get(a[1]), bench.turns.get(b[0], {}).get(b[1])]
    try:
        if a[1] == b[1] and paired[0] and paired[1]:
            return round(statistics.median(x / y for x, y in zip(*paired, strict=True)), 3)
        figures = bench.figures
        return round(figures[a[0]][a[1]]["median"] / figures[b[0]][b[1]]["median"], 3)
    except (KeyError, ZeroDivisionError, TypeError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: completes, writes its file"
    )
    parser.add_argument("--out", default=str(RESULTS / "latest.json"))
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
