"""Make the encoders the project ships (``pretrain.init: shipped``) with its own pretraining code.

Two steps, so that the heavy one can run on a machine with a GPU and nothing but torch, numpy,
xarray and zarr:

    python benchmarks/ship_encoders.py corpus ikonos l8 --out .gpu/corpus
    python benchmarks/ship_encoders.py train --corpus .gpu/corpus --seconds 420 --out shipped

``train --scenes l8 --pretexts matched_scale --set augment=dihedral`` remakes one pair only, with
any pretrain setting over params.yaml's (recorded in ``record.json``).

``corpus`` writes each sensor's corpus (``benchmarks/dev_corpus.py``: the scene outside both its
anchor crop and its development crop, at its original scale and as its Wald-reduced copy) as
scene stores. ``train`` pretrains both branches of every (sensor, pretext) pair in parallel
processes (``crossdiff_core.train.pretrain.train_branch``, the code of the ``pretrain`` stage) with
params.yaml's pretrain section and the larger batch below, for as many steps as ``--seconds``
allows: each run first trains ``--probe-steps`` steps, measures its rate, then resumes to the
step count that fits the rest of its time. It writes ``<out>/<sensor>/<pretext>/{p2m,m2p}/``
(config.json, weights.pt, losses.csv, diagnostics.json; the checkpoint is left out) and
``record.json``: the settings, the corpus (scene ids and source sha256; ``sources``, the scene it
was cut from as ingestion hashes it), steps, wall time, device,
torch version and commit. Copy the folders into ``crossdiff_core/shipped_encoders/``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# Larger than the CPU default (8 patches of 64 px); 64 px is the largest patch the Wald-reduced
# IKONOS corpus pieces (96 x 320 and 224 x 96 PAN px) hold.
SETTINGS = {"pan_patch": 64, "batch_size": 64, "ema_decay": 0.999, "num_workers": 2,
            "deterministic": False, "progress": False, "sample_steps": 20, "threads": 1}
KEEP = ("config.json", "weights.pt", "losses.csv", "diagnostics.json")


def write_corpus(scenes: list[str], out: Path) -> None:
    from dev_corpus import corpus_source, write_corpus_stores

    for scene in scenes:
        sensor, ratio, stores = write_corpus_stores(scene, out / scene / "stores")
        relative = [str(Path(store).relative_to(out)) for store in stores]
        (out / scene / "corpus.json").write_text(json.dumps(
            {"sensor": sensor, "ratio": ratio, "stores": relative,
             "source": corpus_source(scene)}, indent=2))
        print(f"{scene}: {len(stores)} stores ({sensor}, ratio {ratio})", flush=True)


def _train_job(job: dict) -> dict:
    """One branch of one (sensor, pretext): probe, size the step count, train, keep the files."""
    from crossdiff_core.train.config import PretrainConfig
    from crossdiff_core.train.pretrain import train_branch

    started = time.monotonic()
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["pretrain"]
    settings = {key: value for key, value in section.items()
                if key not in ("scenes", "out", "p2m", "m2p")}
    # From scratch whatever params.yaml's init says: these runs make the shipped pairs.
    settings.update(SETTINGS, pretext=job["pretext"], device=job["device"], seed=0,
                    init="scratch")
    settings.update(job["overrides"])
    step_seconds: list[float] = []

    def run(steps: int) -> object:
        config = PretrainConfig.from_params(
            settings, job["branch"], scenes=job["stores"], out=job["work"], steps=steps,
            checkpoint_every=min(steps, 500),
        )
        return train_branch(config, on_step=lambda step, m: step_seconds.append(m["step_s"]))

    run(job["probe_steps"])
    warm = step_seconds[5:] or step_seconds
    rate = len(warm) / sum(warm)
    left = job["seconds"] - (time.monotonic() - started) - job["reserve_s"]
    steps = max(job["probe_steps"], int(left * rate * 0.9) // 100 * 100)
    result = run(steps)
    return {"branch": job["branch"], "steps": result.steps, "final_loss": result.final_loss,
            "steps_per_s_probe": rate, "wall_s": time.monotonic() - started,
            "settings": {**settings, "steps": steps}}


def parse_overrides(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pretrain settings (values read as YAML), checked and typed by the pipeline's
    own params validation so that a typo fails before any process starts."""
    from crossdiff_core.config import ConfigError
    from flows.params import validate

    raw = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise SystemExit(f"--set {pair!r}: use KEY=VALUE with a pretrain key")
        if key in ("pretext", "device"):
            raise SystemExit(f"--set {pair!r}: {key} has its own option or is fixed here")
        raw[key] = yaml.safe_load(value)
    try:
        validated = validate("pretrain", raw)
    except ConfigError as error:
        raise SystemExit(f"--set: {error}") from None
    return {key: getattr(validated, key) for key in raw}


def train(corpus: Path, out: Path, work: Path, seconds: float, probe_steps: int, device: str,
          commit: str, sensors: list[str], pretexts: list[str] | None = None,
          overrides: dict | None = None) -> None:
    import torch

    from crossdiff_core.train.config import PRETEXTS

    jobs = []
    pretexts = list(pretexts or PRETEXTS)
    for scene in sensors:
        described = json.loads((corpus / scene / "corpus.json").read_text())
        stores = [str(corpus / store) for store in described["stores"]]
        for pretext in pretexts:
            for branch in ("p2m", "m2p"):
                jobs.append({"scene": scene, "sensor": described["sensor"],
                             "source": described.get("source"), "pretext": pretext,
                             "branch": branch, "stores": stores, "device": device,
                             "work": str(work / scene / pretext), "seconds": seconds,
                             "probe_steps": probe_steps, "reserve_s": 25.0,
                             "overrides": dict(overrides or {})})
    # Not multiprocessing.Pool: its daemonic workers may not start DataLoader workers.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(jobs), mp_context=context) as pool:
        results = list(pool.map(_train_job, jobs))
    from crossdiff_core.train.pretrain import _training_data

    for scene in sensors:
        for pretext in pretexts:
            target = out / scene / pretext
            ours = [(job, result) for job, result in zip(jobs, results, strict=True)
                    if job["scene"] == scene and job["pretext"] == pretext]
            for job, _ in ours:
                source = Path(job["work"]) / job["branch"]
                (target / job["branch"]).mkdir(parents=True, exist_ok=True)
                for name in KEEP:
                    if (source / name).is_file():
                        shutil.copy2(source / name, target / job["branch"] / name)
            record = {
                "made_by": "benchmarks/ship_encoders.py train (crossdiff_core.train.pretrain)",
                "commit": commit, "device": _device_name(ours[0][0]["device"]),
                "torch": torch.__version__,
                "corpus": _training_data([Path(s) for s in ours[0][0]["stores"]]),
                "corpus_note": "the scene outside its anchor (evaluation) crop and its "
                               "development crop, original scale and Wald-reduced copy "
                               "(benchmarks/dev_corpus.py)",
                # pretrain.init: shipped trains a run on these scenes from scratch
                "sources": [ours[0][0]["source"]] if ours[0][0]["source"] else [],
                "branches": {job["branch"]: result for job, result in ours},
            }
            (target / "record.json").write_text(json.dumps(record, indent=2, default=str))
            print(scene, pretext, {job["branch"]: (result["steps"], round(result["final_loss"], 4),
                                                   round(result["wall_s"]))
                                   for job, result in ours}, flush=True)


def _device_name(device: str) -> str:
    """The GPU's name when the runs used one, else the CPU's architecture and core count."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def plot_losses(shipped: Path) -> list[Path]:
    """``losses.png`` beside each ``record.json`` under ``shipped``: both branches' training loss
    (a running mean over 100 steps) against the step, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    written = []
    for record in sorted(shipped.glob("*/*/record.json")):
        folder = record.parent
        figure, axes = plt.subplots(figsize=(6, 3.5))
        for branch in ("p2m", "m2p"):
            losses = pd.read_csv(folder / branch / "losses.csv")
            smooth = losses["loss"].rolling(100, min_periods=1).mean()
            axes.plot(losses["step"], smooth, label=f"{branch} ({len(losses)} steps)")
        axes.set_yscale("log")
        axes.set_xlabel("step (batch of 64 patches)")
        axes.set_ylabel("noise MSE, running mean of 100")
        axes.set_title(f"{folder.parent.name} {folder.name}: shipped encoders' pretraining")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(folder / "losses.png", dpi=80)
        plt.close(figure)
        written.append(folder / "losses.png")
    return written


def main() -> None:
    from crossdiff_core.train.config import PRETEXTS

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    corpus = commands.add_parser("corpus", help="write the corpus stores")
    corpus.add_argument("scenes", nargs="+", choices=["ikonos", "l8"])
    corpus.add_argument("--out", type=Path, required=True)
    training = commands.add_parser("train", help="pretrain every branch, sensor and pretext")
    training.add_argument("--corpus", type=Path, required=True)
    training.add_argument("--scenes", nargs="+", default=["ikonos", "l8"])
    training.add_argument("--out", type=Path, required=True)
    training.add_argument("--work", type=Path, default=Path("/tmp/ship_encoders"))
    training.add_argument("--seconds", type=float, default=420.0,
                          help="wall time of each run, all runs at once")
    training.add_argument("--probe-steps", type=int, default=40)
    training.add_argument("--device", default="auto")
    training.add_argument("--commit", default="unknown")
    training.add_argument("--pretexts", nargs="+", choices=PRETEXTS,
                          help="the pretexts to train (default: both)")
    training.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="a pretrain setting over params.yaml and the batch above, e.g. "
                               "augment=dihedral, lr=1e-4, or init=FOLDER with "
                               "finetune_steps=null to go on from a pair (recorded in "
                               "record.json)")
    curves = commands.add_parser("curves", help="plot each shipped pair's loss curves")
    curves.add_argument("shipped", type=Path, nargs="?",
                        default=ROOT / "crossdiff_core" / "shipped_encoders")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    if args.command == "corpus":
        write_corpus(args.scenes, args.out)
    elif args.command == "curves":
        for path in plot_losses(args.shipped):
            print(path)
    else:
        train(args.corpus, args.out, args.work, args.seconds, args.probe_steps, args.device,
              args.commit, args.scenes, args.pretexts, parse_overrides(args.set))


if __name__ == "__main__":
    main()
