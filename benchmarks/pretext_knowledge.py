"""What the P2M branch learned in pretraining, measured where the answer is known.

A P2M UNet denoises the upsampled MS given the PAN, so its one-step estimate of the clean image
from the upsampled MS noised at step t, x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t), is a
pansharpened image of its own. On the Wald copy of a development crop it is scored against the
reference (Q2n and SAM, the toolbox protocol), beside EXP (the upsampled MS itself). A branch that
learned how the PAN's detail carries into the bands improves on EXP; one that learned only
smooth MS does not. The UNets are the reduced-resolution ones that
``benchmarks/quality_ablation.py`` pretrains on the Wald copy (cached under ``--work``, trained
here when missing), so they never saw the reference:

    python benchmarks/pretext_knowledge.py --crops ikonos_dev l8_dev
    python benchmarks/pretext_knowledge.py --crops l8_dev --set pretrain.pretext=matched_scale

``--set`` takes quality_ablation.py's overrides; the noise is left out (x_t = sqrt(a_t) x0, the
extractor's default reading) so the estimate is deterministic.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import quality_ablation
import torch

from crossdiff_core.degrade import interp23tap
from crossdiff_core.diffusion import GaussianDiffusion, make_schedule
from crossdiff_core.evaluation import TOOLBOX_BORDER_CUT, score_reduced
from crossdiff_core.nets.unet import ConditionalUNet, load_unet, read_unet_config
from crossdiff_core.scaling import Normalisation

TIMESTEPS = (10, 50, 200, 400)


@torch.no_grad()
def one_step_estimate(model: ConditionalUNet, diffusion: GaussianDiffusion, ms_up: torch.Tensor,
                      pan: torch.Tensor, t: int) -> torch.Tensor:
    """The P2M UNet's clean-image estimate from ``ms_up`` scaled to step t without noise, given
    ``pan``; tensors (N, C, H, W) in the networks' range."""
    steps = torch.full((ms_up.shape[0],), t, dtype=torch.long)
    x_t = diffusion.q_sample(ms_up, steps, torch.zeros_like(ms_up))
    return diffusion.predict_x0(x_t, steps, model(x_t, steps, pan))


def crop_rows(crop: str, overrides: list[str], work: Path, timesteps: tuple[int, ...]):
    """[(label, Q2n, SAM)]: EXP, then the one-step estimate at each of ``timesteps``."""
    params = quality_ablation.variant_params(overrides)
    store = quality_ablation.prepared_stores(crop, work)["reduced"]
    folder = quality_ablation.pretrained_encoders(store, params, work).parent / "pretrain" / "p2m"
    full, reference, ms_lr, pan_lr = quality_ablation.wald_arrays(crop, work)
    extra = read_unet_config(folder)["extra"]
    norm = Normalisation.from_dict(extra["normalisation"])
    model = load_unet(folder).eval()
    diffusion = GaussianDiffusion(make_schedule(extra["schedule"], extra["timesteps"]))
    ms_up = interp23tap(ms_lr, full.ratio)
    if any(side % model.size_multiple for side in ms_up.shape[-2:]):
        raise SystemExit(f"{crop}: the Wald copy's PAN grid {ms_up.shape[-2:]} is not a "
                         f"multiple of {model.size_multiple}")
    ms_model = torch.from_numpy(norm.ms_to_model(ms_up)).float()[None]
    pan_model = torch.from_numpy(norm.pan_to_model(pan_lr)).float()[None, None]

    def scored(label: str, fused: np.ndarray) -> tuple[str, float, float]:
        scores = score_reduced(reference, fused, full.ratio, border_cut=TOOLBOX_BORDER_CUT)
        return label, float(scores["q2n"]), float(scores["sam"])

    rows = [scored("EXP (the upsampled MS)", ms_up)]
    for t in timesteps:
        estimate = one_step_estimate(model, diffusion, ms_model, pan_model, t)[0].double().numpy()
        rows.append(scored(f"P2M one-step estimate, t = {t}", norm.ms_from_model(estimate)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--crops", nargs="+", default=["ikonos_dev", "l8_dev"])
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="an override of params.yaml, as quality_ablation.py takes it")
    parser.add_argument("--timesteps", nargs="+", type=int, default=list(TIMESTEPS))
    parser.add_argument("--work", type=Path, default=quality_ablation.DEFAULT_WORK)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    label = " ".join(args.set) or "default settings"
    for crop in args.crops:
        print(f"\n{crop} (Wald copy), P2M pretrained with {label}")
        print("| image | Q2n | SAM |")
        print("| --- | ---: | ---: |")
        for name, q2n, sam in crop_rows(crop, args.set, args.work, tuple(args.timesteps)):
            print(f"| {name} | {q2n:.4f} | {sam:.3f} |", flush=True)


if __name__ == "__main__":
    main()
