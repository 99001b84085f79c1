"""The fault table: ``python -m tests.faults.report [--trials 20] [--timed 4] [--seed 0] [OP...]``.

Runs each operation's trials (``tests.faults.driver``, one process per operation) and prints the
markdown table "fault | trials | nothing lost | nothing wrong", then every trial that lost or got
something wrong with what was found.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.faults.driver import OPS

LABELS = {
    "ingest": "SIGKILL during ingest (Landsat .tar.gz -> store)",
    "pretrain": "SIGKILL during pretraining (checkpoint every step)",
    "head": "SIGKILL during a head (pansharpener) save",
    "cog": "SIGKILL during a whole-scene COG write",
    "landing": "SIGKILL during a landing run (2 good + 1 empty archive)",
}
ORDER = ("ingest", "pretrain", "head", "cog", "landing")


def run_op(name: str, root: Path, trials: int, timed: int, seed: int) -> tuple[dict, list[dict]]:
    """Run the driver for ``name`` in its own process; returns (summary, trials)."""
    command = [sys.executable, "-m", "tests.faults.driver", name, str(root / name),
               "--trials", str(trials), "--timed", str(timed), "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], env={**os.environ})
    if done.returncode != 0:
        raise RuntimeError(f"{name}: driver failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return lines[-1]["summary"], lines[:-1]


def row(summary: dict) -> str:
    killed = summary["killed"]
    return (f"| {LABELS[summary['op']]} | {summary['trials']} ({summary['hook_trials']} at a "
            f"seeded write/rename/fsync call out of {sum(summary['calls'].values())}, "
            f"{summary['timed_trials']} after a seeded delay; {killed} killed before the end) "
            f"| {summary['nothing_lost']}/{summary['trials']} "
            f"| {summary['nothing_wrong']}/{summary['trials']} |")


def table(summaries: list[dict]) -> str:
    lines = ["| fault | trials | nothing lost | nothing wrong |", "|---|---|---|---|"]
    return "\n".join(lines + [row(s) for s in summaries])


def findings(trials: list[dict]) -> list[str]:
    out = []
    for trial in trials:
        if trial["lost"] or trial["wrong"]:
            where = f"call {trial['at']}" if trial["kind"] == "hook" else f"{trial['delay']} s"
            found = {stage: {k: v for k, v in trial[stage].items() if v}
                     for stage in ("after_kill", "after_rerun")}
            out.append(f"- {trial['op']} ({trial['scenario']}, killed at {where}): "
                       f"{json.dumps({k: v for k, v in found.items() if v})}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ops", nargs="*", choices=[[], *OPS], default=[])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--timed", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summaries, all_trials = [], []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crossdiff-faults-") as root:
        for name in args.ops or ORDER:
            summary, trials = run_op(name, Path(root), args.trials, args.timed, args.seed)
            summaries.append(summary)
            all_trials += trials
    print(table(summaries))
    notes = findings(all_trials)
    if notes:
        print("\nTrials that lost or got something wrong:")
        print("\n".join(notes))
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
