"""Pretrain both branches on a development corpus, for ``pretrain.init`` experiments.

The corpus is a real scene outside both its anchor crop (``../shared/golden/anchors_*.npz``, the
evaluation crop) and its development crop (``benchmarks/quality_ablation.py``), at its original
scale and as its Wald-reduced copy (two scales, as the full- and reduced-resolution chains see):

  ikonos  imgIK.mat less PAN rows 0-896 x cols 384-896 (dev crop rows 0-384, anchor rows 384-896):
          three pieces, 384 x 1280, 896 x 384 and 896 x 384 PAN pixels
  l8      the embedded Landsat-8 sample, MS rows 128-460 (dev crop rows 0-128, anchor 475-603)

Pretraining uses params.yaml's pretrain section with ``--steps``, ``--ema`` and ``--threads``
over it, and writes ``<out>/<scene>/pretrain_<steps>/{p2m,m2p}`` (resumable: a rerun with more
steps continues). Then measure what starting from it does on the development crop:

    python benchmarks/dev_corpus.py ikonos --steps 1250 --threads 1
    python benchmarks/quality_ablation.py --crops ikonos_dev --seeds 0 1 --threads 1 \\
        --set pretrain.init=benchmarks/out/corpus/ikonos/pretrain_1250 \\
        --set pretrain.finetune_steps=50
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def corpus_pieces(scene: str) -> tuple[str, int, list[tuple[np.ndarray, np.ndarray]]]:
    """(sensor, ratio, [(ms (B, h, w), pan (H, W)), ...]) of the scene's corpus, original units."""
    if scene == "ikonos":
        from crossdiff_core.io.matfile import load_mat

        path = SHARED / "data" / "ikonos" / "imgIK.mat"
        if not path.is_file():
            raise SystemExit(f"{path} not found: the IKONOS scene lives in ../shared/data")
        values = load_mat(path)
        pan = np.asarray(values["I_PAN"])
        ms = np.asarray(values["I_MS"]).transpose(2, 0, 1)
        return "IKONOS", 4, [
            (ms[:, 224:320, :], pan[896:1280, :]),
            (ms[:, 0:224, 0:96], pan[0:896, 0:384]),
            (ms[:, 0:224, 224:320], pan[0:896, 896:1280]),
        ]
    if scene == "l8":
        from crossdiff_core.io.store import find_scene_stores, open_scene

        stores = find_scene_stores([ROOT / "data" / "zarr"])
        if not stores:
            raise SystemExit("the l8 corpus needs the ingested sample: "
                             "run `python -m flows.ingest`")
        sample = open_scene(stores[0])
        ms = np.asarray(sample.ms.values)
        pan = np.asarray(sample.pan.values)
        return "Landsat-8", 2, [(ms[:, 128:460, :], pan[256:920, : ms.shape[2] * 2])]
    raise SystemExit(f"unknown scene {scene!r}: ikonos or l8")


def corpus_source(scene: str) -> dict:
    """The scene the corpus is cut from, as ingestion names it: ``name``, ``source_sha256`` (the
    attribute of its ingested store) and the ``pixels`` taken. Shipped encoders record it, so that
    ``pretrain.init: shipped`` never starts a run on that scene from weights that saw it."""
    from crossdiff_core.ingest import source_sha256

    if scene == "ikonos":
        path = SHARED / "data" / "ikonos" / "imgIK.mat"
        pixels = "PAN outside rows 0-896 x cols 384-896 (the anchor and development crops)"
    else:
        path = ROOT / "data" / "raw" / "LC80200392015216LGN00.tar.gz"
        pixels = "MS rows 128-460 (between the development crop and the anchor crop)"
    return {"name": path.name, "source_sha256": source_sha256(path), "pixels": pixels}


def write_piece(ms: np.ndarray, pan: np.ndarray, sensor_name: str, ratio: int, name: str,
                out: Path) -> list[str]:
    """The piece as a scene store and its Wald-reduced copy; returns both store paths."""
    from crossdiff_core.evaluation_crops import prepare_scene
    from crossdiff_core.io.store import scene_attributes, write_scene_store
    from crossdiff_core.sensors import get_sensor

    sensor = get_sensor(sensor_name, ratio=ratio, n_bands=ms.shape[0])
    attrs = scene_attributes(
        sensor, scene_id=name, scale_max=float(max(pan.max(), ms.max())), nodata=None, crs=None,
        source_name=name, source_sha256=hashlib.sha256(pan.tobytes() + ms.tobytes()).hexdigest(),
        bit_depth=sensor.bit_depth, alignment={"rule": "none", "reason": "crop of nested grids"},
    )
    chunk = min(1024, pan.shape[0], pan.shape[1]) // ratio * ratio
    source = write_scene_store(
        xr.DataArray(pan, dims=("y", "x")),
        xr.DataArray(ms, dims=("band", "y", "x"), coords={"band": list(sensor.bands)[: len(ms)]}),
        attrs, out / name / "source", chunk_size=chunk, overwrite=True,
    )
    prepared = prepare_scene(str(source), out / name / "prepared", max_pan_size=1 << 20)
    return [prepared.full_store, prepared.reduced_store]


def write_corpus_stores(scene: str, out: Path) -> tuple[str, int, list[str]]:
    """(sensor, ratio, store paths): every corpus piece of ``scene`` and its Wald-reduced copy."""
    sensor, ratio, pieces = corpus_pieces(scene)
    stores: list[str] = []
    for index, (ms, pan) in enumerate(pieces):
        stores += write_piece(ms, pan, sensor, ratio, f"{scene}_corpus{index}", out)
    return sensor, ratio, stores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scene", choices=["ikonos", "l8"])
    parser.add_argument("--steps", type=int, default=1250, help="pretraining steps per branch")
    parser.add_argument("--ema", type=float, default=0.999, help="pretrain.ema_decay")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: every core; 1 when other jobs share the cores)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "corpus")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    from crossdiff_core.train.config import BRANCHES, PretrainConfig
    from crossdiff_core.train.pretrain import train_branch

    _, _, stores = write_corpus_stores(args.scene, args.out / args.scene / "stores")
    print(f"corpus: {len(stores)} stores ({len(stores) // 2} pieces at 2 scales)", flush=True)
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["pretrain"]
    settings = {key: value for key, value in section.items() if key not in ("scenes", "out")}
    settings.update(steps=args.steps, ema_decay=args.ema, checkpoint_every=250,
                    threads=args.threads, init="scratch")  # the corpus run starts afresh
    folder = args.out / args.scene / f"pretrain_{args.steps}"
    for branch in BRANCHES:
        config = PretrainConfig.from_params(settings, branch, scenes=stores, out=str(folder),
                                            progress=False)
        result = train_branch(config)
        print(f"{branch}: {result.steps} steps, final loss {result.final_loss:.4f}", flush=True)
    print(f"pretrain.init={folder}")


if __name__ == "__main__":
    main()
