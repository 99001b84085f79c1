"""Do the shipped encoders know their corpus better than ground they never saw?

A pretrained UNet that fits its corpus better than unseen ground of the same scene has a
generalisation gap, which more pretraining data or patch augmentation (``pretrain.augment:
dihedral``) can close; one that does about as well on both has learned what it can at its size
and length, and more of the same data will not change its features. This script measures that
gap for each shipped pair (``crossdiff_core/shipped_encoders/<sensor>/<pretext>``): each
branch's denoising loss (the pretext loss, the mean squared error of the predicted noise) on the
same number of patches of its corpus (``benchmarks/dev_corpus.py``: the scene outside its anchor
and development crops, at both scales) and of its development crop (the crop and its Wald copy,
``benchmarks/quality_ablation.py``), at a few timesteps, with fixed noise. Patches are read with
the pair's own stored normalisation, at the pair's pretext and patch size.

    python benchmarks/pretext_generalisation.py
    python benchmarks/pretext_generalisation.py --pairs l8 --patches 512
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import quality_ablation  # noqa: E402
from dev_corpus import write_corpus_stores  # noqa: E402

# corpus scene (dev_corpus.py) -> (shipped sensor folder, development crop)
PAIRS = {"ikonos": ("IKONOS", "ikonos_dev"), "l8": ("Landsat-8", "l8_dev")}
TIMESTEPS = (50, 200, 500)


def corpus_stores(scene: str, work: Path) -> list[str]:
    """The corpus's scene stores (written once under ``work``/corpus/<scene>)."""
    folder = work / "corpus" / scene
    listing = folder / "stores.json"
    if not listing.is_file():
        _, _, stores = write_corpus_stores(scene, folder / "stores")
        listing.write_text(json.dumps(stores))
    return json.loads(listing.read_text())


@torch.no_grad()
def denoising_losses(folder: Path, stores: list[str], patches: int,
                     timesteps: tuple[int, ...]) -> list[float]:
    """Mean squared error of the noise the UNet in ``folder`` predicts, on ``patches`` patches of
    ``stores`` noised at each of ``timesteps`` (fixed patch positions and noise)."""
    from crossdiff_core.diffusion import GaussianDiffusion, make_schedule
    from crossdiff_core.nets.unet import load_unet, read_unet_config
    from crossdiff_core.scaling import Normalisation
    from crossdiff_core.train.patches import PatchDataset, branch_inputs, patch_batch

    unet = load_unet(folder)
    extra = read_unet_config(folder)["extra"]
    dataset = PatchDataset(stores, int(extra["pan_patch"]), seed=7, length=patches,
                           normalisation=Normalisation.from_dict(extra["normalisation"]),
                           pretext=extra.get("pretext", "original"))
    x0, condition = branch_inputs(extra["branch"], patch_batch(dataset, 0, patches))
    diffusion = GaussianDiffusion(make_schedule(extra["schedule"], int(extra["timesteps"])))
    generator = torch.Generator().manual_seed(0)
    losses = []
    for t in timesteps:
        noise = torch.randn(x0.shape, generator=generator)
        steps = torch.full((patches,), t)
        predicted = unet(diffusion.q_sample(x0, steps, noise), steps, condition)
        losses.append(float(((predicted - noise) ** 2).mean()))
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=sorted(PAIRS))
    parser.add_argument("--pretext", default="matched_scale",
                        help="which shipped pair of each sensor (original | matched_scale)")
    parser.add_argument("--patches", type=int, default=256, help="patches per image set")
    parser.add_argument("--timesteps", nargs="+", type=int, default=list(TIMESTEPS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    parser.add_argument("--work", type=Path, default=quality_ablation.DEFAULT_WORK)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    steps = " / ".join(f"t={t}" for t in args.timesteps)
    print(f"| pair | branch | corpus loss ({steps}) | development crop | crop / corpus |")
    print("| --- | --- | --- | --- | --- |")
    for scene in args.pairs:
        sensor, crop = PAIRS[scene]
        pair = ROOT / "crossdiff_core" / "shipped_encoders" / sensor / args.pretext
        if not pair.is_dir():
            raise SystemExit(f"{pair} not found: no {args.pretext} pair ships for {sensor}")
        seen = corpus_stores(scene, args.work)
        prepared = quality_ablation.prepared_stores(crop, args.work)
        unseen = [prepared["full"], prepared["reduced"]]
        for branch in ("p2m", "m2p"):
            on_corpus = denoising_losses(pair / branch, seen, args.patches, tuple(args.timesteps))
            on_crop = denoising_losses(pair / branch, unseen, args.patches, tuple(args.timesteps))
            ratios = [c / s for c, s in zip(on_crop, on_corpus, strict=True)]
            print(f"| {sensor} {args.pretext} | {branch.upper()} | "
                  f"{' / '.join(f'{v:.4f}' for v in on_corpus)} | "
                  f"{' / '.join(f'{v:.4f}' for v in on_crop)} | "
                  f"{' / '.join(f'{v:.2f}' for v in ratios)} |", flush=True)


if __name__ == "__main__":
    main()
