"""The benchmark's CPU meter (``bench.cpu``) reads real processes from ``/proc``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench import cpu


def _burn_until_charged(pids: list[int], before: float) -> float:
    """Spin until the kernel has charged this process a tick (10 ms), at most 5 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        sum(i * i for i in range(10_000))
        now = cpu.cpu_seconds(pids)
        if now > before:
            return now
    return before


def test_a_process_tree_holds_its_children_and_their_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = cpu.process_tree(os.getpid())
        assert tree[0] == os.getpid()
        assert child.pid in tree
    finally:
        child.kill()
        child.wait()
    mine = [os.getpid()]
    before = cpu.cpu_seconds(mine)
    assert _burn_until_charged(mine, before) > before


def test_per_request_divides_the_time_spent_since_the_reading() -> None:
    reading = cpu.reading(os.getpid(), None)
    assert reading.server and reading.postgres == {}
    _burn_until_charged([os.getpid()], reading.server[os.getpid()])
    figures = cpu.per_request(reading, 10, load_cpu_s=0.002)
    assert figures["server_cpu_us"] >= 1000  # at least one 10 ms tick over 10 requests
    assert figures["load_cpu_us"] == 200.0
    assert "postgres_cpu_us" not in figures
    assert figures["stolen_cpu_us"] >= 0
    assert cpu.per_request(reading, 0, load_cpu_s=1.0) == {}


def test_a_missing_pid_file_gives_no_postmaster(tmp_path: Path) -> None:
    assert cpu.postmaster_pid(tmp_path) is None
    (tmp_path / "postmaster.pid").write_text("4242\n/data\n")
    assert cpu.postmaster_pid(tmp_path) == 4242


def test_stolen_time_is_read_from_the_machine_and_only_grows() -> None:
    first = cpu.stolen_seconds()
    assert first >= 0
    assert cpu.stolen_seconds() >= first
    # The steal column is the eighth number of /proc/stat's first line.
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    assert fields[0] == "cpu" and len(fields) > 8
