"""Generators of tiny ingestion inputs (fixed seeds): Landsat bundles, GeoTIFF pairs, .h5, .mat."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import rasterio
import scipy.io
from affine import Affine

from crossdiff_core.synthetic import synthetic_pair

UTM = "EPSG:32616"


def write_geotiff(path: Path, array: np.ndarray, transform: Affine, crs: str = UTM,
                  nodata: float | None = None) -> Path:
    """Write (B, y, x) or (y, x) as a tiled GeoTIFF."""
    bands = array[None] if array.ndim == 2 else array
    profile = {"driver": "GTiff", "height": bands.shape[1], "width": bands.shape[2],
               "count": bands.shape[0], "dtype": bands.dtype.name, "crs": crs,
               "transform": transform, "tiled": True, "blockxsize": 16, "blockysize": 16}
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(bands)
    return path


def landsat_bundle(folder: Path, naming: str = "pre", spacecraft: str = "LANDSAT_8",
                   ms_shape: tuple[int, int] = (16, 20), seed: int = 0,
                   skip_band: int | None = None) -> tuple[Path, np.ndarray, np.ndarray]:
    """A Landsat-like bundle: B2-B5 on a 30 m grid, B8 on a 15 m grid half a PAN pixel up-left
    of it with one extra row, and an MTL. Returns (folder, expected pan, expected ms)."""
    folder.mkdir(parents=True, exist_ok=True)
    pan, ms = synthetic_pair("Landsat-8", ms_shape, seed)
    prefix = ("LC80200392015216LGN00" if naming == "pre"
              else "LC08_L1TP_020039_20150804_20200908_02_T1")
    ms_t = Affine(30.0, 0.0, 452475.0, 0.0, -30.0, 3408645.0)
    pan_t = Affine(15.0, 0.0, 452467.5, 0.0, -15.0, 3408652.5)
    extra_row = np.full((1, pan.shape[1]), 999, dtype=np.uint16)
    lines = ["GROUP = L1_METADATA_FILE", f'    SPACECRAFT_ID = "{spacecraft}"',
             f'    LANDSAT_SCENE_ID = "{prefix}"' if naming == "pre"
             else f'    LANDSAT_PRODUCT_ID = "{prefix}"',
             "    DATE_ACQUIRED = 2015-08-04", '    SCENE_CENTER_TIME = "16:19:21Z"']
    for band, data, transform in [(2, ms[0], ms_t), (3, ms[1], ms_t), (4, ms[2], ms_t),
                                  (5, ms[3], ms_t), (8, np.vstack([pan, extra_row]), pan_t)]:
        name = f"{prefix}_B{band}.TIF"
        lines.append(f'    FILE_NAME_BAND_{band} = "{name}"')
        if band != skip_band:
            write_geotiff(folder / name, data, transform)
    lines += ["END_GROUP = L1_METADATA_FILE", "END"]
    (folder / f"{prefix}_MTL.txt").write_text("\n".join(lines) + "\n")
    return folder, pan, ms


def tar_folder(folder: Path, archive: Path) -> Path:
    mode = "w:gz" if archive.name.endswith(".gz") else "w"
    with tarfile.open(archive, mode) as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.iterdir()):
            bundle.write(path, arcname=path.name)
    return archive


def geotiff_pair(folder: Path, sensor: str = "QuickBird", ms_shape: tuple[int, int] = (12, 16),
                 seed: int = 0, pan_margin: tuple[int, int, int, int] = (1, 2, 3, 4),
                 dtype: str = "uint16", nodata: float | None = None
                 ) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """PAN + MS GeoTIFFs whose PAN has (top, left, bottom, right) extra PAN pixels around the
    nested core, like the WV3 delivery. Returns (pan path, ms path, expected pan, expected ms)."""
    folder.mkdir(parents=True, exist_ok=True)
    pan, ms = synthetic_pair(sensor, ms_shape, seed)
    pan, ms = pan.astype(dtype), ms.astype(dtype)
    top, left, bottom, right = pan_margin
    padded = np.pad(pan, ((top, bottom), (left, right)), mode="reflect")
    ms_t = Affine(2.0, 0.0, 400_000.0, 0.0, -2.0, 4_000_000.0)
    pan_t = Affine(0.5, 0.0, 400_000.0 - 0.5 * left, 0.0, -0.5, 4_000_000.0 + 0.5 * top)
    pan_path = write_geotiff(folder / "scene_pan.tif", padded, pan_t, nodata=nodata)
    ms_path = write_geotiff(folder / "scene_mul.tif", ms, ms_t, nodata=nodata)
    return pan_path, ms_path, pan, ms


def pancollection_h5(path: Path, n_samples: int = 2, ms_shape: tuple[int, int] = (8, 8),
                     with_gt: bool = True) -> tuple[Path, np.ndarray, np.ndarray]:
    """A PanCollection-style file (float64 DN, WV3 8 bands): ms (N,8,h,w), pan (N,1,H,W)."""
    pairs = [synthetic_pair("WV3", ms_shape, seed) for seed in range(n_samples)]
    pan = np.stack([p[None] for p, _ in pairs]).astype(np.float64)
    ms = np.stack([m for _, m in pairs]).astype(np.float64)
    with h5py.File(path, "w") as handle:
        handle["ms"] = ms
        handle["pan"] = pan
        handle["lms"] = np.repeat(np.repeat(ms, 4, axis=2), 4, axis=3)
        if with_gt:
            handle["gt"] = np.repeat(np.repeat(ms, 4, axis=2), 4, axis=3)
    return path, pan, ms


def grip_mat(path: Path, version: str = "5", ms_key: str = "I_MS",
             seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """A GRIP-style IKONOS .mat (v5 via scipy or v7.3 via h5py): I_PAN, I_MS (h, w, B), ..."""
    pan, ms = synthetic_pair("IKONOS", (8, 10), seed)
    ms_hwb = np.moveaxis(ms, 0, -1)
    if version == "5":
        scipy.io.savemat(path, {"I_PAN": pan, ms_key: ms_hwb, "sensor": "IKONOS",
                                "ratio": np.array([[4]], np.uint8),
                                "L": np.array([[11]], np.uint8)})
        return path, pan, ms
    # MATLAB v7.3: HDF5 behind a 512-byte header, arrays stored transposed (column-major).
    with h5py.File(path, "w", userblock_size=512) as handle:
        handle["I_PAN"] = pan.T
        handle[ms_key] = ms_hwb.T
        sensor = handle.create_dataset("sensor", data=np.array([ord(c) for c in "IKONOS"],
                                                                np.uint16)[:, None])
        sensor.attrs["MATLAB_class"] = np.bytes_("char")
        handle["ratio"] = np.array([[4.0]])
        handle["L"] = np.array([[11.0]])
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, generated by a test".ljust(128, b" "))
    return path, pan, ms
