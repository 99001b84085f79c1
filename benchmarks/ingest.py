"""Ingestion speed and memory against merely reading the same rasters with rasterio.

Generates a PAN (N x N uint16, tiled GeoTIFF) and a 4-band MS (N/4 x N/4) in a temporary folder,
then, for each size, measures side by side in this one run:

- read: reading both rasters fully with rasterio, block window by block window (one thread);
- ingest: ``crossdiff_core.ingest.ingest_source`` on the pair (threads scheduler), in a fresh
  subprocess that also reports its peak resident memory (max RSS);
- their ratio (target <= 1.5) and the peak memory (target < 1.5 GiB, flat across sizes).

    python benchmarks/ingest.py                  # PAN 2048 and 8192
    python benchmarks/ingest.py --sizes 4096 --compress deflate
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

RATIO = 4
BLOCK = 512

_CHILD = """
import json, resource, sys, time
from crossdiff_core.ingest import ingest_source
pan, ms, out, chunk = sys.argv[1:5]
start = time.perf_counter()
result = ingest_source((pan, ms), out, sensor="QuickBird", chunk_size=int(chunk))
seconds = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024, "store": str(result.store)}))
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


def read_all(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        with rasterio.open(path) as dataset:
            for _, window in dataset.block_windows(1):
                dataset.read(window=window)
    return time.perf_counter() - start


def measure(size: int, compress: str, chunk: int, folder: Path) -> dict:
    pan = folder / f"pan_{size}.tif"
    ms = folder / f"ms_{size}.tif"
    write_raster(pan, size, 1, 0.5, compress, seed=1)
    write_raster(ms, size // RATIO, 4, 0.5 * RATIO, compress, seed=2)
    read_all([pan, ms])  # warm the page cache so both measurements read from memory alike
    read_seconds = min(read_all([pan, ms]) for _ in range(2))
    out = folder / f"zarr_{size}"
    child = subprocess.run([sys.executable, "-c", _CHILD, str(pan), str(ms), str(out), str(chunk)],
                           capture_output=True, text=True, check=True)
    ingest = json.loads(child.stdout.strip().splitlines()[-1])
    files = sum(1 for p in Path(ingest["store"]).rglob("*") if p.is_file())
    return {"size": size, "read_s": read_seconds, "ingest_s": ingest["seconds"],
            "ratio": ingest["seconds"] / read_seconds, "peak_mib": ingest["peak_mib"],
            "files": files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192],
                        help="PAN edge lengths (multiples of 512)")
    parser.add_argument("--compress", default="none", choices=["none", "deflate", "lzw"],
                        help="GeoTIFF compression of the generated inputs")
    parser.add_argument("--chunk-size", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crossdiff-bench-ingest-") as folder:
        rows = [measure(size, args.compress, args.chunk_size, Path(folder)) for size in args.sizes]
    print(f"ingest benchmark: PAN uint16 tiled GeoTIFF ({args.compress}), 4-band MS at 1/{RATIO}, "
          f"chunk {args.chunk_size}")
    print(f"{'PAN size':>10} {'read s':>8} {'ingest s':>9} {'ingest/read':>12} "
          f"{'peak MiB':>9} {'files':>6}")
    for row in rows:
        print(f"{row['size']:>10} {row['read_s']:>8.2f} {row['ingest_s']:>9.2f} "
              f"{row['ratio']:>12.2f} {row['peak_mib']:>9.0f} {row['files']:>6}")
    print("targets: ingest/read <= 1.5; peak memory < 1536 MiB and flat across sizes")


if __name__ == "__main__":
    main()
