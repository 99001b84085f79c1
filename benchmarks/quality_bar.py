"""The quality bar: CrossDiff against the reference toolbox's classical methods on its own crops.

For each anchor crop of ../shared/golden (IKONOS, WorldView-3, Landsat-8: anchors_<scene>.npz,
scored by the reference MATLAB toolbox in anchors_given.json) the whole chain runs as `dvc repro`
runs it, with the default params.yaml, in its own workspace: the crop is written as a GRIP-style
.mat (I_PAN, I_MS, sensor, ratio, L; values and dtype as they are, float32 for WorldView-3) and
ingested (the store is checked to equal the crop exactly), then pretrain, freeze, adapt, the
reduced-resolution chain (reduced, reduced_adapt), the random-encoder ablation and evaluate
(every classical baseline, the ablation and CrossDiff) run as ``python -m flows.<stage>``
subprocesses. Evaluation uses the whole crop with the toolbox's protocol (border cut 21, Q2n
blocks 32). Only what depends on the head seed (adapt, reduced_adapt, ablation and evaluate)
reruns for each of ``--seeds``; pretraining and freezing are shared, and the pretraining
checkpoints (the pipeline's and those of the reduced stage under reduced.out) are checked to stay
untouched by the later seeds.

Per scene it prints one table (the toolbox's 15 methods, EXP marked as excluded; the project's
baselines; the ablation and CrossDiff as mean ± sample std over seeds), the verdict on both goals:
(1) CrossDiff's mean HQNR and mean Q2n beat the toolbox's best classical method (EXP excluded;
named, with the margin); (2) CrossDiff beats the random-encoder ablation by at least +0.01 mean
Q2n and is not worse in mean HQNR; then the wall time per scene.

    python benchmarks/quality_bar.py                            # 3 scenes x head seeds 0 1 2
    python benchmarks/quality_bar.py --scenes IKONOS --seeds 0 --out bar.json
    python benchmarks/quality_bar.py --scenes IKONOS --seeds 0 1 --tiny --workdir /tmp/bar
    python benchmarks/quality_bar.py --set adapt.steps=600      # any params.yaml key overridden

Runtime on 2 CPU cores: ``--tiny`` (the pretrain, freeze and adapt values of
tests/params-tiny.yaml: checks the wiring, measures nothing) took 2.5 min of shared stages plus
2.5 min per seed on IKONOS (7 min for two seeds). At the defaults of commit time (pretraining 300
steps per branch, head 200 steps; estimated from stage timings, not measured end to end) expect
~4 min of shared stages and ~7 min per seed (adapt; the evaluation's reduced-resolution chain,
whose pretraining runs with the first seed only; the ablation's two heads; 15 baselines), so
~25 min per scene and ~75 min for three scenes at three seeds. Measured end to end since (commit
after c37ebd2, defaults, 2 cores, a low-priority test run beside it): 34 min for the three
scenes at three seeds (IKONOS 643 s, WV3 690 s, L8 673 s). Every stage also pays Prefect's
start-up (6-26 s) unless PREFECT_API_URL points at a running server.

``--out FILE`` writes ``{scene: {method: {index: {"mean": m, "std": s}}}}`` with the method and
index names of reports/metrics.json. A workspace (``--workdir``/<scene>) keeps its pretraining
between runs; ``--fresh`` deletes it first (needed after changing pretrain or freeze settings).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import real_scenes
import scipy.io
import yaml

from crossdiff_core.io.store import find_scene_stores, open_scene
from crossdiff_core.report.classical import best_classical, is_classical, is_crossdiff
from crossdiff_core.report.ranking import INDEX_LABELS, higher_is_better
from crossdiff_core.sensors import get_sensor

ROOT = real_scenes.ROOT
GOLDEN = ROOT.parent / "shared" / "golden"
SCENES = ("IKONOS", "WV3", "L8")
# The project's sensor for each crop (the toolbox calls Landsat-8 "none": MTF gains 0.3 / 0.15).
SENSORS = {"IKONOS": "IKONOS", "WV3": "WV3", "L8": "Landsat-8"}
# Our index name -> the toolbox's key in anchors_given.json, in table order.
TOOLBOX_KEYS = {
    "q2n": "RR_Q2n",
    "sam": "RR_SAM",
    "ergas": "RR_ERGAS",
    "hqnr": "FR_HQNR",
    "d_lambda_k": "FR_D_lambda_K",
    "d_s": "FR_D_s",
}
CROSSDIFF = "crossdiff"
ABLATION = "crossdiff_random_encoders"
ABLATION_MARGIN = 0.01
SHARED_STAGES = ("ingest", "pretrain", "freeze", "reduced")
TINY_SECTIONS = ("pretrain", "freeze", "adapt")
PATH_KEYS = ("scenes", "out", "encoders")
SEED_STAGES = ("adapt", "reduced_adapt", "ablation", "evaluate")


# --- pure functions: statistics, table, verdicts -------------------------------------------------


def seed_statistics(
    runs: Sequence[Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {index: {"mean", "std"}}}`` over the seeds' ``{method: {index: value}}``: the
    sample standard deviation (ddof 1), 0 for a single seed. Methods and indices keep the first
    run's order; a method or index missing from some run is averaged over the runs that have it."""
    stats: dict[str, dict[str, dict[str, float]]] = {}
    for method in dict.fromkeys(m for run in runs for m in run):
        stats[method] = {}
        for index in dict.fromkeys(i for run in runs for i in run.get(method, {})):
            values = [float(run[method][index]) for run in runs if index in run.get(method, {})]
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            stats[method][index] = {"mean": float(np.mean(values)), "std": std}
    return stats


def means(stats: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """``{method: {index: mean}}`` of ``seed_statistics``' output."""
    return {m: {i: v["mean"] for i, v in by_index.items()} for m, by_index in stats.items()}


def toolbox_scores(given_scene: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """The toolbox's ``{method: {our index: value}}`` from one scene of anchors_given.json (indices
    the toolbox failed to compute are absent)."""
    return {
        method: {index: float(keys[key]) for index, key in TOOLBOX_KEYS.items() if key in keys}
        for method, keys in given_scene.items()
    }


def _cell(value: float | None, std: float | None = None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4f}" if std is None else f"{value:.4f} ± {std:.4f}"


def scene_table(
    scene: str,
    toolbox: Mapping[str, Mapping[str, float]],
    stats: Mapping[str, Mapping[str, Mapping[str, float]]],
    seeds: int,
) -> list[str]:
    """Markdown lines: the toolbox's methods (EXP marked excluded), then ours as mean ± std."""
    header = [
        INDEX_LABELS[i] + (" (RR)" if i in ("q2n", "sam", "ergas") else " (FR)")
        for i in TOOLBOX_KEYS
    ]
    lines = [
        f"### {scene}: toolbox's classical methods and ours (ours: mean ± std over {seeds} "
        "head seed(s))",
        "",
        "| method | " + " | ".join(header) + " |",
        "| --- |" + " ---: |" * len(header),
    ]
    for method, scores in toolbox.items():
        name = f"toolbox {method}" + ("" if is_classical(method) else " (excluded)")
        lines.append(f"| {name} | " + " | ".join(_cell(scores.get(i)) for i in TOOLBOX_KEYS) + " |")
    for method, by_index in stats.items():
        name = method + ("" if is_classical(method) or is_crossdiff(method) else " (excluded)")
        cells = [
            _cell(by_index[i]["mean"], by_index[i]["std"]) if i in by_index else "-"
            for i in TOOLBOX_KEYS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _gain(ours: float, theirs: float, index: str) -> float:
    return ours - theirs if higher_is_better(index) else theirs - ours


def verdicts(
    scene: str,
    toolbox: Mapping[str, Mapping[str, float]],
    stats: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> tuple[list[str], dict[str, bool | None]]:
    """The verdict lines of both goals on one scene, and whether each goal is met (None: cannot
    be judged, e.g. CrossDiff or the ablation was not evaluated)."""
    mean = means(stats)
    lines: list[str] = []
    met: dict[str, bool | None] = {}
    ours = mean.get(CROSSDIFF)
    goal1 = []
    for index in ("hqnr", "q2n"):
        label = INDEX_LABELS[index]
        best = best_classical(toolbox, index)
        if ours is None or index not in ours or best is None:
            goal1.append((None, f"  {label}: cannot be judged (no crossdiff or toolbox value)"))
            continue
        rival, theirs = best
        gain = _gain(ours[index], theirs, index)
        verb = "beats" if gain > 0 else "does NOT beat"
        goal1.append(
            (
                gain > 0,
                f"  {label}: crossdiff mean {ours[index]:.4f} "
                f"± {stats[CROSSDIFF][index]['std']:.4f} {verb} toolbox best {rival} "
                f"{theirs:.4f} ({gain:+.4f})",
            )
        )
    met["beats_toolbox"] = _all_met([ok for ok, _ in goal1])
    lines.append(
        f"{scene} goal 1, beat the toolbox's best classical method (EXP excluded) on mean HQNR "
        f"and Q2n: {_word(met['beats_toolbox'])}"
    )
    lines += [text for _, text in goal1]
    ablation = mean.get(ABLATION)
    goal2 = []
    for index, needed in (("q2n", ABLATION_MARGIN), ("hqnr", 0.0)):
        label = INDEX_LABELS[index]
        if ours is None or ablation is None or index not in ours or index not in ablation:
            goal2.append((None, f"  {label}: cannot be judged (crossdiff or {ABLATION} missing)"))
            continue
        gain = _gain(ours[index], ablation[index], index)
        ok = gain >= needed
        goal2.append(
            (
                ok,
                f"  {label}: crossdiff mean {ours[index]:.4f} vs {ABLATION} {ablation[index]:.4f}"
                f" ({gain:+.4f}, needs >= {needed:+.4f})",
            )
        )
    met["beats_ablation"] = _all_met([ok for ok, _ in goal2])
    lines.append(
        f"{scene} goal 2, beat the random-encoder ablation by >= +{ABLATION_MARGIN} mean Q2n and "
        f"not lose mean HQNR: {_word(met['beats_ablation'])}"
    )
    lines += [text for _, text in goal2]
    project_best = [best_classical(mean, index) for index in ("hqnr", "q2n")]
    if all(project_best):
        (hqnr_method, hqnr), (q2n_method, q2n) = project_best
        lines.append(
            f"{scene} (for reference) the project's own best classical: HQNR {hqnr_method} "
            f"{hqnr:.4f}, Q2n {q2n_method} {q2n:.4f}"
        )
    return lines, met


def _all_met(flags: Sequence[bool | None]) -> bool | None:
    if any(flag is None for flag in flags):
        return None
    return all(flags)


def _word(met: bool | None) -> str:
    return {True: "MET", False: "NOT MET", None: "CANNOT BE JUDGED"}[met]


# --- running the chain ---------------------------------------------------------------------------


def load_crop(scene: str) -> dict:
    """The anchor crop: pan (H, W) and ms (h, w, B) as stored, ratio, toolbox scores."""
    given = json.loads((GOLDEN / "anchors_given.json").read_text())
    with np.load(GOLDEN / f"anchors_{scene}.npz") as crop:
        pan, ms = crop["pan"], crop["ms"]
    return {
        "pan": pan,
        "ms": ms,
        "ratio": int(given["crops"][scene]["ratio"]),
        "toolbox": toolbox_scores(given["scenes"][scene]),
    }


def write_mat(path: Path, crop: dict, sensor: str) -> bool:
    """The crop as a GRIP-style .mat (I_PAN, I_MS at MS resolution, sensor, ratio, L = the
    sensor's bit depth, as ingesting the crop's original source records it; the toolbox's L = 12
    for Landsat only enters its Q_avg). Kept when an identical one exists (a rewrite changes the
    file's hash, which ingest would take for a new source); returns True when written."""
    if path.is_file():
        old = scipy.io.loadmat(path)
        if (
            np.array_equal(old["I_PAN"], crop["pan"])
            and old["I_PAN"].dtype == crop["pan"].dtype
            and np.array_equal(old["I_MS"], crop["ms"])
            and old["I_MS"].dtype == crop["ms"].dtype
            and str(old["sensor"][0]) == sensor
        ):
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        path,
        {
            "I_PAN": crop["pan"],
            "I_MS": crop["ms"],
            "sensor": sensor,
            "ratio": np.array([[crop["ratio"]]], dtype=np.uint8),
            "L": np.array([[get_sensor(sensor).bit_depth]], dtype=np.uint8),
        },
    )
    return True


def check_store(zarr: Path, crop: dict, sensor: str) -> Path:
    """The one store ingested from the crop, checked to hold exactly the crop's values and dtype
    and the expected sensor and ratio (exits otherwise)."""
    stores = find_scene_stores(zarr)
    if len(stores) != 1:
        raise SystemExit(f"{zarr}: expected one ingested store, found {stores}")
    scene = open_scene(stores[0])
    pan, ms = scene.pan.values, np.moveaxis(scene.ms.values, 0, -1)
    problems = []
    for name, stored, given in (("PAN", pan, crop["pan"]), ("MS", ms, crop["ms"])):
        if stored.dtype != given.dtype or stored.shape != given.shape:
            problems.append(
                f"{name} {stored.dtype} {stored.shape} vs crop {given.dtype} {given.shape}"
            )
        elif not np.array_equal(stored, given):
            problems.append(f"{name} values differ in {int((stored != given).sum())} pixels")
    if scene.sensor.name != get_sensor(sensor).name or scene.ratio != crop["ratio"]:
        problems.append(
            f"sensor {scene.sensor.name} ratio {scene.ratio}, expected "
            f"{get_sensor(sensor).name} ratio {crop['ratio']}"
        )
    if problems:
        raise SystemExit(f"{stores[0]} does not equal the crop: {'; '.join(problems)}")
    return stores[0]


def pretraining_state(workspace: Path) -> dict[str, tuple[int, str]]:
    """(mtime_ns, sha256) of every pretraining checkpoint of the workspace: the pipeline's and the
    evaluation's reduced-resolution chain's (a resumed run with nothing to do leaves them as is)."""
    state = {}
    for folder in (workspace / "pretrain", workspace / "reduced" / "pretrain"):
        for checkpoint in sorted(folder.glob("*/checkpoint.pt")):
            digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
            state[str(checkpoint.relative_to(workspace))] = (checkpoint.stat().st_mtime_ns, digest)
    return state


def seed_params(base: dict, workspace: Path, seed: int) -> dict:
    """The workspace's params with the head seed set and the seed's own head, ablation and report
    folders; reduced.out (the evaluation's reduced-resolution Wald pairs, pretraining and encoders,
    the reduced stage's) stays shared, its head is rewritten by each seed's reduced_adapt."""
    params = json.loads(json.dumps(base))
    params["adapt"].update(seed=seed, out=str(workspace / f"seed{seed}" / "head"))
    params["ablation"]["out"] = str(workspace / f"seed{seed}" / "ablation")
    params["evaluate"]["out"] = str(workspace / f"seed{seed}" / "reports")
    return params


def base_params(crop: dict, tiny: bool) -> dict:
    """params.yaml with the toolbox's protocol on the whole crop (no centred sub-crop, 21-pixel
    border cut, 32-pixel Q2n blocks) and, with ``tiny``, the training sections' values of
    tests/params-tiny.yaml."""
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    base["evaluate"].update(max_pan_size=int(max(crop["pan"].shape)), border_cut=21, block_size=32)
    if tiny:
        cheap = yaml.safe_load((ROOT / "tests" / "params-tiny.yaml").read_text())
        for section in TINY_SECTIONS:
            base[section].update({k: v for k, v in cheap[section].items() if k not in PATH_KEYS})
    return base


def run_scene(
    scene: str, workspace: Path, seeds: Sequence[int], overrides: list[str], fresh: bool, tiny: bool
) -> tuple[list[dict], dict[str, float], list[str]]:
    """The chain on one crop: shared stages once, adapt + evaluate per seed. Returns each seed's
    metrics of the crop ``{method: {index: value}}``, the seconds per step and warnings."""
    if fresh:
        shutil.rmtree(workspace, ignore_errors=True)
    crop = load_crop(scene)
    sensor = SENSORS[scene]
    mat = workspace / "input" / f"anchors_{scene}.mat"
    if write_mat(mat, crop, sensor):
        shutil.rmtree(workspace / "zarr", ignore_errors=True)  # a store of an older file
    params = real_scenes.scene_params(base_params(crop, tiny), workspace, mat, None, overrides)
    seconds: dict[str, float] = {}
    warnings: list[str] = []
    runs = []
    for number, seed in enumerate(seeds):
        params_file = workspace / f"params-seed{seed}.yaml"
        params_file.write_text(
            yaml.safe_dump(seed_params(params, workspace, seed), sort_keys=False)
        )
        if number == 0:
            for stage in SHARED_STAGES:
                seconds[stage] = real_scenes.run_stage(scene, stage, params_file, workspace)
                if stage == "ingest":
                    check_store(workspace / "zarr", crop, sensor)
        before = pretraining_state(workspace)
        for stage in SEED_STAGES:
            seconds[f"seed {seed} {stage}"] = real_scenes.run_stage(
                f"{scene} seed {seed}", stage, params_file, workspace
            )
        if number > 0 and not before:
            warnings.append(f"{scene} seed {seed}: no pretraining checkpoint to check reuse with")
        elif number > 0 and pretraining_state(workspace) != before:
            warnings.append(
                f"{scene} seed {seed}: a pretraining checkpoint changed; pretraining was not reused"
            )
        metrics = json.loads((workspace / f"seed{seed}" / "reports" / "metrics.json").read_text())
        if len(metrics) != 1:
            raise SystemExit(f"{scene}: expected one evaluated scene, got {sorted(metrics)}")
        runs.append(next(iter(metrics.values())))
    return runs, seconds, warnings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=SCENES)
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0, 1, 2],
        help="head seeds (adapt.seed); pretraining and freezing are shared",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a params.yaml key (for quick checks)",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "out" / "quality_bar")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="tests/params-tiny.yaml's pretrain, freeze and adapt values (wiring check only)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="delete each scene's workspace first (no pretraining reused)",
    )
    parser.add_argument("--out", type=Path, help="JSON of every method's mean and std per scene")
    args = parser.parse_args()
    summary: dict[str, dict] = {}
    reports = []
    for scene in args.scenes:
        start = time.perf_counter()
        runs, seconds, warnings = run_scene(
            scene, args.workdir / scene, args.seeds, args.set, args.fresh, args.tiny
        )
        wall = time.perf_counter() - start
        stats = seed_statistics(runs)
        summary[scene] = stats
        toolbox = load_crop(scene)["toolbox"]
        lines, _ = verdicts(scene, toolbox, stats)
        split = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
        reports.append(
            [
                *scene_table(scene, toolbox, stats, len(args.seeds)),
                "",
                *lines,
                *(f"WARNING {w}" for w in warnings),
                f"{scene} wall time {wall:.0f} s ({split})",
            ]
        )
        # Each scene's table as soon as it is done, and the JSON so far: a long run that is
        # stopped keeps the scenes it finished.
        print("\n" + "\n".join(reports[-1]), flush=True)
        if args.out:
            write_summary(args.out, summary)
    if len(reports) > 1:
        print("\n\nAll scenes:")
        for report in reports:
            print("\n" + "\n".join(report))
    if args.out:
        print(f"\nwrote {args.out}")


def write_summary(path: Path, summary: dict) -> None:
    """The JSON tables, through a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(summary, indent=2) + "\n")
    partial.replace(path)


if __name__ == "__main__":
    main()
