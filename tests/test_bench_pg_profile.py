"""How ``bench.pg_profile`` sorts sampled PostgreSQL stacks into the parts of a batch
(the recording itself needs ``perf`` and is not run here)."""

from __future__ import annotations

import pytest

from bench.pg_profile import shares, stacks

# ``perf script -F ip,sym``: a sample's frames leaf first, one per line, a blank line
# after each sample; a frame without a symbol has its address alone.
SCRIPT = """
\t  2fba59 standard_ExecutorStart
\t  2d58337 fmgr_security_definer
\t  4732d8 PostgresMain

\t  338852 SPI_execute_snapshot
\t  30e8f8
\t  1842f plpgsql_exec_trigger
\t  2dd797 AfterTriggerEndQuery
\t  4732d8 PostgresMain

\t  1842f plpgsql_exec_trigger
\t  2dd797 AfterTriggerEndQuery

\t  c149b1 XLogFlush
\t  1e5884 CommitTransactionCommand

\t  1e5884 CommitTransactionCommand

\t  2fba59 standard_ExecutorStart
\t  ea5ea8 PortalRun

\t  d7b406 secure_read
\t  d7b406 pq_getbyte

\t  d7b06b secure_write

\t  123456 exec_bind_message

\t  4732d8 PostgresMain
"""


def test_samples_are_read_leaf_first_with_unnamed_frames_kept() -> None:
    samples = list(stacks(SCRIPT.splitlines()))
    assert len(samples) == 10
    assert samples[0] == ["standard_ExecutorStart", "fmgr_security_definer", "PostgresMain"]
    assert samples[1][1] == "[unknown]"


def test_each_sample_counts_once_in_the_first_part_it_holds() -> None:
    figures = shares(stacks(SCRIPT.splitlines()))
    assert figures["samples"] == 10
    parts = figures["parts"]
    # A check fired by a trigger's own write is a check, not the trigger.
    assert parts["begin_ingest_batch"] == parts["foreign_key_checks"] == 0.1
    assert parts["triggers_plpgsql"] == 0.1
    assert parts["commit_wal_flush"] == parts["commit_other"] == 0.1
    assert parts["statements"] == parts["bind"] == parts["other"] == 0.1
    assert parts["read_from_client"] == parts["write_to_client"] == 0.1
    assert sum(parts.values()) == pytest.approx(1.0)
    # Executor start-up is counted wherever it happens.
    assert figures["across"] == {"executor_startup": 0.2, "plan_cache": 0.0}


def test_no_samples_is_an_error_not_a_division_by_zero() -> None:
    with pytest.raises(ValueError, match="no samples"):
        shares([])
