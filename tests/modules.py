"""The repository's modules run as ``make bench`` runs them: ``python -m`` from its root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_module(
    *args: str, timeout: float = 180, succeeds: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m args...`` from the repository; it must succeed (or, with
    ``succeeds=False``, fail)."""
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert (done.returncode == 0) == succeeds, (done.returncode, done.stderr[-3000:])
    return done


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any Kinerja setting or database, the repository on the
    path, and ``extra``: a child process configured only as the test says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINERJA_")}
    env.pop("DATABASE_URL", None)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env
