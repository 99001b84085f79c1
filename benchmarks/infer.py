"""Whole-scene inference benchmark, everything measured side by side in one run.

1. Time of CrossDiff (default-size encoders and head, random frozen weights: speed does not
   depend on training) over MTF-GLP-HPM on the same synthetic scene, both through the same
   tiled inference.
2. The model's arithmetic rate (FLOPs of encoders + head counted with torch's FlopCounterMode,
   divided by the measured time) over the rate of a plain 3x3 convolution of the same width.
3. Peak memory (max RSS of a child process) when pansharpening a PAN of --big pixels per side.

    python benchmarks/infer.py [--pan 1024] [--big 8192]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from crossdiff_core.infer import BaselineFuser, ModelFuser, fuse_tiled
from crossdiff_core.nets.extractor import random_extractor
from crossdiff_core.nets.fusion import FusionHead
from crossdiff_core.pansharpener import Pansharpener
from crossdiff_core.synthetic import synthetic_pair

BANDS = ["blue", "green", "red", "nir"]


def default_model() -> Pansharpener:
    extractor = random_extractor(BANDS, 4)
    head = FusionHead(4, extractor.feature_channels)
    return Pansharpener(
        extractor,
        head,
        {"sensor": "QuickBird", "ratio": 4, "band_names": BANDS, "scale_max": 2047.0},
    ).eval()


def timed(function, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def flop_rates(model: Pansharpener, side: int = 256) -> tuple[float, float]:
    ms_up = torch.randn(1, 4, side, side)
    pan = torch.randn(1, 1, side, side)
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model(ms_up, pan)
        model_flops = counter.get_total_flops()
        model_seconds = timed(lambda: model(ms_up, pan), 3)
        width = model.extractor.feature_channels[0]
        conv = torch.nn.Conv2d(width, width, 3, padding=1)
        features = torch.randn(1, width, side, side)
        counter = FlopCounterMode(display=False)
        with counter:
            conv(features)
        conv_flops = counter.get_total_flops()
        conv_seconds = timed(lambda: conv(features), 5)
    return model_flops / model_seconds, conv_flops / conv_seconds


def child_peak_memory(side: int) -> None:
    """Run in a child: write a synthetic store of PAN side x side, pansharpen it, print RSS."""
    from crossdiff_core.infer import pansharpen_scene
    from crossdiff_core.io.store import open_scene
    from crossdiff_core.synthetic import write_synthetic_store

    with tempfile.TemporaryDirectory() as folder:
        store = write_synthetic_store(
            Path(folder) / "zarr", "QuickBird", ms_shape=(side // 4, side // 4), seed=0
        )
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scene = open_scene(store)
        model = default_model()
        start = time.perf_counter()
        pansharpen_scene(
            scene,
            ModelFuser(model),
            Path(folder) / "out.tif",
            tile=1024,
            batch_size=1,
            progress=False,
        )
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"{before / 2**20:.3f} {peak / 2**20:.3f} {seconds:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pan", type=int, default=1024, help="PAN side of the timing scene")
    parser.add_argument("--big", type=int, default=8192, help="PAN side of the memory scene")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_peak_memory(args.child)
        return
    torch.manual_seed(0)
    from crossdiff_core.baselines import get_method

    pan, ms = synthetic_pair("QuickBird", ms_shape=(args.pan // 4, args.pan // 4), seed=0)
    model = default_model()
    crossdiff = timed(lambda: fuse_tiled(ms, pan, ModelFuser(model), tile=1024, batch_size=1))
    baseline = BaselineFuser(get_method("mtf_glp_hpm"), 4, 4, "QuickBird")
    hpm = timed(lambda: fuse_tiled(ms, pan, baseline, tile=1024, batch_size=1))
    model_rate, conv_rate = flop_rates(model)
    print(f"threads: {torch.get_num_threads()}, PAN {args.pan} x {args.pan}")
    print(f"{'measure':44s} {'value':>12s}")
    print(f"{'CrossDiff whole scene (s)':44s} {crossdiff:12.2f}")
    print(f"{'MTF-GLP-HPM whole scene (s)':44s} {hpm:12.2f}")
    print(f"{'time ratio CrossDiff / MTF-GLP-HPM (<= 10)':44s} {crossdiff / hpm:12.2f}")
    print(f"{'model GFLOP/s':44s} {model_rate / 1e9:12.2f}")
    print(f"{'plain 3x3 conv GFLOP/s':44s} {conv_rate / 1e9:12.2f}")
    print(f"{'FLOP/s ratio model / conv (>= 0.5)':44s} {model_rate / conv_rate:12.2f}")
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(args.big)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    print(f"{f'peak RSS, PAN {args.big} x {args.big} (GiB, < 2)':44s} {float(output[1]):12.2f}")
    print(f"{'  of which before inference (GiB)':44s} {float(output[0]):12.2f}")
    print(f"{'  whole-scene time (s)':44s} {float(output[2]):12.2f}")


if __name__ == "__main__":
    main()
