"""What the integrity check costs: opening a scene store with and without it, next to reading it.

Writes a synthetic QuickBird scene store (PAN N x N uint16, 4-band MS N/4 x N/4, the ingest's
default 1024-pixel PAN chunks unless ``--chunk``) in a temporary folder, then measures side by
side in this one run, interleaved and repeated (best of the repeats, so that other load on
the machine counts as little as possible; warm page cache):

- open before: what ``open_scene`` did before stores had a manifest (root attributes, then
  ``xr.open_zarr`` of the ``pan`` and ``ms`` groups), no check;
- check: ``crossdiff_core.io.integrity.check_store`` alone (manifest parse, one ``stat`` per file,
  each ``zarr.json`` parsed), the cheap check every open now makes;
- open now: ``open_scene`` as it is (check, then the same opens, reads routed through the
  checked chunk reader);
- read: ``open_scene`` then every pixel of PAN and MS read (decoded);
- verify: ``crossdiff verify``'s full check (sha256 of every file);
- manifest: writing the manifest, the cost ingest pays once per store.

    python benchmarks/store_integrity.py                  # PAN 2048 and 4096
    python benchmarks/store_integrity.py --sizes 8192 --chunk 512 --repeats 9
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import xarray as xr

from crossdiff_core.io.integrity import check_store, verify_store, write_manifest
from crossdiff_core.io.store import (
    open_scene,
    read_store_attrs,
    scene_attributes,
    write_scene_store,
)
from crossdiff_core.sensors import get_sensor
from crossdiff_core.synthetic import synthetic_scene_arrays

SENSOR = "QuickBird"


def make_store(folder: Path, pan_size: int, chunk: int) -> Path:
    """A synthetic store with a PAN of ``pan_size`` squared pixels."""
    sensor = get_sensor(SENSOR)
    ms_size = pan_size // sensor.ratio
    pan, ms = synthetic_scene_arrays(sensor, (ms_size, ms_size), seed=0)
    attrs = scene_attributes(
        sensor, scene_id=f"bench-{pan_size}", scale_max=float(sensor.max_dn), nodata=None,
        crs=pan.rio.crs.to_wkt(), source_name="synthetic", source_sha256="0" * 64,
        alignment={"rule": "none"},
    )
    return write_scene_store(pan, ms, attrs, folder, chunk_size=chunk, overwrite=True)


def open_before(path: Path) -> None:
    """``open_scene`` as it was before stores had a manifest."""
    read_store_attrs(path)
    xr.open_zarr(path, group="pan", decode_coords="all", chunks={})["pan"]  # noqa: B018
    xr.open_zarr(path, group="ms", decode_coords="all", chunks={})["ms"]  # noqa: B018


def read_all(path: Path) -> None:
    scene = open_scene(path)
    scene.pan.values, scene.ms.values  # noqa: B018


def measure(path: Path, repeats: int) -> dict[str, float]:
    """Best seconds of each step over ``repeats`` interleaved rounds (one warm-up first)."""
    steps = {
        "open before": lambda: open_before(path),
        "check": lambda: check_store(path),
        "open now": lambda: open_scene(path),
        "read": lambda: read_all(path),
        "verify": lambda: verify_store(path),
        "manifest": lambda: write_manifest(path),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(repeats + 1):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096],
                        help="PAN edge lengths in pixels")
    parser.add_argument("--chunk", type=int, default=1024, help="PAN chunk edge in pixels")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    header = (f"{'PAN':>6} {'files':>6} {'MB':>7} {'open before':>12} {'check':>9} "
              f"{'open now':>9} {'overhead':>9} {'read':>9} {'verify':>9} {'manifest':>9}")
    print(header)
    with tempfile.TemporaryDirectory(prefix="store-integrity-") as folder:
        for size in args.sizes:
            path = make_store(Path(folder), size, args.chunk)
            files = [p for p in path.rglob("*") if p.is_file()]
            megabytes = sum(p.stat().st_size for p in files) / 1e6
            t = measure(path, args.repeats)
            overhead = t["open now"] - t["open before"]
            ms = {name: f"{value * 1e3:.1f} ms" for name, value in t.items()}
            print(f"{size:>6} {len(files):>6} {megabytes:>7.1f} {ms['open before']:>12} "
                  f"{ms['check']:>9} {ms['open now']:>9} {overhead * 1e3:>6.1f} ms "
                  f"{ms['read']:>9} {ms['verify']:>9} {ms['manifest']:>9}")
            print(f"{'':>6} check = {t['check'] / t['read']:.2%} of a full read; open now - open "
                  f"before = {overhead / t['read']:.2%} of it")


if __name__ == "__main__":
    main()
