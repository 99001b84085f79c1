"""Pretraining throughput: samples/s per branch at the default and the paper-scale configuration.

Runs the real training loop (crossdiff_core.train.pretrain.train_branch) for a few steps per case,
side by side in one process on the same machine, and prints a table: samples per second (first step
left out as warm-up), seconds per step, and the share of step time spent waiting for data.

    python benchmarks/pretrain.py --scenes data/zarr            # CPU, 2 timed steps per case
    python benchmarks/pretrain.py --scenes data/zarr --device cuda --steps 20

The default case reads the ``pretrain`` section of params.yaml; the paper case replaces the patch
(PAN 256) and batch (32) as DESIGN.md section 4 describes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import yaml

from crossdiff_core.train.config import PretrainConfig
from crossdiff_core.train.pretrain import train_branch

PAPER = {"pan_patch": 256, "batch_size": 32}


def measure(config: PretrainConfig) -> dict:
    """Train ``config`` and summarise the per-step timings after the warm-up step."""
    records: list[dict] = []
    train_branch(config, on_step=lambda step, metrics: records.append(metrics), resume=False)
    timed = records[1:] or records
    step_s = statistics.mean(r["step_s"] for r in timed)
    data_s = statistics.mean(r["data_s"] for r in timed)
    return {"samples_per_s": config.batch_size / step_s, "step_s": step_s,
            "data_fraction": data_s / step_s, "loss": records[-1]["loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=["data/zarr"])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--steps", type=int, default=2, help="timed steps per case (+1 warm-up)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="+", default=["default", "paper"])
    args = parser.parse_args()

    section = (yaml.safe_load(args.params.read_text()) or {}).get("pretrain") or {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as out:
        for case in args.cases:
            for branch in ("p2m", "m2p"):
                overrides = dict(PAPER) if case == "paper" else {}
                config = PretrainConfig.from_params(
                    section, branch, scenes=args.scenes, out=f"{out}/{case}",
                    steps=args.steps + 1, checkpoint_every=args.steps + 1, device=args.device,
                    sample_steps=2, progress=False, **overrides,
                )
                result = measure(config)
                rows.append((case, branch, config.pan_patch, config.batch_size, result))

    print(f"\npretraining throughput on {args.device} ({args.steps} timed steps per case)\n")
    header = (f"{'case':8} {'branch':6} {'PAN patch':>9} {'batch':>5} {'samples/s':>10} "
              f"{'s/step':>8} {'data share':>10}")
    print(header)
    print("-" * len(header))
    for case, branch, patch, batch, result in rows:
        print(f"{case:8} {branch:6} {patch:9d} {batch:5d} {result['samples_per_s']:10.2f} "
              f"{result['step_s']:8.3f} {result['data_fraction']:10.1%}")
    by_key = {(case, branch): result for case, branch, _, _, result in rows}
    if {"default", "paper"} <= set(args.cases):
        print()
        for branch in ("p2m", "m2p"):
            ratio = by_key[("default", branch)]["samples_per_s"] / by_key[("paper", branch)][
                "samples_per_s"]
            print(f"{branch}: default / paper samples per second = {ratio:.1f}x")
        for case in args.cases:
            ratio = by_key[(case, "p2m")]["step_s"] / by_key[(case, "m2p")]["step_s"]
            print(f"{case}: p2m / m2p step time = {ratio:.2f}")


if __name__ == "__main__":
    main()
