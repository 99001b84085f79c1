"""Ingestion speed and memory against merely reading the same rasters with rasterio.

Generates a PAN (N x N uint16, tiled GeoTIFF) and a 4-band MS (N/4 x N/4) in a temporary folder,
then, for each size, measures side by side in this one run, interleaved and repeated (medians):

- read: every pixel of both rasters read once with rasterio, in the windows the ingest reads (one
  PAN chunk, and the MS window under it with all bands), under the same GDAL block-cache cap as
  the ingest; on one thread ("read 1t", the plain read) and on as many threads as the ingest's
  dask scheduler uses ("read Nt");
- ingest: ``crossdiff_core.ingest.ingest_source`` on the pair (threads scheduler, fresh output
  folder, so the source is never skipped as already ingested), in a fresh subprocess that also
  reports its peak resident memory (max RSS, imports included). The one-off import of
  dask.distributed that the first dask compute of any process makes is timed apart ("import");
  a fresh ``crossdiff ingest`` process pays it once, a pipeline worker once for all scenes;
- with ``--before REV``, the same ingest with the package as committed at git revision REV
  (extracted read-only with ``git archive``), to compare before and after in one run.

    python benchmarks/ingest.py                       # PAN 2048, 4096, 8192
    python benchmarks/ingest.py --sizes 8192 --before 0c749ed --compress deflate
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from crossdiff_core.io.windows import gdal_cache_env

RATIO = 4
BLOCK = 512
REPO = Path(__file__).resolve().parent.parent

_CHILD = """
import json, os, resource, sys, time
if os.environ.get("CROSSDIFF_BENCH_PACKAGE"):
    # Import the extracted older package, not the editable install of the working tree.
    sys.meta_path = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
    sys.path.insert(0, os.environ["CROSSDIFF_BENCH_PACKAGE"])
import crossdiff_core
from crossdiff_core.ingest import ingest_source
pan, ms, out, chunk = sys.argv[1:5]
# The first dask compute of a process imports dask.distributed (seconds on a busy machine): a
# one-off per process, timed apart so that the ingest time is that of a warm worker.
start = time.perf_counter()
import distributed
imports = time.perf_counter() - start
start = time.perf_counter()
result = ingest_source((pan, ms), out, sensor="QuickBird", chunk_size=int(chunk))
seconds = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "imports": imports, "peak_mib": peak_kib / 1024,
                  "store": str(result.store), "package": crossdiff_core.__file__}))
"""


def _texture(rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator, scale: float):
    """Smooth structure plus grain: compresses like imagery, not like zeros or noise."""
    y, x = np.meshgrid(rows, cols, indexing="ij")
    smooth = np.sin(x / (37.0 * scale)) * np.cos(y / (53.0 * scale)) + np.sin((x + y) / 211.0)
    return np.clip(600 + 250 * smooth + rng.normal(0, 20, smooth.shape), 1, 2047)


def write_raster(path: Path, size: int, bands: int, pixel: float, compress: str, seed: int):
    rng = np.random.default_rng(seed)
    profile = {"driver": "GTiff", "height": size, "width": size, "count": bands,
               "dtype": "uint16", "crs": "EPSG:32616", "tiled": True,
               "blockxsize": min(BLOCK, size), "blockysize": min(BLOCK, size),
               "transform": Affine(pixel, 0.0, 400_000.0, 0.0, -pixel, 4_000_000.0)}
    if compress != "none":
        profile["compress"] = compress
    step = min(BLOCK, size)
    with rasterio.open(path, "w", **profile) as dataset:
        for row in range(0, size, step):
            rows = np.arange(row, row + step)
            block = np.stack([
                _texture(rows, np.arange(size), rng, scale=1 + band * 0.1)
                for band in range(bands)
            ]).astype(np.uint16)
            dataset.write(block, window=rasterio.windows.Window(0, row, size, step))


def read_all(pan: Path, ms: Path, chunk: int, threads: int) -> float:
    """Seconds to read every pixel once in the ingest's windows on ``threads`` threads, each
    thread with its own open files (as the ingest)."""
    with rasterio.open(pan) as dataset:
        size = dataset.height
    windows = [(row, col) for row in range(0, size, chunk) for col in range(0, size, chunk)]
    ms_chunk = chunk // RATIO

    def read_share(share: list[tuple[int, int]]) -> None:
        with rasterio.open(pan) as pan_file, rasterio.open(ms) as ms_file:
            for row, col in share:
                pan_file.read(1, window=Window(col, row, chunk, chunk))
                ms_file.read(window=Window(col // RATIO, row // RATIO, ms_chunk, ms_chunk))

    start = time.perf_counter()
    with gdal_cache_env(), ThreadPoolExecutor(threads) as pool:
        list(pool.map(read_share, [windows[i::threads] for i in range(threads)]))
    return time.perf_counter() - start


def ingest_once(pan: Path, ms: Path, out: Path, chunk: int, package: Path | None) -> dict:
    env = dict(os.environ)
    env["CROSSDIFF_BENCH_PACKAGE"] = "" if package is None else str(package)
    child = subprocess.run([sys.executable, "-c", _CHILD, str(pan), str(ms), str(out), str(chunk)],
                           capture_output=True, text=True, env=env)
    if child.returncode:
        raise RuntimeError(f"ingest subprocess failed:\n{child.stderr[-2000:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    expected = (package or REPO) / "crossdiff_core" / "__init__.py"
    if Path(result["package"]).resolve() != expected.resolve():
        raise RuntimeError(f"the subprocess imported {result['package']}, not {expected}")
    return result


def extract_revision(revision: str, folder: Path) -> Path:
    """``crossdiff_core`` as committed at ``revision``, extracted (read-only on the repository)."""
    archive = folder / "before.tar"
    with open(archive, "wb") as handle:
        subprocess.run(["git", "-C", str(REPO), "archive", revision, "crossdiff_core"],
                       stdout=handle, check=True)
    target = folder / "before"
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def measure(size: int, args: argparse.Namespace, folder: Path, before: Path | None) -> dict:
    pan = folder / f"pan_{size}.tif"
    ms = folder / f"ms_{size}.tif"
    write_raster(pan, size, 1, 0.5, args.compress, seed=1)
    write_raster(ms, size // RATIO, 4, 0.5 * RATIO, args.compress, seed=2)
    threads = os.cpu_count() or 1
    read_all(pan, ms, args.chunk_size, 1)  # warm the page cache: both read from memory alike
    runs: dict[str, list[float]] = {"read_1t": [], "read_nt": [], "ingest": [], "before": [],
                                    "imports": []}
    peaks: dict[str, float] = {"ingest": 0.0, "before": 0.0}
    for repeat in range(args.repeats):
        runs["read_1t"].append(read_all(pan, ms, args.chunk_size, 1))
        runs["read_nt"].append(read_all(pan, ms, args.chunk_size, threads))
        for name, package in (("ingest", None), ("before", before)):
            if name == "before" and before is None:
                continue
            result = ingest_once(pan, ms, folder / f"zarr_{size}_{name}_{repeat}",
                                 args.chunk_size, package)
            runs[name].append(result["seconds"])
            runs["imports"].append(result["imports"])
            peaks[name] = max(peaks[name], result["peak_mib"])
    row = {key: statistics.median(values) for key, values in runs.items() if values}
    row.update(size=size, threads=threads, peak_mib=peaks["ingest"],
               before_peak_mib=peaks["before"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192],
                        help="PAN edge lengths (multiples of 512)")
    parser.add_argument("--compress", default="none", choices=["none", "deflate", "lzw"],
                        help="GeoTIFF compression of the generated inputs")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--before", metavar="REV",
                        help="also time the ingest as committed at this git revision")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crossdiff-bench-ingest-") as name:
        folder = Path(name)
        before = extract_revision(args.before, folder) if args.before else None
        rows = [measure(size, args, folder, before) for size in args.sizes]
    print(f"ingest benchmark: PAN uint16 tiled GeoTIFF ({args.compress}), 4-band MS at 1/{RATIO}, "
          f"chunk {args.chunk_size}, median of {args.repeats}, {rows[0]['threads']} threads")
    header = (f"{'PAN size':>8} {'read 1t':>8} {'read Nt':>8} {'ingest':>7} {'/read 1t':>9} "
              f"{'/read Nt':>9} {'peak MiB':>9} {'import':>7}")
    if before:
        header += f" {'before':>7} {'/read 1t':>9} {'peak MiB':>9}"
    print(header)
    for row in rows:
        line = (f"{row['size']:>8} {row['read_1t']:>8.2f} {row['read_nt']:>8.2f} "
                f"{row['ingest']:>7.2f} {row['ingest'] / row['read_1t']:>9.2f} "
                f"{row['ingest'] / row['read_nt']:>9.2f} {row['peak_mib']:>9.0f} "
                f"{row['imports']:>7.2f}")
        if before:
            line += (f" {row['before']:>7.2f} {row['before'] / row['read_1t']:>9.2f} "
                     f"{row['before_peak_mib']:>9.0f}")
        print(line)
    print("seconds; targets: ingest / read <= 1.5; peak memory < 1536 MiB and flat across sizes")


if __name__ == "__main__":
    main()
