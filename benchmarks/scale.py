"""Scaling on a dask.distributed cluster: ingest and pansharpen throughput with 1 and 2 workers
(PAN megapixels per second), peak memory per worker, and pretraining samples/s under torchrun.

The scene is the real WorldView-3 delivery (``../shared/data/worldview3``, or
``$CROSSDIFF_SHARED/data/worldview3``) ingested once, its aligned core (PAN 572 x 576, 8-band MS
143 x 144, float32) mirrored into a ``--size`` x ``--size`` PAN GeoTIFF pair (tiled, written in
strips, under a temporary folder removed at the end; never commit it). Then, for each number of
workers, on a fresh ``LocalCluster`` of that many one-thread workers with ``--memory-limit``
each (started before the clock starts):

- ingest: ``ingest_source`` of the pair with the cluster's address as scheduler;
- pansharpen: ``pansharpen_scene_distributed`` of that store with ``--method`` (a classical
  method by default: a model's windows take hours on 2 CPU cores at 16384^2) into ``--format``;
  the time of the workers' part (every output chunk fused) and of the whole call (the output
  written by the caller from the workers' rows);
- peak resident memory of each worker process (psutil, sampled every 0.1 s; a worker restarted
  by its nanny is followed), beside the limit.

The outputs of every run are compared with the single-process ``pansharpen_scene`` output (and
the stores of 1 and 2 workers chunk file by chunk file): "equal" is bit for bit. The
single-process run is timed too. Finally ``benchmarks/pretrain_scaling.py``'s table (P2M under
``torchrun`` with 1 and 2 processes) when that module is present.

    python benchmarks/scale.py                          # PAN 16384^2, the full check
    python benchmarks/scale.py --size 4096 --skip-pretrain
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("CROSSDIFF_SHARED", ROOT.parent / "shared"))
STRIP = 1024  # PAN rows written at a time when building the big pair


def _mirror(index: np.ndarray, length: int) -> np.ndarray:
    period = np.mod(index, 2 * length)
    return np.where(period < length, period, 2 * length - 1 - period)


def build_pair(size: int, folder: Path) -> tuple[Path, Path]:
    """A ``size`` x ``size`` WV3 PAN + MS GeoTIFF pair mirrored from the real scene's core."""
    import rasterio
    from affine import Affine

    from crossdiff_core.ingest import ingest_source
    from crossdiff_core.io.store import open_scene

    core = ingest_source((str(SHARED / "data/worldview3/pan.tif"),
                          str(SHARED / "data/worldview3/mul.tif")), folder / "core",
                         sensor="WV3").store
    scene = open_scene(core)
    pan, ms = scene.pan.values, scene.ms.values
    ratio = scene.ratio
    transform = scene.pan.rio.transform()
    crs = scene.pan.rio.crs
    if size % ratio:
        raise SystemExit(f"--size must be a multiple of the ratio {ratio}")
    profile = {"driver": "GTiff", "dtype": pan.dtype.name, "crs": crs, "tiled": True,
               "blockxsize": 512, "blockysize": 512, "BIGTIFF": "YES", "nodata": None}
    pan_path, ms_path = folder / "big_pan.tif", folder / "big_mul.tif"
    cols = _mirror(np.arange(size), pan.shape[1])
    with rasterio.open(pan_path, "w", height=size, width=size, count=1,
                       transform=transform, **profile) as out:
        for first in range(0, size, STRIP):
            rows = _mirror(np.arange(first, min(first + STRIP, size)), pan.shape[0])
            out.write(pan[np.ix_(rows, cols)], 1,
                      window=rasterio.windows.Window(0, first, size, len(rows)))
    small = size // ratio
    ms_transform = transform * Affine.scale(ratio)
    ms_cols = _mirror(np.arange(small), ms.shape[2])
    with rasterio.open(ms_path, "w", height=small, width=small, count=ms.shape[0],
                       transform=ms_transform, **profile) as out:
        for first in range(0, small, STRIP):
            rows = _mirror(np.arange(first, min(first + STRIP, small)), ms.shape[1])
            out.write(ms[:, rows][:, :, ms_cols],
                      window=rasterio.windows.Window(0, first, small, len(rows)))
    shutil.rmtree(folder / "core")
    return pan_path, ms_path


class PeakMemory:
    """Peak RSS of each worker process of ``client``, sampled in a thread while in the block."""

    def __init__(self, client, every: float = 0.1) -> None:
        self.client, self.every = client, every
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _pids(self) -> dict[str, int]:
        try:
            return self.client.run(os.getpid, wait=True)
        except Exception:  # a worker being restarted
            return {}

    def _run(self) -> None:
        import psutil

        pids, last = self._pids(), time.monotonic()
        while not self._stop.wait(self.every):
            if time.monotonic() - last > 2.0:  # follow restarted workers
                pids, last = self._pids() or pids, time.monotonic()
            for address, pid in pids.items():
                try:
                    rss = psutil.Process(pid).memory_info().rss
                except psutil.Error:
                    continue
                self.peaks[address] = max(self.peaks.get(address, 0), rss)


def _chunk_digests(store: Path) -> dict[str, str]:
    return {p.relative_to(store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file() and "/c/" in p.as_posix()}


def _same_output(one: Path, other: Path) -> bool:
    """Bit for bit, one row of chunks at a time (Zarr) or one block row (COG)."""
    if one.suffix == ".zarr":
        import zarr

        a, b = zarr.open_group(str(one))["fused"], zarr.open_group(str(other))["fused"]
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        step = a.chunks[1]
        return all(np.array_equal(a[:, i : i + step], b[:, i : i + step])
                   for i in range(0, a.shape[1], step))
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(one) as a, rasterio.open(other) as b:
        return a.shape == b.shape and all(
            np.array_equal(a.read(window=Window(0, i, a.width, min(512, a.height - i))),
                           b.read(window=Window(0, i, a.width, min(512, a.height - i))))
            for i in range(0, a.height, 512))


def run(size: int, workers: list[int], memory_limit: str, method: str, fmt: str,
        work: Path) -> list[dict]:
    from distributed import Client

    from crossdiff_core.infer import baseline_fuser, pansharpen_scene
    from crossdiff_core.infer.distributed import pansharpen_scene_distributed
    from crossdiff_core.ingest import ingest_source
    from crossdiff_core.io.scheduler import local_cluster
    from crossdiff_core.io.store import open_scene

    started = time.perf_counter()
    pan, ms = build_pair(size, work)
    print(f"built the {size}^2 WV3 pair in {time.perf_counter() - started:.0f} s", flush=True)
    megapixels = size * size / 1e6
    suffix = ".zarr" if fmt == "zarr" else ".tif"
    rows, stores = [], {}
    for count in workers:
        with local_cluster(count, memory_limit) as cluster, Client(cluster) as client:
            client.wait_for_workers(count)
            client.run(lambda: __import__("crossdiff_core.infer.distributed"))  # warm imports
            with PeakMemory(client) as ingest_memory:
                started = time.perf_counter()
                store = ingest_source((str(pan), str(ms)), work / f"zarr-{count}", sensor="WV3",
                                      scheduler=cluster.scheduler_address).store
                ingest_s = time.perf_counter() - started
            stores[count] = store
            marks: list[float] = []

            def mark(done: int, total: int, marks: list[float] = marks) -> None:
                marks.append(time.perf_counter())

            with PeakMemory(client) as fuse_memory:
                started = time.perf_counter()
                out = pansharpen_scene_distributed(
                    store, method, work / f"fused-{count}{suffix}", client, fmt=fmt,
                    on_block_row=mark)
                total_s = time.perf_counter() - started
            workers_s = marks[-1] - started
            limit = cluster.workers[next(iter(cluster.workers))].memory_manager.memory_limit \
                if hasattr(cluster.workers[next(iter(cluster.workers))], "memory_manager") \
                else None
            rows.append({
                "workers": count, "ingest_s": ingest_s, "ingest_mpx_s": megapixels / ingest_s,
                "ingest_peak": max(ingest_memory.peaks.values(), default=0),
                "workers_s": workers_s, "fuse_s": total_s, "fuse_mpx_s": megapixels / total_s,
                "workers_mpx_s": megapixels / workers_s,
                "fuse_peak": max(fuse_memory.peaks.values(), default=0),
                "peaks": {**fuse_memory.peaks}, "limit": limit, "out": out,
            })
            print(rows[-1], flush=True)
    # The single process (the reference output), timed.
    scene = open_scene(stores[workers[0]])
    started = time.perf_counter()
    single = pansharpen_scene(scene, baseline_fuser(method, scene), work / f"single{suffix}",
                              fmt=fmt, progress=False)
    single_s = time.perf_counter() - started
    for row in rows:
        row["equal"] = _same_output(single, row["out"])
    reference = _chunk_digests(stores[workers[0]])
    stores_equal = all(_chunk_digests(stores[c]) == reference for c in workers[1:])
    print(f"\nPAN {size} x {size} ({megapixels:.0f} MPx), WV3 8 bands float32, {method}, "
          f"{fmt}; workers: 1 thread, memory limit {memory_limit} each; {os.cpu_count()} cores")
    print(f"single process pansharpen: {single_s:.1f} s ({megapixels / single_s:.2f} MPx/s)")
    print("| workers | ingest MPx/s | pansharpen MPx/s (workers' part) | pansharpen MPx/s "
          "(whole call) | peak RSS per worker, ingest / pansharpen (MiB) | output = single |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['workers']} | {row['ingest_mpx_s']:.2f} ({row['ingest_s']:.0f} s) | "
              f"{row['workers_mpx_s']:.2f} ({row['workers_s']:.0f} s) | "
              f"{row['fuse_mpx_s']:.2f} ({row['fuse_s']:.0f} s) | "
              f"{row['ingest_peak'] / 2**20:.0f} / {row['fuse_peak'] / 2**20:.0f} | "
              f"{'yes' if row['equal'] else 'NO'} |")
    print(f"stores of {workers} workers equal chunk file by chunk file: "
          f"{'yes' if stores_equal else 'NO'}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384, help="PAN edge in pixels")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--memory-limit", default="1GiB", help="per worker")
    parser.add_argument("--method", default="mtf_glp_hpm", help="baseline name")
    parser.add_argument("--format", default="zarr", choices=["zarr", "cog"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()),
                        help="folder for the temporary scene and outputs (removed)")
    parser.add_argument("--skip-pretrain", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crossdiff-scale-", dir=args.work))
    try:
        run(args.size, args.workers, args.memory_limit, args.method, args.format, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.skip_pretrain:
        return
    try:
        from benchmarks.pretrain_scaling import pretrain_scaling
    except ImportError:
        print("\npretraining: benchmarks/pretrain_scaling.py not found")
        return
    print("\n| torchrun processes | pretraining samples/s | speedup |")
    print("| --- | --- | --- |")
    for row in pretrain_scaling((1, 2)):
        print(f"| {row['processes']} | {row['samples_per_s']:.1f} | "
              f"{row.get('speedup', float('nan')):.2f} |")


if __name__ == "__main__":
    main()
