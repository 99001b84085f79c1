"""One real scene, several settings: what each change does to CrossDiff's Q2n (reduced
resolution) and HQNR (full resolution), beside the best classical method.

Every variant runs the whole chain of ``benchmarks/real_scenes.py`` with its ``--set`` overrides
in a copy of the default workspace, so pretraining already done there is reused (pretraining
resumes, and does nothing when the step count is already reached). Run the default first:

    python benchmarks/real_scenes.py --scenes ikonos            # the default workspace
    python benchmarks/quality_sweep.py --scene ikonos            # every variant below
    python benchmarks/quality_sweep.py --scene ikonos --only spectral_weight_3 feature_t_10

The random-encoder ablation is left out of the variants (it doubles the adaptation time); run
``real_scenes.py --set ...`` for the full table of a chosen setting.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import real_scenes

VARIANTS: dict[str, list[str]] = {
    "default": [],
    "adapt_steps_600": ["adapt.steps=600"],
    "spectral_weight_3": ["adapt.spectral_weight=3.0"],
    "spectral_weight_10": ["adapt.spectral_weight=10.0"],
    "spatial_weight_0.3": ["adapt.spatial_weight=0.3"],
    "spatial_loss_d_s": ["adapt.spatial_loss=d_s"],
    "feature_t_10": ["freeze.t_feature=10"],
    "feature_t_200": ["freeze.t_feature=200"],
    "pretrain_steps_900": ["pretrain.steps=900"],
    "adapt_patch_128": ["adapt.pan_patch=128"],
}
METHODS = "evaluate.methods=[exp,brovey,gsa,mtf_glp_hpm,crossdiff]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", default="ikonos", choices=sorted(real_scenes.SCENES))
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="variants to run")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="an override added to every variant")
    parser.add_argument("--base", type=Path, default=real_scenes.ROOT / "benchmarks" / "out"
                        / "real_scenes", help="where real_scenes.py left the default workspace")
    parser.add_argument("--out", type=Path,
                        default=real_scenes.ROOT / "benchmarks" / "out" / "quality_sweep")
    args = parser.parse_args()
    rows = []
    for name in args.only or list(VARIANTS):
        workspace = args.out / name / args.scene
        shutil.rmtree(workspace, ignore_errors=True)
        base = args.base / args.scene
        if base.is_dir():
            shutil.copytree(base, workspace, ignore=shutil.ignore_patterns("mlflow.db"))
        start = time.perf_counter()
        metrics, _ = real_scenes.run_scene(args.scene, workspace,
                                           [METHODS, *args.set, *VARIANTS[name]])
        seconds = time.perf_counter() - start
        for scene_id, by_method in metrics.items():
            classical = {m: v for m, v in by_method.items() if not m.startswith("crossdiff")}
            rows.append({
                "variant": name, "scene": scene_id, "seconds": round(seconds),
                "q2n": by_method["crossdiff"]["q2n"], "hqnr": by_method["crossdiff"]["hqnr"],
                "best_classical_q2n": max(v["q2n"] for v in classical.values()),
                "best_classical_hqnr": max(v["hqnr"] for v in classical.values()),
            })
        print(f"{name}: {seconds:.0f} s", flush=True)
    print("\n| variant | scene | CrossDiff Q2n | best classical Q2n | CrossDiff HQNR "
          "| best classical HQNR |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['variant']} | {row['scene']} | {row['q2n']:.4f} | "
              f"{row['best_classical_q2n']:.4f} | {row['hqnr']:.4f} | "
              f"{row['best_classical_hqnr']:.4f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.scene}.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
