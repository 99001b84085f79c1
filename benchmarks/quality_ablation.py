"""What each setting does to CrossDiff and to its random-encoder ablation, on development crops or
on the anchor crops: the chain of ``dvc repro`` (pretrain, freeze, adapt at full resolution; the
same chain on the Wald-degraded copy for reduced resolution) run in one process, without Prefect,
DVC or MLflow, so variants are cheap to compare.

Development crops (where hyperparameters are chosen) are regions of the full scenes that do not
overlap the anchor crops the quality bar is judged on:
  ikonos_dev  IKONOS imgIK.mat, PAN rows 0-384, cols 384-896 (the anchor crop is rows 384-896)
  l8_dev      the embedded Landsat-8 sample, MS rows 0-128, cols 0-384 (the anchor is rows 475-603)
  l8_dev2     the same rows, MS cols 384-624 (added later; the defaults were not chosen on it)
Anchor crops (``../shared/golden/anchors_*.npz``) are ``IKONOS``, ``WV3``, ``L8``: use them only
to report, never to choose.

    python benchmarks/quality_ablation.py --crops ikonos_dev l8_dev --variants default bit_depth
    python benchmarks/quality_ablation.py --crops ikonos_dev --set adapt.steps=600 --name steps600
    python benchmarks/quality_ablation.py --crops ikonos_dev --branches  # which branch pays

Each variant is a list of ``section.key=value`` overrides of params.yaml. Pretraining runs are
cached by their settings under ``--work`` and shared between variants that only change the head.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CROSSDIFF_SHARED", ROOT.parent / "shared"))
DEFAULT_WORK = ROOT / "benchmarks" / "out" / "ablation"  # --work of this script and its readers

VARIANTS: dict[str, list[str]] = {
    "default": [],
    "bit_depth": ["pretrain.normalisation=bit_depth", "adapt.normalisation=bit_depth"],
    "constant_lr": ["adapt.lr_schedule=constant"],
    "low_t_pretraining": ["pretrain.train_t_max=200"],
    "feature_t_10": ["freeze.t_feature=10"],
    "noisy_features": ["freeze.noise_free=false"],
    "decoder_features": ["freeze.decoder_features=true"],  # the default
    "encoder_features_only": ["freeze.decoder_features=false"],  # the default before
    "standardised_features": ["freeze.standardise_features=true"],
    "plain_features": ["freeze.standardise_features=false"],
    "plain_features_sw10": ["freeze.standardise_features=false", "adapt.spectral_weight=10.0"],
    "spectral_weight_10": ["adapt.spectral_weight=10.0"],
    "spectral_weight_20": ["adapt.spectral_weight=20.0"],
    "input_skip": ["adapt.input_skip=true"],
    "spectral_weight_1": ["adapt.spectral_weight=1.0"],
    "spectral_weight_3": ["adapt.spectral_weight=3.0"],
    "spectral_weight_30": ["adapt.spectral_weight=30.0"],
    "adapt_steps_300": ["adapt.steps=300"],
    "adapt_steps_600": ["adapt.steps=600"],
    "adapt_steps_900": ["adapt.steps=900"],
    "pretrain_steps_600": ["pretrain.steps=600"],
    "pretrain_steps_900": ["pretrain.steps=900"],
}


# The Landsat development crops: MS rows 0-128 of the sample (the shipped Landsat pairs' corpus is
# rows 128-460, the anchor rows 475-603), these MS columns.
LANDSAT_DEV_COLUMNS = {"l8_dev": (0, 384), "l8_dev2": (384, 624)}


def _crop_arrays(name: str) -> tuple[np.ndarray, np.ndarray, str, int]:
    """(ms (B, h, w), pan (H, W), sensor, ratio) of a named crop, original units."""
    if name in ("IKONOS", "WV3", "L8"):
        crop = np.load(SHARED / "golden" / f"anchors_{name}.npz")
        sensor = {"IKONOS": "IKONOS", "WV3": "WorldView-3", "L8": "Landsat-8"}[name]
        return crop["ms"].transpose(2, 0, 1), crop["pan"], sensor, int(crop["ratio"])
    if name == "ikonos_dev":
        from crossdiff_core.io.matfile import load_mat

        values = load_mat(SHARED / "data" / "ikonos" / "imgIK.mat")
        pan = np.asarray(values["I_PAN"])[0:384, 384:896]
        ms = np.asarray(values["I_MS"]).transpose(2, 0, 1)[:, 0:96, 96:224]
        return ms, pan, "IKONOS", 4
    if name in LANDSAT_DEV_COLUMNS:
        from crossdiff_core.io.store import find_scene_stores, open_scene

        stores = find_scene_stores([ROOT / "data" / "zarr"])
        if not stores:
            raise SystemExit(f"{name} needs the ingested sample: run `python -m flows.ingest`")
        scene = open_scene(stores[0])
        first, last = LANDSAT_DEV_COLUMNS[name]
        ms = np.asarray(scene.ms.values)[:, 0:128, first:last]
        pan = np.asarray(scene.pan.values)[0:256, 2 * first:2 * last]
        return ms, pan, "Landsat-8", 2
    raise SystemExit(f"unknown crop {name!r}")


def write_crop_store(name: str, out: Path) -> Path:
    """The crop as a scene store (ungeoreferenced, nested grids) under ``out``."""
    from crossdiff_core.io.store import scene_attributes, write_scene_store
    from crossdiff_core.sensors import get_sensor

    ms, pan, sensor_name, ratio = _crop_arrays(name)
    sensor = get_sensor(sensor_name, ratio=ratio, n_bands=ms.shape[0])
    digest = hashlib.sha256(pan.tobytes() + ms.tobytes()).hexdigest()
    attrs = scene_attributes(
        sensor,
        scene_id=name,
        scale_max=float(max(pan.max(), ms.max())),
        nodata=None,
        crs=None,
        source_name=name,
        source_sha256=digest,
        bit_depth=sensor.bit_depth,
        alignment={"rule": "none", "reason": "crop of nested grids"},
    )
    band_names = list(sensor.bands)[: ms.shape[0]]
    chunk = min(1024, pan.shape[0], pan.shape[1]) // ratio * ratio
    return write_scene_store(
        xr.DataArray(pan, dims=("y", "x")),
        xr.DataArray(ms, dims=("band", "y", "x"), coords={"band": band_names}),
        attrs,
        out,
        chunk_size=chunk,
        overwrite=True,
    )


def apply_overrides(params: dict, overrides: list[str]) -> dict:
    params = copy.deepcopy(params)
    for override in overrides:
        key, value = override.split("=", 1)
        section, name = key.split(".", 1)
        params[section][name] = yaml.safe_load(value)
    return params


def variant_params(overrides: list[str]) -> dict:
    """The project's params.yaml with ``overrides`` (``section.key=value``) applied."""
    return apply_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def pretrained_encoders(store: str, params: dict, work: Path) -> Path:
    """Pretrain both branches on ``store`` and freeze them; cached by the settings."""
    from crossdiff_core.config import section_values
    from crossdiff_core.train.config import BRANCHES, PretrainConfig
    from crossdiff_core.train.freeze import freeze_pretrained
    from crossdiff_core.train.pretrain import train_branch
    from flows.params import validate

    pretrain = {k: v for k, v in params["pretrain"].items() if k not in ("scenes", "out")}
    frozen_config = validate("freeze", params["freeze"])
    freeze = {k: v for k, v in section_values(frozen_config).items() if k != "out"}
    freeze["pan_patch"] = validate("pretrain", params["pretrain"]).pan_patch
    folder = work / "encoders" / _digest([store, pretrain])
    frozen = folder / f"frozen-{_digest(freeze)}"
    if (frozen / "config.json").is_file():
        return frozen
    for branch in BRANCHES:
        config = PretrainConfig.from_params(pretrain, branch, scenes=[store],
                                            out=str(folder / "pretrain"), progress=False)
        train_branch(config)  # resumes, or does nothing when already at its step count
    return freeze_pretrained(folder / "pretrain", [store], frozen, **freeze)


# Encoder sets a head can be trained on: both pretrained (CrossDiff), both random twins (the
# ablation), or one branch pretrained and the other a random twin (which branch pays, --branches).
ENCODER_SETS = {
    "crossdiff": (True, True),
    "crossdiff_random_encoders": (False, False),
    "crossdiff_p2m_pretrained": (True, False),
    "crossdiff_m2p_pretrained": (False, True),
}


def hybrid_encoders(store: str, extractor, config, pretrained: tuple[bool, bool]):
    """``extractor`` with the branches marked False in ``pretrained`` (P2M, M2P) replaced by
    their random twin's, calibrated on ``store`` exactly as the ablation calibrates its twin
    (same patches, seed and normalisation; each UNet's frozen norms depend on its own layers
    only, so a calibrated branch can be swapped in whole)."""
    from crossdiff_core.nets.extractor import random_twin
    from crossdiff_core.train.patches import PatchDataset, calibration_batches

    twin = random_twin(extractor, seed=config.seed)
    dataset = PatchDataset([store], config.pan_patch, seed=config.seed,
                           normalisation=config.normalisation)
    batches = list(calibration_batches(dataset, config.calibration_patches))
    twin.calibrate(batches)
    keep_p2m, keep_m2p = pretrained
    if keep_p2m:
        twin.p2m = extractor.p2m
    if keep_m2p:
        twin.m2p = extractor.m2p
    if twin.config.get("standardise_features"):
        twin.calibrate_standardisation(batches)  # statistics of the branches it now has
    return twin


def adapted_head(store: str, encoders: Path, params: dict, seed: int, out: Path,
                 method: str = "crossdiff") -> Path:
    """The head on ``encoders`` for one of ``ENCODER_SETS``: pretrained, their random frozen
    twins (ablation), or one branch of each."""
    from dataclasses import replace

    from crossdiff_core.nets.extractor import load_extractor
    from crossdiff_core.train.adapt import adapt_head
    from flows.params import validate

    pretrained = ENCODER_SETS[method]
    config = replace(validate("adapt", params["adapt"]).run_config(), seed=seed,
                     random_encoders=not any(pretrained), device="cpu")
    extractor = load_extractor(encoders)
    if any(pretrained) and not all(pretrained):
        extractor = hybrid_encoders(store, extractor, config, pretrained)
    adapt_head([store], out, extractor, config)
    return out


def prepared_stores(crop: str, work: Path) -> dict[str, str]:
    """{"full": store, "reduced": its Wald copy} of a crop, written once under ``work``/stores."""
    from crossdiff_core.cross_sensor import prepare_scene

    base = work / "stores" / crop
    if not (base / "prepared.json").is_file():
        source = write_crop_store(crop, base / "source")
        prepared = prepare_scene(str(source), base / "prepared", max_pan_size=1 << 20)
        (base / "prepared.json").write_text(
            json.dumps({"full": prepared.full_store, "reduced": prepared.reduced_store})
        )
    return json.loads((base / "prepared.json").read_text())


def wald_arrays(crop: str, work: Path):
    """(full-resolution scene, its MS as the reference, the Wald copy's MS, the Wald copy's PAN) of
    a crop, arrays float64: what the reduced-resolution diagnostics compare heads against."""
    from crossdiff_core.io.store import open_scene

    stores = prepared_stores(crop, work)
    full, reduced = open_scene(stores["full"]), open_scene(stores["reduced"])
    reference = np.asarray(full.ms.values, np.float64)
    return (full, reference, np.asarray(reduced.ms.values, np.float64),
            np.asarray(reduced.pan.values, np.float64))


def head_folder(work: Path, crop: str, overrides: list[str], method: str, seed: int) -> Path:
    """Where :func:`run_variant` leaves the heads (full/, reduced/) of one method and seed."""
    return work / "heads" / _digest([crop, overrides, method, seed])


def run_variant(
    crop: str, overrides: list[str], seeds: list[int], work: Path, random_too: bool = True,
    branches: bool = False, threads: int = 0,
) -> dict:
    """{method: {"q2n": [...], "hqnr": [...], ...}} over seeds for one crop and variant, on
    ``threads`` torch threads (0: every core)."""
    import torch

    from crossdiff_core.evaluation import TOOLBOX_BORDER_CUT, score_full, score_reduced
    from crossdiff_core.io.store import open_scene
    from crossdiff_core.pansharpener import load_pansharpener

    torch.set_num_threads(threads or os.cpu_count() or 1)
    params = variant_params(overrides)
    stores = prepared_stores(crop, work)
    full, reduced = open_scene(stores["full"]), open_scene(stores["reduced"])
    ms = np.asarray(full.ms.values, np.float64)
    pan = np.asarray(full.pan.values, np.float64)
    ms_lr = np.asarray(reduced.ms.values, np.float64)
    pan_lr = np.asarray(reduced.pan.values, np.float64)
    encoders = {res: pretrained_encoders(stores[res], params, work) for res in ("full", "reduced")}
    methods = ["crossdiff"]
    if random_too:
        methods.append("crossdiff_random_encoders")
    if branches:
        methods += ["crossdiff_p2m_pretrained", "crossdiff_m2p_pretrained"]
    results: dict = {}
    for seed in seeds:
        for method in methods:
            folder = head_folder(work, crop, overrides, method, seed)
            heads = {
                res: adapted_head(stores[res], encoders[res], params, seed, folder / res, method)
                for res in ("full", "reduced")
            }
            fused_lr = load_pansharpener(heads["reduced"]).fuse(ms_lr, pan_lr)
            fused = load_pansharpener(heads["full"]).fuse(ms, pan)
            scores = {
                **score_reduced(ms, fused_lr, full.ratio, border_cut=TOOLBOX_BORDER_CUT),
                **score_full(fused, ms, pan, full.ratio, full.sensor),
            }
            for index, value in scores.items():
                results.setdefault(method, {}).setdefault(index, []).append(float(value))
    return results


def best_classical(crop: str) -> dict[str, tuple[str, float]]:
    """{"q2n": (method, value), "hqnr": (method, value)}: the best classical method on ``crop``
    (EXP excluded, as the toolbox does), with the same protocol as CrossDiff."""
    from crossdiff_core.baselines import METHODS
    from crossdiff_core.evaluation import TOOLBOX_BORDER_CUT, evaluate_method
    from crossdiff_core.sensors import get_sensor

    ms, pan, sensor_name, ratio = _crop_arrays(crop)
    sensor = get_sensor(sensor_name, ratio=ratio, n_bands=ms.shape[0])
    ms, pan = ms.astype(np.float64), pan.astype(np.float64)
    best: dict[str, tuple[str, float]] = {}
    for name, method in METHODS.items():
        if name == "exp":
            continue
        scores = evaluate_method(
            lambda m, p, method=method: method(m, p, ratio, sensor), ms, pan, ratio, sensor,
            border_cut=TOOLBOX_BORDER_CUT,
        )
        for index, resolution in (("q2n", "reduced"), ("hqnr", "full")):
            value = scores[resolution][index]
            if index not in best or value > best[index][1]:
                best[index] = (name, float(value))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--crops", nargs="+", default=["ikonos_dev", "l8_dev"])
    parser.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="an override added to every variant",
    )
    parser.add_argument("--name", default="", help="suffix for the variant names in the table")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: every core; 1 when two runs share 2 cores)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--no-random", action="store_true", help="skip the random-encoder ablation")
    parser.add_argument("--branches", action="store_true",
                        help="also heads on one pretrained branch beside the other's random twin "
                             "(crossdiff_p2m_pretrained, crossdiff_m2p_pretrained)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--out", type=Path, help="append the rows (JSON lines) to this file")
    parser.add_argument("--classical", action="store_true",
                        help="print the best classical method per crop and stop")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    if args.classical:
        for crop in args.crops:
            best = best_classical(crop)
            print(f"{crop}: best classical Q2n {best['q2n'][1]:.4f} ({best['q2n'][0]}), "
                  f"HQNR {best['hqnr'][1]:.4f} ({best['hqnr'][0]})", flush=True)
        return
    print("| crop | variant | method | Q2n | SAM | HQNR | D_lambda_K | D_s | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for variant in args.variants:
        for crop in args.crops:
            start = time.perf_counter()
            result = run_variant(
                crop,
                [*VARIANTS[variant], *args.set],
                args.seeds,
                args.work,
                random_too=not args.no_random,
                branches=args.branches,
                threads=args.threads,
            )
            seconds = time.perf_counter() - start
            name = variant + (f"+{args.name}" if args.name else "")
            for method, indices in result.items():
                mean = {k: float(np.mean(v)) for k, v in indices.items()}
                print(
                    f"| {crop} | {name} | {method} | {mean['q2n']:.4f} | {mean['sam']:.3f} | "
                    f"{mean['hqnr']:.4f} | {mean['d_lambda_k']:.4f} | {mean['d_s']:.4f} | "
                    f"{seconds:.0f} |",
                    flush=True,
                )
                if args.out:
                    with args.out.open("a") as handle:
                        handle.write(
                            json.dumps(
                                {
                                    "crop": crop,
                                    "variant": name,
                                    "method": method,
                                    "overrides": [*VARIANTS[variant], *args.set],
                                    "seeds": args.seeds,
                                    **mean,
                                }
                            )
                            + "\n"
                        )


if __name__ == "__main__":
    main()
