"""Experiment (issue 11): standardise every frozen feature channel before the fusion head.

Each channel of each level and branch is shifted and scaled to mean 0, std 1 over the head's
calibration patches (``adapt.calibration_patches`` patches of the scene, the ones that fix the
random twin's GroupNorm statistics), for the pretrained encoders and for their random twins
alike. The statistics are computed when the head is built and reused when it fuses, in this
process (and in ``<work>/feature_statistics.pt``, so cached heads fuse as they were trained):
an in-process patch of ``FrozenExtractor.features`` to measure the idea with
``quality_ablation.run_variant``, not a setting the pipeline can save yet.

    python benchmarks/feature_standardisation.py --crop ikonos_dev --seeds 0 1 \
        --work /tmp/std --set adapt.spectral_weight=15

Pretraining is cached under ``--work`` as in quality_ablation.py (copy its ``encoders/`` and
``stores/`` there to reuse them). Heads are cached too: use a work folder of its own, never one
of quality_ablation.py, whose cached heads were trained on plain features.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_ablation  # noqa: E402

import crossdiff_core.train.adapt as adapt_module  # noqa: E402
from crossdiff_core.nets.extractor import FrozenExtractor  # noqa: E402
from crossdiff_core.train.patches import calibration_batches  # noqa: E402

_STATISTICS: dict[float, list[tuple[torch.Tensor, ...]]] = {}
_statistics_file: Path | None = None  # where they are kept between runs (set by main)
_plain_features = FrozenExtractor.features
_plain_build = adapt_module.build_pansharpener


def _state_key(extractor: FrozenExtractor) -> float:
    """Identifies an extractor by its weights and statistics (the same after save and load).
    Computed once per extractor: its weights are frozen, and features() runs every step."""
    key = getattr(extractor, "_standardisation_key", None)
    if key is None:
        key = round(float(sum(t.double().sum() for t in extractor.state_dict().values())), 4)
        extractor._standardisation_key = key
    return key


def _standardised_features(self, ms_up, pan, origin=(0, 0)):
    maps = _plain_features(self, ms_up, pan, origin)
    statistics = _STATISTICS.get(_state_key(self))
    if statistics is None:
        return maps
    return [
        ((p2m - p2m_mean) / p2m_std, (m2p - m2p_mean) / m2p_std)
        for (p2m, m2p), (p2m_mean, p2m_std, m2p_mean, m2p_std) in zip(
            maps, statistics, strict=True)
    ]


def _build_with_statistics(dataset, extractor, config, *rest):
    model = _plain_build(dataset, extractor, config, *rest)
    frozen = model.extractor
    key = _state_key(frozen)
    _STATISTICS.pop(key, None)
    maps = [_plain_features(frozen, ms_up, pan)
            for ms_up, pan in calibration_batches(dataset, config.calibration_patches)]
    statistics = []
    for level in range(len(maps[0])):
        row: list[torch.Tensor] = []
        for branch in (0, 1):
            values = torch.cat([m[level][branch] for m in maps])
            row += [values.mean(dim=(0, 2, 3), keepdim=True),
                    values.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)]
        statistics.append(tuple(row))
    _STATISTICS[key] = statistics
    if _statistics_file is not None:
        torch.save(_STATISTICS, _statistics_file)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crop", default="ikonos_dev")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    global _statistics_file
    _statistics_file = args.work / "feature_statistics.pt"
    if _statistics_file.is_file():
        _STATISTICS.update(torch.load(_statistics_file))
    FrozenExtractor.features = _standardised_features
    adapt_module.build_pansharpener = _build_with_statistics
    results = quality_ablation.run_variant(args.crop, args.set, args.seeds, args.work)
    print("| crop | overrides | method | Q2n | SAM | HQNR | D_s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for method, indices in results.items():
        mean = {k: float(np.mean(v)) for k, v in indices.items()}
        print(f"| {args.crop} | {' '.join(args.set) or 'none'} | {method} | {mean['q2n']:.4f} | "
              f"{mean['sam']:.3f} | {mean['hqnr']:.4f} | {mean['d_s']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
