"""CPU time per request, by who spent it: the server's processes, PostgreSQL's, and the
load generator.

On this shared machine requests a second move by a tenth or more between runs of the
same code. CPU per request says where the time goes (server, database or client), and
``cores * 1e6 / total`` is the rate at which that cost fills every core. Read from
``/proc`` (Linux); elsewhere the figures are left out.

It also reads what the hypervisor took: CPU time this virtual machine wanted and was
not given (the steal column of ``/proc/stat``). When it is not zero the figure was
measured on fewer cores than the machine has; on this shared machine that is what
makes a latency tail jump from 10 ms to 90 (reports offered at 1,000/s, four turns: the
one with a tail of 93 ms is the one with 100 us stolen a report, the others none).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, as they are now."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User and system time of ``pids`` (every thread), exited ones counted as nothing."""
    ticks = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / _HZ


def stolen_seconds() -> float:
    """CPU time, all cores together, that the hypervisor gave to others while this
    machine had work (the steal column of ``/proc/stat``); 0 where it cannot be read."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / _HZ
    except (OSError, IndexError, ValueError):
        return 0.0


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Reading:
    """CPU spent so far by each of a server's processes and PostgreSQL's."""

    server_pid: int
    postgres_pid: int | None
    server: dict[int, float]
    postgres: dict[int, float]
    stolen: float = 0.0


def _tree_seconds(pid: int | None) -> dict[int, float]:
    return {p: cpu_seconds([p]) for p in process_tree(pid)} if pid else {}


def reading(server_pid: int, postgres_pid: int | None) -> Reading:
    if not Path("/proc/self/stat").exists():
        return Reading(server_pid, postgres_pid, {}, {})
    return Reading(
        server_pid,
        postgres_pid,
        _tree_seconds(server_pid),
        _tree_seconds(postgres_pid),
        stolen_seconds(),
    )


def _since(before: dict[int, float], root: int | None) -> float:
    """CPU of ``root``'s tree since ``before``; a process started since counts whole (a
    pool opening a connection under load), one that ended since loses its time."""
    now = _tree_seconds(root)
    return sum(t - before.get(p, 0.0) for p, t in now.items())


def per_request(before: Reading, requests: int, load_cpu_s: float) -> dict[str, float]:
    """CPU microseconds per request since ``before``, by who spent it, and what the
    hypervisor took meanwhile (``stolen_cpu_us``); empty where ``/proc`` cannot be
    read. The load generator reports its own.

    The kernel here charges CPU by the 10 ms tick, so a figure is the sum of a few dozen
    ticks per run: ``summarise`` pools the runs rather than taking their median."""
    if requests <= 0 or not before.server:
        return {}
    out = {"server_cpu_us": _since(before.server, before.server_pid)}
    if before.postgres:
        out["postgres_cpu_us"] = _since(before.postgres, before.postgres_pid)
    out["load_cpu_us"] = load_cpu_s
    out["stolen_cpu_us"] = max(0.0, stolen_seconds() - before.stolen)
    return {k: round(v / requests * 1e6, 1) for k, v in out.items()}


def speed_probe_us(rounds: int = 5, n: int = 1000) -> float:
    """Microseconds one Ed25519 verification of a 1.2 KB report takes here, best of
    ``rounds``: pure CPU with no I/O, the costliest step of a signed report. Taken at
    moments of a run, it tells how fast the shared machine was then (it has read 64-78
    or 101-119 us, switching within seconds while no local process was busy), so a
    figure that moved with it is read as the machine's, not the code's."""
    from nacl.signing import SigningKey

    message = bytes(range(256)) * 5
    key = SigningKey(bytes(32))
    signature = key.sign(message).signature
    verify = key.verify_key.verify
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            verify(message, signature)
        best = min(best, (time.perf_counter() - started) / n * 1e6)
    return round(best, 1)
