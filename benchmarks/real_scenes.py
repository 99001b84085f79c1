"""Every method on the real scenes beside the project, at the default parameters (params.yaml).

For each scene the whole chain runs in its own workspace, exactly as `dvc repro` runs it on the
embedded sample: ingest, pretrain, freeze, adapt, evaluate (baselines, CrossDiff and the
random-encoder ablation; at reduced resolution the CrossDiff models are pretrained and adapted on
the Wald-degraded pair only). The table gives Q2n, SAM, ERGAS (reduced resolution) and HQNR, QNR,
D_rho (full resolution) for every method, best marked with *.

    python benchmarks/real_scenes.py                    # IKONOS and WorldView-3 from ../shared/data
    python benchmarks/real_scenes.py --scenes ikonos    # one scene
    python benchmarks/real_scenes.py --set adapt.steps=100   # any params.yaml key overridden
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SCENES = {
    "ikonos": {"source": SHARED / "ikonos" / "imgIK.mat", "sensor": None},
    "worldview3": {"source": SHARED / "worldview3", "sensor": "WV3"},
    "landsat8": {"source": ROOT / "data" / "raw" / "LC80200392015216LGN00.tar.gz", "sensor": None},
}
STAGES = ("ingest", "pretrain", "freeze", "adapt", "reduced", "reduced_adapt", "ablation",
          "evaluate")
HIGHER_IS_BETTER = {"q2n": True, "sam": False, "ergas": False, "hqnr": True, "qnr": True,
                    "d_rho": False}


def scene_params(base: dict, workspace: Path, source: Path, sensor: str | None,
                 overrides: list[str]) -> dict:
    params = json.loads(json.dumps(base))
    zarr = str(workspace / "zarr")
    params["ingest"].update(sources=[str(source)], sensor=sensor, out=zarr)
    params["pretrain"].update(scenes=[zarr], out=str(workspace / "pretrain"), progress=False)
    params["freeze"]["out"] = str(workspace / "encoders")
    params["adapt"].update(scenes=[zarr], out=str(workspace / "head"))
    params["reduced"]["out"] = str(workspace / "reduced")
    params["ablation"]["out"] = str(workspace / "ablation")
    params["evaluate"].update(scenes=[zarr], out=str(workspace / "reports"))
    for override in overrides:
        key, value = override.split("=", 1)
        section, name = key.split(".", 1)
        params[section][name] = yaml.safe_load(value)
    return params


def run_scene(name: str, workspace: Path, overrides: list[str]) -> tuple[dict, dict[str, float]]:
    spec = SCENES[name]
    if not Path(spec["source"]).exists():
        raise SystemExit(f"{spec['source']}: scene not found (the real scenes live in "
                         "../shared/data beside the project)")
    workspace.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = scene_params(base, workspace, Path(spec["source"]), spec["sensor"], overrides)
    params_file = workspace / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    seconds = {stage: run_stage(name, stage, params_file, workspace) for stage in STAGES}
    metrics = json.loads((workspace / "reports" / "metrics.json").read_text())
    return metrics, seconds


def run_stage(name: str, stage: str, params_file: Path, workspace: Path) -> float:
    """Run ``python -m flows.<stage>`` as `dvc repro` does, with ``params_file`` as params.yaml and
    the workspace's own MLflow database; returns its wall time in seconds (exits on failure)."""
    env = {**os.environ, "CROSSDIFF_PARAMS": str(params_file), "TQDM_DISABLE": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", f"flows.{stage}"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name}: stage {stage} failed:\n{done.stderr[-3000:]}")
    print(f"  {name}: {stage} {seconds:.0f} s", flush=True)
    return seconds


def print_table(scene_id: str, by_method: dict[str, dict[str, float]]) -> None:
    best = {}
    for index, higher in HIGHER_IS_BETTER.items():
        values = [v[index] for v in by_method.values()]
        best[index] = max(values) if higher else min(values)
    print(f"\n### {scene_id}\n")
    print("| method | Q2n (RR) | SAM (RR) | ERGAS (RR) | HQNR (FR) | QNR (FR) | D_rho (FR) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for method, values in by_method.items():
        cells = [f"{values[i]:.4f}{'*' if values[i] == best[i] else ''}"
                 for i in HIGHER_IS_BETTER]
        print(f"| {method} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=["ikonos", "worldview3"],
                        choices=sorted(SCENES))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "real_scenes")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a params.yaml key for every scene")
    args = parser.parse_args()
    results = {}
    for name in args.scenes:
        metrics, seconds = run_scene(name, args.out / name, args.set)
        results[name] = {"metrics": metrics, "seconds": seconds}
    for name, result in results.items():
        for scene_id, by_method in result["metrics"].items():
            print_table(f"{name} ({scene_id})", by_method)
        total = sum(result["seconds"].values())
        split = ", ".join(f"{k} {v:.0f} s" for k, v in result["seconds"].items())
        print(f"\nwall time {total:.0f} s ({split})")
    (args.out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
