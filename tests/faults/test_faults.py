"""Fault injection (issue 14): SIGKILL ingest, a pretraining checkpoint, a head save, a
whole-scene COG write and a landing run at 20 seeded write/rename/fsync calls and 4 seeded
delays each; afterwards every output is complete and verifiable or absent, and a rerun gives
the uninterrupted result (tests/faults/driver.py). The table is printed with ``-s`` and written
to ``<tmp>/fault-table.md``."""

from __future__ import annotations

import pytest

from tests.faults.report import findings, run_op, table

TRIALS, TIMED = 20, 4

# Outcomes the design accepts: a killed re-save of a model folder removes the old config.json
# first (a folder without one is no model), so the old head is gone until the rerun saves the new.
ACCEPTED_LOSS = "the older head is gone"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.mark.parametrize("name", [
    "ingest",
    "pretrain",
    "head", "cog", "landing",
])
def test_sigkill_leaves_whole_or_absent_outputs_and_a_rerun_finishes_equal(name, tmp_path):
    summary, trials = run_op(name, tmp_path, TRIALS, TIMED, seed=0)
    report = tmp_path / "fault-table.md"
    report.write_text(table([summary]) + "\n" + "\n".join(findings(trials)) + "\n")
    print("\n" + report.read_text())
    assert summary["trials"] == TRIALS + TIMED
    assert summary["killed"] >= TRIALS  # the hook trials all die before the end
    wrong = [t for t in trials if t["wrong"]]
    assert not wrong, findings(wrong)
    lost = [t for t in trials if t["lost"]]
    unexplained = [t for t in lost if not all(
        ACCEPTED_LOSS in item for stage in ("after_kill", "after_rerun")
        for item in t[stage]["lost"])]
    assert not unexplained, findings(unexplained)
