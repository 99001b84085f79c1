"""Whole-scene inference benchmark, everything measured side by side in one run.

1. Time of CrossDiff (default-size encoders and head, random frozen weights: speed does not
   depend on training) over MTF-GLP-HPM on the same synthetic scene, both through the same
   tiled inference (``fuse_tiled``), best of ``--repeats`` runs each, interleaved.
2. The model's arithmetic rate over a plain 3x3 convolution's. Both FLOP counts come from
   torch's FlopCounterMode the same way (2 FLOPs per multiply-add, convolutions and matmuls
   only); the model runs one window of ``--tile`` pixels (encoders + head, as inference runs it),
   the convolution has the encoders' finest width on the same pixels, in its fastest layout.
   Runs alternate so that load from other processes hits both alike.
3. Peak memory (max RSS) of a child process that only pansharpens a store of PAN ``--big-rows``
   x ``--big`` (written beforehand by another child) into a COG, at the same tile and batch size.
   Inference holds one strip of windows, so the peak depends on the width, not the height: the
   peak after a quarter of the windows is printed beside the final one to show it.

    python benchmarks/infer.py [--pan 1024] [--tile 640] [--batch-size 1] [--big 8192]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from crossdiff_core.config import PansharpenParams
from crossdiff_core.infer import BaselineFuser, ModelFuser, fuse_tiled
from crossdiff_core.nets.extractor import random_extractor
from crossdiff_core.nets.fusion import FusionHead
from crossdiff_core.pansharpener import Pansharpener
from crossdiff_core.synthetic import synthetic_pair

BANDS = ["blue", "green", "red", "nir"]
SENSOR = "QuickBird"
RATIO = 4


def default_model() -> Pansharpener:
    extractor = random_extractor(BANDS, RATIO)
    head = FusionHead(len(BANDS), extractor.feature_channels)
    return Pansharpener(
        extractor,
        head,
        {"sensor": SENSOR, "ratio": RATIO, "band_names": BANDS, "scale_max": 2047.0},
    ).eval()


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def interleaved_best(functions: dict[str, object], repeats: int) -> dict[str, float]:
    """Best time of each function over ``repeats`` rounds, one call of each per round."""
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            best[name] = min(best[name], _seconds(function))
    return best


def count_flops(function) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        function()
    return counter.get_total_flops()


def flop_rates(model: Pansharpener, side: int, repeats: int) -> dict[str, float]:
    """FLOPs and seconds of one model window and of plain 3x3 convolutions on side x side."""
    generator = torch.Generator().manual_seed(0)
    ms_up = torch.randn(1, len(BANDS), side, side, generator=generator)
    pan = torch.randn(1, 1, side, side, generator=generator)
    width = model.extractor.feature_channels[0]
    conv = torch.nn.Conv2d(width, width, 3, padding=1).eval()
    plain = torch.randn(1, width, side, side, generator=generator)
    nhwc = plain.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        functions = {
            "model": lambda: model(ms_up, pan),
            "conv NCHW": lambda: conv(plain),
            "conv NHWC": lambda: conv(nhwc),
        }
        for function in functions.values():
            function()  # first calls build oneDNN primitives
        flops = {name: count_flops(function) for name, function in functions.items()}
        seconds = interleaved_best(functions, repeats)
    return {f"{name} {what}": value for name in functions
            for what, value in (("flops", flops[name]), ("seconds", seconds[name]))}


def write_store_child(folder: str, rows: int, cols: int) -> None:
    """Child 1: write the synthetic store of PAN rows x cols, print its path."""
    from crossdiff_core.synthetic import write_synthetic_store

    store = write_synthetic_store(
        Path(folder) / "zarr", SENSOR, ms_shape=(rows // RATIO, cols // RATIO), seed=0
    )
    print(store)


def pansharpen_child(store: str, out: str, tile: int, batch_size: int) -> None:
    """Child 2: pansharpen ``store`` into a COG; print peak RSS (GiB) before/after and time."""
    from crossdiff_core.infer import pansharpen_scene
    from crossdiff_core.io.store import open_scene

    def peak() -> float:
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork + exec.
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # KiB -> GiB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    model = default_model()
    scene = open_scene(store)
    before = peak()
    windows: list[float] = []

    class Recording(ModelFuser):
        def fuse_windows(self, ms, pan, origins):
            fused = super().fuse_windows(ms, pan, origins)
            windows.append(peak())
            return fused

    start = time.perf_counter()
    pansharpen_scene(scene, Recording(model), out, tile=tile, batch_size=batch_size,
                     progress=False)
    seconds = time.perf_counter() - start
    quarter = windows[max(len(windows) // 4 - 1, 0)]
    print(json.dumps({"before": before, "quarter": quarter, "windows": windows[-1],
                      "peak": peak(), "seconds": seconds, "batches": len(windows)}))


def run_child(*arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, __file__, *arguments], capture_output=True, text=True, check=False
    )
    if result.returncode:
        sys.exit(f"benchmark child {arguments[0]} failed:\n{result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


def row(name: str, value: float, digits: int = 2) -> None:
    print(f"{name:52s} {value:12.{digits}f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pan", type=int, default=1024, help="PAN side of the timing scene")
    parser.add_argument("--tile", type=int, default=PansharpenParams.tile,
                        help="window side (PAN px)")
    parser.add_argument("--batch-size", type=int, default=PansharpenParams.batch_size,
                        help="windows per forward")
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the best is kept")
    parser.add_argument("--big", type=int, default=8192,
                        help="PAN columns of the memory scene (0 skips it)")
    parser.add_argument("--big-rows", type=int, default=None,
                        help="PAN rows of the memory scene (default: --big)")
    parser.add_argument("--write-store", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--pansharpen", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_store:
        write_store_child(args.write_store[0], int(args.write_store[1]), int(args.write_store[2]))
        return
    if args.pansharpen:
        pansharpen_child(*args.pansharpen, args.tile, args.batch_size)
        return

    from crossdiff_core.baselines import get_method

    torch.manual_seed(0)
    pan, ms = synthetic_pair(SENSOR, ms_shape=(args.pan // RATIO, args.pan // RATIO), seed=0)
    model = default_model()
    tiling = {"tile": args.tile, "batch_size": args.batch_size}
    baseline = BaselineFuser(get_method("mtf_glp_hpm"), RATIO, len(BANDS), SENSOR)
    scene_times = interleaved_best(
        {
            "crossdiff": lambda: fuse_tiled(ms, pan, ModelFuser(model), **tiling),
            "hpm": lambda: fuse_tiled(ms, pan, baseline, **tiling),
        },
        args.repeats,
    )
    rates = flop_rates(model, args.tile, max(args.repeats, 3))
    model_rate = rates["model flops"] / rates["model seconds"]
    conv_rate = max(rates[f"conv {layout} flops"] / rates[f"conv {layout} seconds"]
                    for layout in ("NCHW", "NHWC"))

    print(f"torch threads {torch.get_num_threads()}, usable CPUs {len(os.sched_getaffinity(0))}, "
          f"load average {os.getloadavg()[0]:.1f}; tile {args.tile}, batch {args.batch_size}")
    print(f"{'measure':52s} {'value':>12s}")
    row(f"CrossDiff, PAN {args.pan} x {args.pan} (s)", scene_times["crossdiff"])
    row(f"MTF-GLP-HPM, PAN {args.pan} x {args.pan} (s)", scene_times["hpm"])
    row("time ratio CrossDiff / MTF-GLP-HPM (target <= 10)",
        scene_times["crossdiff"] / scene_times["hpm"])
    row(f"model GFLOP per {args.tile} x {args.tile} window", rates["model flops"] / 1e9)
    row("model GFLOP/s", model_rate / 1e9)
    for layout in ("NCHW", "NHWC"):
        rate = rates[f"conv {layout} flops"] / rates[f"conv {layout} seconds"]
        row(f"plain 3x3 conv GFLOP/s, {layout}", rate / 1e9)
    row("FLOP/s ratio model / best conv (target >= 0.5)", model_rate / conv_rate)
    if not args.big:
        return
    big_rows = args.big_rows or args.big
    with tempfile.TemporaryDirectory() as folder:
        store = run_child("--write-store", folder, str(big_rows), str(args.big))
        memory = json.loads(run_child(
            "--pansharpen", store, str(Path(folder) / "out.tif"),
            "--tile", str(args.tile), "--batch-size", str(args.batch_size),
        ))
    row(f"peak RSS, PAN {big_rows} x {args.big} to COG (GiB, < 2)", memory["peak"])
    row("  peak RSS after a quarter of the windows (GiB)", memory["quarter"])
    row("  peak RSS after the last window, before the COG (GiB)", memory["windows"])
    row("  RSS with the model loaded, before inference (GiB)", memory["before"])
    row("  whole-scene time (s)", memory["seconds"], 1)


if __name__ == "__main__":
    main()
