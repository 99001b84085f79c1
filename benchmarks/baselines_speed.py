"""Speed and whole-scene memory of every classical baseline, measured side by side in one run.

1. Time of each method of ``crossdiff_core.baselines.METHODS`` fusing, in memory and in one
   shot, a generated 8-band (WorldView-3) scene of PAN ``--pan`` x ``--pan``, beside MTF-GLP-HPM
   timed in the same rounds. After one untimed call of each on a small scene (imports, first-call
   set-up), each of ``--repeats`` rounds times every method once, MTF-GLP-HPM first, the others in
   a rotating order (so load from other processes falls on every method alike); the table gives
   the median seconds and the median over rounds of the method's time over MTF-GLP-HPM's in that
   round.
2. Peak memory (VmHWM: the process's own peak resident set) of a child process that only runs
   ``crossdiff pansharpen --model <name>``'s work (``load_fuser`` + ``pansharpen_scene``, default
   tiling, COG output) on a WorldView-3 store of PAN ``--big`` x ``--big`` written beforehand by
   another child, one child per method of ``--big-methods``; printed beside the 2 GiB target.
   The default methods are those that estimate coefficients over the whole scene (GSA, BDSD,
   BDSD-PC, PRACS, MTF-GLP-FS, AWLP) and MTF-GLP-HPM. The store mirrors a 2048 x 2048 generated
   scene to the requested size (generating 8192 x 8192 textures alone takes GiBs and minutes).

    python benchmarks/baselines_speed.py                          # PAN 2048, big 8192, 3 rounds
    python benchmarks/baselines_speed.py --pan 512 --big 1024     # quick check (about a minute)
    python benchmarks/baselines_speed.py --big 0 --repeats 5      # speed table only
    python benchmarks/baselines_speed.py --pan 0 --big-methods gsa,pracs   # memory only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SENSOR = "WorldView-3"
REFERENCE = "mtf_glp_hpm"
BIG_METHODS = "gsa,bdsd,bdsd_pc,pracs,mtf_glp_fs,awlp,mtf_glp_hpm"
TARGET_GIB = 2.0
BASE_SIDE = 2048  # PAN side of the generated scene the memory store mirrors


def peak_gib() -> float:
    """This process's peak resident set (GiB).

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork + exec.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20  # KiB -> GiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def time_methods(names: list[str], side: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds and median ratio to MTF-GLP-HPM (same round) of each method."""
    from crossdiff_core.baselines import METHODS
    from crossdiff_core.sensors import get_sensor
    from crossdiff_core.synthetic import synthetic_pair

    ratio = get_sensor(SENSOR).ratio
    pan, ms = synthetic_pair(SENSOR, ms_shape=(side // ratio, side // ratio), seed=0)
    ms, pan = ms.astype(np.float64), pan.astype(np.float64)
    small_pan, small_ms = synthetic_pair(SENSOR, ms_shape=(64, 64), seed=1)
    for name in {REFERENCE, *names}:  # imports and first-call set-up stay out of the timings
        METHODS[name](small_ms.astype(np.float64), small_pan.astype(np.float64), ratio, SENSOR)
    others = [name for name in names if name != REFERENCE]
    seconds: dict[str, list[float]] = {name: [] for name in [REFERENCE, *others]}
    ratios: dict[str, list[float]] = {name: [] for name in seconds}
    for round_index in range(repeats):
        shift = round_index % max(len(others), 1)
        order = [REFERENCE, *others[shift:], *others[:shift]]
        times = {}
        for name in order:
            start = time.perf_counter()
            METHODS[name](ms, pan, ratio, SENSOR)
            times[name] = time.perf_counter() - start
        for name, value in times.items():
            seconds[name].append(value)
            ratios[name].append(value / times[REFERENCE])
        print(f"  round {round_index + 1}/{repeats}: "
              + ", ".join(f"{name} {times[name]:.2f}" for name in order), flush=True)
    return {name: {"seconds": statistics.median(seconds[name]),
                   "ratio": statistics.median(ratios[name])} for name in seconds}


def write_store_child(folder: str, side: int) -> None:
    """Child 1: write a WorldView-3 store of PAN side x side (mirror-tiled), print its path."""
    import xarray as xr
    from affine import Affine

    from crossdiff_core.io.geo import attach_grid, scaled_transform
    from crossdiff_core.io.store import scene_attributes, write_scene_store
    from crossdiff_core.sensors import get_sensor
    from crossdiff_core.synthetic import SYNTHETIC_CRS, synthetic_pair

    sensor = get_sensor(SENSOR)
    ratio = sensor.ratio
    base = min(side, BASE_SIDE)
    pan, ms = synthetic_pair(sensor, (base // ratio, base // ratio), seed=0)
    # Mirroring keeps the grids nested (an MS pixel's PAN block mirrors onto another's) and the
    # texture continuous across the copies' borders.
    pan = np.pad(pan, ((0, side - base), (0, side - base)), mode="symmetric")
    extra = (side - base) // ratio
    ms = np.pad(ms, ((0, 0), (0, extra), (0, extra)), mode="symmetric")
    transform = Affine(0.5, 0.0, 452_000.0, 0.0, -0.5, 3_400_000.0)
    pan = attach_grid(xr.DataArray(pan, dims=("y", "x")), transform, SYNTHETIC_CRS)
    ms = attach_grid(
        xr.DataArray(ms, dims=("band", "y", "x"), coords={"band": list(sensor.bands)}),
        scaled_transform(transform, ratio), SYNTHETIC_CRS)
    attrs = scene_attributes(
        sensor, scene_id=f"mirrored-{side}", scale_max=float(sensor.max_dn), nodata=None,
        crs=pan.rio.crs.to_wkt(), source_name="synthetic", source_sha256="0" * 64,
        alignment={"rule": "none", "reason": "generated on nested grids"})
    print(write_scene_store(pan, ms, attrs, Path(folder) / "zarr"))


def pansharpen_child(store: str, name: str, out: str) -> None:
    """Child 2: what `crossdiff pansharpen --model <name>` runs, into a COG; print peak and time."""
    from crossdiff_core.infer import load_fuser, pansharpen_scene
    from crossdiff_core.io.store import open_scene

    scene = open_scene(store)
    fuser = load_fuser(name, scene, "cpu")
    before = peak_gib()
    start = time.perf_counter()
    pansharpen_scene(scene, fuser, out, progress=False)
    print(json.dumps({"peak": peak_gib(), "before": before,
                      "seconds": time.perf_counter() - start}))


def run_child(*arguments: str) -> str:
    result = subprocess.run([sys.executable, __file__, *arguments], capture_output=True,
                            text=True, check=False)
    if result.returncode:
        sys.exit(f"benchmark child {' '.join(arguments[:2])} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pan", type=int, default=2048,
                        help="PAN side of the timing scene (0 skips the timing)")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds (medians)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated methods to time (default: all of METHODS)")
    parser.add_argument("--big", type=int, default=8192,
                        help="PAN side of the memory scene (0 skips the memory runs)")
    parser.add_argument("--big-methods", default=BIG_METHODS,
                        help="comma-separated methods whose whole-scene peak memory is measured")
    parser.add_argument("--write-store", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--pansharpen", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_store:
        write_store_child(args.write_store[0], int(args.write_store[1]))
        return
    if args.pansharpen:
        pansharpen_child(*args.pansharpen)
        return

    from crossdiff_core.baselines import METHODS

    names = list(METHODS) if args.methods is None else args.methods.split(",")
    big_methods = [name for name in args.big_methods.split(",") if name]
    unknown = sorted(set(names + big_methods) - set(METHODS))
    if unknown:
        sys.exit(f"unknown methods {unknown}: choose from {', '.join(METHODS)}")
    for side in (args.pan, args.big):
        if side % 4:
            sys.exit(f"scene sides must be multiples of the ratio 4, got {side}")
    print(f"usable CPUs {len(os.sched_getaffinity(0))}, load average "
          f"{os.getloadavg()[0]:.1f}, numpy {np.__version__}")

    if args.pan:
        print(f"\n## Time, {SENSOR} PAN {args.pan} x {args.pan}, in memory, "
              f"medians of {args.repeats} rounds")
        timings = time_methods(names, args.pan, args.repeats)
        print(f"\n{'method':16s} {'seconds':>9s} {'/ MTF-GLP-HPM':>14s}")
        for name, timing in sorted(timings.items(), key=lambda item: item[1]["seconds"]):
            print(f"{name:16s} {timing['seconds']:9.2f} {timing['ratio']:14.2f}")

    if args.big and big_methods:
        print(f"\n## Peak memory, {SENSOR} PAN {args.big} x {args.big} store to COG "
              "(crossdiff pansharpen --model <name>)")
        with tempfile.TemporaryDirectory(prefix="baselines-speed-") as folder:
            store = run_child("--write-store", folder, str(args.big))
            print(f"\n{'method':16s} {'peak GiB':>9s} {'target':>7s} {'ok':>4s} {'seconds':>9s}")
            for name in big_methods:
                out = Path(folder) / f"{name}.tif"
                result = json.loads(run_child("--pansharpen", store, name, str(out)))
                out.unlink(missing_ok=True)
                verdict = "yes" if result["peak"] < TARGET_GIB else "NO"
                print(f"{name:16s} {result['peak']:9.2f} {f'< {TARGET_GIB:g}':>7s} "
                      f"{verdict:>4s} {result['seconds']:9.1f}", flush=True)


if __name__ == "__main__":
    main()
