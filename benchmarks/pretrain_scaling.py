"""Pretraining under torchrun: samples/s with 1, 2, ... processes, and what determinism costs.

Scaling (``pretrain_scaling``): the real training loop of one branch (P2M) on a synthetic
Landsat-8 scene, in N processes under ``torchrun --standalone`` (the path ``pretrain.processes``
takes; gloo on CPU), the same global batch each time, one run per N, side by side. Samples per
second are rank 0's, over the steps after the first two (warm-up). Every process gets an equal
share of the cores (``OMP_NUM_THREADS``, as the pipeline sets it).

Determinism (``determinism_cost``): both branches in this process one after the other
(``pretrain.deterministic: true``, the default) against both at once in two threads
(``deterministic: false``), wall-clock seconds of each, interleaved and repeated.

    python benchmarks/pretrain_scaling.py                       # both tables, CPU
    python benchmarks/pretrain_scaling.py --processes 1 2 4 --steps 30 --device cuda

``benchmarks/scale.py`` calls ``pretrain_scaling()`` for its scaling table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Small settings: the defaults' UNet and patches (params.yaml), a few steps.
SMALL = {"pan_patch": 64, "batch_size": 8, "channels": [32, 64, 128, 256], "timesteps": 1000,
         "sample_steps": 2, "progress": False}
WARM_UP = 2


def _scene(folder: Path) -> str:
    from crossdiff_core.synthetic import write_synthetic_store

    write_synthetic_store(folder, "Landsat-8", ms_shape=(96, 96), seed=3)
    return str(folder)


def _worker(request: Path, result: Path) -> None:
    """One torchrun process: train P2M as ``request`` says; rank 0 writes its step timings."""
    import torch.distributed as dist

    from crossdiff_core.train.config import PretrainConfig
    from crossdiff_core.train.pretrain import train_branch

    config = PretrainConfig(branch="p2m", **json.loads(request.read_text()))
    seconds: list[float] = []
    train_branch(config, on_step=lambda step, metrics: seconds.append(metrics["step_s"]),
                 resume=False)
    if not dist.is_initialized() or dist.get_rank() == 0:
        result.write_text(json.dumps({"step_s": seconds}))
    if dist.is_initialized():
        dist.destroy_process_group()


def pretrain_scaling(processes: tuple[int, ...] = (1, 2), steps: int = 12, device: str = "cpu",
                     settings: dict | None = None, threads: int | None = None) -> list[dict]:
    """Train P2M under torchrun with each number of ``processes`` (same global batch), each
    process on ``threads`` intra-op threads (None: an equal share of the cores, as the pipeline
    does); returns one row per number: processes, threads, samples_per_s, step_s, wall_s (launch
    included), speedup (over the first row)."""
    from crossdiff_core.train.launch import torchrun_command, worker_environment

    settings = {**SMALL, **(settings or {})}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-scaling-") as folder:
        root = Path(folder)
        scenes = _scene(root / "zarr")
        for count in processes:
            request, result = root / f"request-{count}.json", root / f"result-{count}.json"
            request.write_text(json.dumps({
                **settings, "scenes": [scenes], "out": str(root / f"out-{count}"),
                "steps": steps + WARM_UP, "checkpoint_every": steps + WARM_UP, "device": device,
            }))
            env = worker_environment(count)
            if threads is not None:
                env["OMP_NUM_THREADS"] = str(threads)
            started = time.perf_counter()
            subprocess.run(torchrun_command("benchmarks.pretrain_scaling", count,
                                            ["--worker", str(request), str(result)]),
                           env=env, check=True, cwd=Path(__file__).resolve().parents[1])
            wall = time.perf_counter() - started
            step_s = statistics.mean(json.loads(result.read_text())["step_s"][WARM_UP:])
            rows.append({"processes": count, "threads": int(env["OMP_NUM_THREADS"]),
                         "samples_per_s": settings["batch_size"] / step_s, "step_s": step_s,
                         "wall_s": wall})
    for row in rows:
        row["speedup"] = row["samples_per_s"] / rows[0]["samples_per_s"]
    return rows


def determinism_cost(steps: int = 12, repeats: int = 2, settings: dict | None = None,
                     threads: int | None = None) -> dict:
    """Seconds to train both branches one after the other (deterministic) and at once in two
    threads (not), best of ``repeats`` interleaved runs each, on ``threads`` intra-op threads
    (None: torch's default)."""
    import torch

    from crossdiff_core.config import PretrainParams
    from crossdiff_core.train.pretrain import train_branch

    settings = {**SMALL, **(settings or {})}
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    timings: dict[str, list[float]] = {"one after the other": [], "at once (threads)": []}
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-determinism-") as folder:
        root = Path(folder)
        scenes = _scene(root / "zarr")
        for repeat in range(repeats):
            for mode in timings:
                config = PretrainParams(scenes=[scenes], out=str(root / f"{repeat}-{len(mode)}"),
                                        steps=steps, checkpoint_every=steps, device="cpu",
                                        deterministic=mode == "one after the other", **settings)
                branches = config.branch_configs()
                started = time.perf_counter()
                if config.deterministic:
                    for branch in branches:
                        train_branch(branch, resume=False)
                else:
                    threads = [threading.Thread(target=train_branch, args=(branch,),
                                                kwargs={"resume": False}) for branch in branches]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                timings[mode].append(time.perf_counter() - started)
    torch.set_num_threads(before)
    return {mode: min(seconds) for mode, seconds in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, nargs="+", default=[0],
                        help="intra-op threads per process, one table row each (0: an equal "
                             "share of the cores, as the pipeline sets)")
    parser.add_argument("--skip-determinism", action="store_true")
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(*args.worker)
        return
    print(f"machine: {os.cpu_count()} cores; P2M, PAN patch {SMALL['pan_patch']}, global batch "
          f"{SMALL['batch_size']}, UNet {SMALL['channels']}, {args.steps} timed steps")
    rows = [row for threads in args.threads
            for row in pretrain_scaling(tuple(args.processes), args.steps, args.device,
                                        threads=threads or None)]
    print(f"\n{'processes':>9s} {'threads':>8s} {'samples/s':>10s} {'s/step':>8s} "
          f"{'x first':>8s} {'wall s':>7s}")
    for row in rows:
        print(f"{row['processes']:9d} {row['threads']:8d} {row['samples_per_s']:10.1f} "
              f"{row['step_s']:8.3f} {row['samples_per_s'] / rows[0]['samples_per_s']:8.2f} "
              f"{row['wall_s']:7.1f}")
    if not args.skip_determinism and args.device == "cpu":
        print(f"\n{'both branches, this process':30s} {'threads':>8s} {'seconds':>8s} "
              f"{'x deterministic':>16s}")
        for threads in args.threads:
            cost = determinism_cost(args.steps, threads=threads or None)
            base = cost["one after the other"]
            for mode, seconds in cost.items():
                print(f"{mode:30s} {threads or 'default':>8} {seconds:8.1f} "
                      f"{seconds / base:16.2f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
