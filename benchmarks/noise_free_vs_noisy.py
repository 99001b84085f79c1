"""Noise-free vs noisy (coordinate-keyed) features at t_feature, on a real scene crop.

For each resolution the chain runs once per feature mode on the same pretrained UNets:
pretrain P2M and M2P (short), freeze them twice (noise_free True / False, same calibration
patches), adapt a head on each with the same seed, and score it:
- full resolution: HQNR of fusing the crop itself (the chain sees only the crop);
- reduced resolution: Q2n of fusing the Wald-degraded pair against the crop's original MS;
  pretraining, calibration and adaptation see only the degraded pair, never the reference.

    python benchmarks/noise_free_vs_noisy.py [--scene IKONOS] [--pretrain-steps 60]
        [--adapt-steps 150]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from crossdiff_core.cross_sensor import prepare_scene, score_model
from crossdiff_core.io.store import write_scene_store
from crossdiff_core.sensors import get_sensor
from crossdiff_core.train.adapt import AdaptConfig, adapt_head
from crossdiff_core.train.config import PretrainConfig
from crossdiff_core.train.freeze import freeze_pretrained
from crossdiff_core.train.pretrain import train_branch

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden"
SENSORS = {"IKONOS": "IKONOS", "WV3": "WorldView-3"}


def anchors_store(scene: str, out: Path) -> Path:
    """The anchors crop (PAN (y, x), MS (y, x, band) in the npz) as an ungeoreferenced store."""
    path = GOLDEN / f"anchors_{scene}.npz"
    if not path.is_file():
        raise SystemExit(f"{path} not found: the shared golden data is missing")
    crop = np.load(path)
    sensor = get_sensor(SENSORS[scene])
    ms = crop["ms"].transpose(2, 0, 1)
    attrs = {
        "sensor": sensor.name,
        "ratio": int(crop["ratio"]),
        "scene_id": f"anchors_{scene}",
        "bit_depth": sensor.bit_depth,
        "scale_max": float(sensor.max_dn),
        "georeferenced": False,
        "nodata": None,
    }
    return write_scene_store(
        xr.DataArray(crop["pan"], dims=("y", "x")),
        xr.DataArray(ms, dims=("band", "y", "x"), coords={"band": list(sensor.bands)}),
        attrs,
        out,
        chunk_size=crop["pan"].shape[0],
    )


def run_resolution(store: str, work: Path, args: argparse.Namespace) -> dict[bool, Path]:
    """Pretrain on ``store``, then freeze + adapt once per feature mode; model folders by mode."""
    for branch in ("p2m", "m2p"):
        train_branch(PretrainConfig(
            branch=branch, scenes=[store], out=str(work / "pretrain"), seed=0, device="cpu",
            pan_patch=64, batch_size=8, steps=args.pretrain_steps,
            checkpoint_every=args.pretrain_steps, progress=False,
        ), resume=False)
    models = {}
    for noise_free in (True, False):
        name = "noise-free" if noise_free else "noisy"
        encoders = freeze_pretrained(
            work / "pretrain", [store], work / f"encoders-{name}", t_feature=args.t_feature,
            noise_free=noise_free, calibration_patches=16, seed=0,
        )
        from crossdiff_core.nets.extractor import load_extractor

        result = adapt_head([store], work / f"model-{name}", load_extractor(encoders), AdaptConfig(
            steps=args.adapt_steps, batch_size=4, pan_patch=args.adapt_patch, seed=0,
            device="cpu",
        ))
        models[noise_free] = result.out
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", choices=sorted(SENSORS), default="IKONOS")
    parser.add_argument("--pretrain-steps", type=int, default=60)
    parser.add_argument("--adapt-steps", type=int, default=150)
    parser.add_argument("--adapt-patch", type=int, default=64)
    parser.add_argument("--t-feature", type=int, default=50)
    args = parser.parse_args()
    started = time.perf_counter()
    scores: dict[bool, dict[str, float]] = {True: {}, False: {}}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        store = anchors_store(args.scene, work / "crop")
        prepared = prepare_scene(store, work / "prepared", max_pan_size=1024)
        for resolution, index in (("full", "HQNR"), ("reduced", "Q2n")):
            models = run_resolution(prepared.store(resolution), work / resolution, args)
            for noise_free, model in models.items():
                scores[noise_free][index] = score_model(model, prepared, resolution)
            print(f"{index}: noise-free {scores[True][index]:.4f}, noisy "
                  f"{scores[False][index]:.4f} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    print(f"{args.scene} anchors crop, t_feature {args.t_feature}, pretrain "
          f"{args.pretrain_steps} steps/branch, adapt {args.adapt_steps} steps "
          f"({time.perf_counter() - started:.0f} s)")
    print(f"{'features':12s} {'HQNR (full)':>12s} {'Q2n (reduced)':>14s}")
    for noise_free in (True, False):
        name = "noise-free" if noise_free else "noisy"
        print(f"{name:12s} {scores[noise_free]['HQNR']:12.4f} {scores[noise_free]['Q2n']:14.4f}")
    print(f"{'difference':12s} {scores[True]['HQNR'] - scores[False]['HQNR']:+12.4f} "
          f"{scores[True]['Q2n'] - scores[False]['Q2n']:+14.4f}   (noise-free minus noisy)")


if __name__ == "__main__":
    main()
