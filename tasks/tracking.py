"""MLflow tracking and model registry: with tasks/pyfunc_models.py (the logged pyfunc models),
the only modules of the project that import mlflow.

The store is where you work: ``MLFLOW_TRACKING_URI`` when set, else ``mlflow.db`` in the current
folder with run artifacts in ``mlruns/`` beside it (for ``dvc repro``, the project root), never the
folder the package is installed in. Lookups (``resolve_model_uri``, ``evaluated_version``) never
create a store: without one they fail, naming the path and how to make one.

Stages open one run each (`stage_run`), log their parameters, per-step metrics (through the
plain `(step, metrics)` callbacks the core accepts), final metrics and artifacts, tagged with the
git commit, the DVC hashes of their inputs and the sensor. Models are registered as pyfunc models
from code (tasks/pyfunc_models.py, with crossdiff_core as code path) holding state dicts + config
(never the shape-fixing pt2 format), with a signature and an input example; each adaptation
registers a `candidate`; the evaluation promotes the version it scored (found by its content,
never by whatever the `candidate` alias names by then) to `champion` only when its scores beat the
champion's on the same scenes (see ``promote_if_better``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import yaml
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec

from crossdiff_core.infer.provenance import folder_sha256

# The code's own folder, for its git commit only: the store never lives there.
CODE_DIR = Path(__file__).resolve().parent
STORE_NAME = "mlflow.db"
ARTIFACTS_NAME = "mlruns"
# The pyfunc models, logged from code (tasks/pyfunc_models.py: imports no prefect).
PYFUNC_MODELS = CODE_DIR / "pyfunc_models.py"
# What loading a logged model imports (pinned to the versions logging it), so MLflow need not
# load the model in a subprocess to infer them.
MODEL_REQUIREMENTS = ("mlflow", "numpy", "torch", "scipy", "xarray", "dask", "pandas", "pyyaml")
CHAMPION = "champion"
CANDIDATE = "candidate"
HQNR_TAG = "hqnr"
Q2N_TAG = "q2n"
SCORES_TAG = "scores"  # JSON {scene key: {"hqnr": ..., "q2n": ...}} the version was scored on
SCENE_SET_TAG = "scene_set"  # sha256 (16 hex) of the sorted scene keys
CONTENT_TAG = "content_sha256"  # of the registered pansharpener folder
DEFAULT_MARGIN = 0.005
logger = logging.getLogger("crossdiff.promotion")


class StoreNotFoundError(FileNotFoundError):
    """A lookup found no MLflow store (and made none)."""


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else the SQLite store ``mlflow.db`` in the current folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / STORE_NAME}"


def local_store(uri: str | None = None) -> Path | None:
    """The file or folder holding a local store (``sqlite:///`` file, ``file:`` or plain path);
    None for a tracking server."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file://").removeprefix("file:"))
    return None if "://" in uri else Path(uri)


def artifacts_location(experiment: str, uri: str | None = None) -> str | None:
    """Where a new experiment keeps its artifacts: ``mlruns/<experiment>`` beside a SQLite store,
    wherever the command runs (None: the store's own default, e.g. a server's or a file
    store's)."""
    uri = uri or tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", experiment).lstrip(".") or "experiment"
    return (local_store(uri).resolve().parent / ARTIFACTS_NAME / folder).as_uri()


def configure() -> MlflowClient:
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def existing_store() -> MlflowClient:
    """``configure()`` for a lookup: a local store must exist already (a lookup never creates
    one); raises StoreNotFoundError naming it and how to make one."""
    uri = tracking_uri()
    path = local_store(uri)
    if path is not None and not path.exists():
        where = ("MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI")
                 else "the current folder")
        raise StoreNotFoundError(
            f"no MLflow store at {path.resolve()} (tracking URI {uri}, from {where}): run "
            "`dvc repro` in the project folder to create it and register the models, run this "
            "from the folder holding mlflow.db, or set MLFLOW_TRACKING_URI to the store or "
            "tracking server that holds them")
    return configure()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CODE_DIR, capture_output=True,
                             text=True, check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dvc_input_hashes(stage: str, lock_path: Path | None = None) -> dict[str, str]:
    """Hashes of a stage's dependencies as recorded in dvc.lock (empty outside a DVC pipeline)."""
    lock_path = lock_path or Path.cwd() / "dvc.lock"
    if not lock_path.exists():
        return {}
    lock = yaml.safe_load(lock_path.read_text()) or {}
    stages = lock.get("stages", {})
    hashes: dict[str, str] = {}
    # Outputs of upstream stages are fresher than this stage's own (previous) dependency record.
    for entry in stages.values():
        for out in entry.get("outs", []):
            hashes[out["path"]] = out.get("md5", "")
    own = stages.get(stage, {})
    for dep in own.get("deps", []):
        hashes.setdefault(dep["path"], dep.get("md5", ""))
    return hashes


def _flatten(params: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value if not isinstance(value, list | tuple) else json.dumps(value)
    return flat


@contextlib.contextmanager
def stage_run(stage: str, params: dict, experiment: str = "crossdiff",
              sensor: str | None = None, dvc_stage: str | None = None) -> Iterator[str]:
    """Open one MLflow run for a pipeline stage; yields the run id."""
    client = configure()
    location = artifacts_location(experiment)
    if location is not None and client.get_experiment_by_name(experiment) is None:
        with contextlib.suppress(MlflowException):  # made meanwhile by a concurrent stage
            client.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    tags = {"stage": stage, "git_commit": git_commit()}
    if sensor:
        tags["sensor"] = sensor
    for path, digest in dvc_input_hashes(dvc_stage or stage).items():
        tags[f"dvc.{path}"] = digest
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        mlflow.log_params({k: str(v)[:6000] for k, v in _flatten(params).items()})
        yield run.info.run_id


def step_logger(prefix: str = "", run_id: str | None = None) -> Callable[[int, dict], None]:
    """A `(step, metrics)` callback logging per-step metrics to a run (default: the active one).

    It writes through the client with an explicit run id, so it is safe to call from the worker
    threads Prefect runs tasks in (the fluent API's active run is per thread).
    """
    run_id = run_id or mlflow.active_run().info.run_id
    uri = tracking_uri()
    clients: list[MlflowClient] = []  # made on first use, so the callback pickles to Dask workers

    def log(step: int, metrics: dict) -> None:
        if not clients:
            clients.append(MlflowClient(tracking_uri=uri, registry_uri=uri))
        client = clients[0]
        timestamp = int(time.time() * 1000)
        batch = [Metric(f"{prefix}{k}", float(v), timestamp, int(step))
                 for k, v in metrics.items()
                 if isinstance(v, int | float | np.floating) and np.isfinite(v)]
        if batch:
            client.log_batch(run_id, metrics=batch)

    return log


def log_metrics(metrics: dict[str, float], prefix: str = "") -> None:
    mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in metrics.items()
                        if v is not None and np.isfinite(float(v))})


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    path = Path(path)
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path=artifact_path)
    elif path.exists():
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


# --------------------------------------------------------------------------- registry


def _requirements() -> list[str]:
    pins = []
    for name in MODEL_REQUIREMENTS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            pins.append(f"{name}=={importlib.metadata.version(name)}")
    return pins


def _free(shape: tuple[int, ...], fixed: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with every axis not in ``fixed`` free (-1): any size."""
    return tuple(n if axis in fixed else -1 for axis, n in enumerate(shape))


def _tensor_schema(arrays: Mapping[str, np.ndarray], fixed: Mapping[str, tuple[int, ...]]
                   ) -> Schema:
    return Schema([TensorSpec(np.dtype(a.dtype), _free(a.shape, fixed.get(k, ())), k)
                   for k, a in arrays.items()])


def _ramp(low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
    """A smooth float32 image across [low, high] (an input example with structure, not noise)."""
    rows, cols = np.meshgrid(np.linspace(0.0, 1.0, shape[-2]), np.linspace(0.0, 1.0, shape[-1]),
                             indexing="ij")
    image = 0.5 + 0.25 * np.sin(6.0 * rows) * np.cos(4.0 * cols)
    return np.broadcast_to(low + image * (high - low), shape).astype(np.float32)


def pansharpener_example(folder: str | Path) -> tuple[dict[str, np.ndarray], ModelSignature]:
    """A small input example of a saved pansharpener (one window of its size multiple, DN
    between its normalisation's low and high values) and its signature: ``pan`` (H, W) and
    ``ms`` (B, h, w) float32 in, fused (B, H, W) float32 out, any H, W."""
    from crossdiff_core.pansharpener import load_pansharpener

    try:
        model = load_pansharpener(folder)
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{folder} is not a saved CrossDiff pansharpener, which is what the "
                         f"registry holds ({err}): register the adapt stage's output "
                         "(adapt.out, data/models/head)") from err
    norm, side = model.normalisation, model.size_multiple
    ms = np.stack([_ramp(lo, hi, (side // model.ratio,) * 2)
                   for lo, hi in zip(norm.ms_low, norm.ms_high, strict=True)])
    example = {"pan": _ramp(norm.pan_low, norm.pan_high, (side, side)), "ms": ms}
    fused = model.fuse(example["ms"], example["pan"])
    bands = {"ms": (0,)}
    return example, ModelSignature(inputs=_tensor_schema(example, bands),
                                   outputs=_tensor_schema({"fused": fused}, {"fused": (0,)}))


def encoders_example(folder: str | Path) -> tuple[dict[str, np.ndarray], ModelSignature]:
    """A small input example of saved frozen encoders (one window of their size multiple, model
    range) and their signature: ``ms_up`` (N, B, H, W), ``pan`` (N, 1, H, W) in, one
    (N, C, H/2^l, W/2^l) map per branch and level out."""
    from crossdiff_core.nets.extractor import load_extractor
    from tasks.pyfunc_models import encoder_features

    extractor = load_extractor(folder)
    side, bands = extractor.size_multiple, len(extractor.config["bands"])
    example = {"ms_up": _ramp(-0.8, 0.8, (1, bands, side, side)),
               "pan": _ramp(-0.8, 0.8, (1, 1, side, side))}
    features = encoder_features(extractor, example)
    return example, ModelSignature(
        inputs=_tensor_schema(example, {"ms_up": (1,), "pan": (1,)}),
        outputs=_tensor_schema(features, {k: (1,) for k in features}))


def _log_pyfunc(name: str, artifacts: dict[str, Path], registered_name: str,
                tags: dict[str, str], example: Mapping[str, np.ndarray],
                signature: ModelSignature) -> str:
    """Log ``tasks/pyfunc_models.py`` with ``artifacts`` (``pansharpener`` or ``extractor``)
    into the active run with its signature, input example and code (crossdiff_core), register it
    and return the new version.

    Each artifact folder is staged under its key's name, so the registered model always holds
    ``artifacts/<key>/`` whatever the source folder was called.
    """
    import crossdiff_core

    core = Path(crossdiff_core.__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="crossdiff-stage-") as staging:
        staged = {}
        for key, folder in artifacts.items():
            staged[key] = str(Path(staging) / key)
            shutil.copytree(folder, staged[key])
        code = Path(staging) / "code" / core.name
        shutil.copytree(core, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        with _env_default("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"):
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=str(PYFUNC_MODELS),
                artifacts=staged,
                code_paths=[str(code)],
                signature=signature,
                input_example=dict(example),
                pip_requirements=_requirements(),
                registered_model_name=registered_name,
            )
    version = str(info.registered_model_version)
    client = configure()
    for key, value in tags.items():
        client.set_model_version_tag(registered_name, version, key, value)
    return version


def register_encoders(extractor_dir: Path, model_name: str, sensor: str) -> str:
    """Register one sensor's frozen encoders as ``<model_name>-<sensor>``; returns the version."""
    registered = f"{model_name}-{sensor.lower()}"
    version = _log_pyfunc("encoders", {"extractor": Path(extractor_dir)},
                          registered, {"sensor": sensor, "git_commit": git_commit()},
                          *encoders_example(extractor_dir))
    configure().set_registered_model_alias(registered, CHAMPION, version)
    return version


def register_candidate(pansharpener_dir: Path, model_name: str, sensor: str) -> str:
    """Register an adapted pansharpener and give it the `candidate` alias; returns the version.
    The version is tagged with the sha256 of the folder, by which the evaluation finds it."""
    version = _log_pyfunc("pansharpener",
                          {"pansharpener": Path(pansharpener_dir)}, model_name,
                          {"sensor": sensor, "git_commit": git_commit(),
                           CONTENT_TAG: folder_sha256(pansharpener_dir)},
                          *pansharpener_example(pansharpener_dir))
    configure().set_registered_model_alias(model_name, CANDIDATE, version)
    return version


def evaluated_version(model_name: str, folder: str | Path) -> str | None:
    """The registered version holding exactly the pansharpener in ``folder`` (the newest when
    several do: the same model), or None: e.g. the head of an ``adapt.random_encoders: true``
    run, which registers nothing. A lookup: without an MLflow store it raises
    StoreNotFoundError and creates none."""
    digest = folder_sha256(folder)
    client = existing_store()
    try:
        versions = client.search_model_versions(f"name = '{model_name}'")
    except MlflowException:
        return None
    matches = [int(v.version) for v in versions if v.tags.get(CONTENT_TAG) == digest]
    return str(max(matches)) if matches else None


def scene_key(scene_id: str, source_sha256: str, settings: Mapping[str, Any]) -> str:
    """What makes two scores comparable: the scene, the exact source it was ingested from and
    the evaluation settings (crop size, block size, border cut) that scored it."""
    blob = json.dumps({"source": source_sha256, **settings}, sort_keys=True)
    return f"{scene_id}:{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def scene_set(keys) -> str:
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _means(scores: Mapping[str, Mapping[str, Any]], keys) -> tuple[float, float]:
    """Mean HQNR and Q2n over ``keys``; NaN when any of them is missing or not finite."""
    keys = list(keys)
    if not keys:
        return math.nan, math.nan
    values = {index: [scores[k].get(index) for k in keys] for index in (HQNR_TAG, Q2N_TAG)}
    return tuple(float(np.mean([float(v) for v in vals])) if all(map(_finite, vals))
                 else math.nan for vals in values.values())


def _recorded_scores(tags: Mapping[str, str]) -> dict[str, dict[str, Any]] | None:
    try:
        scores = json.loads(tags[SCORES_TAG])
    except (KeyError, TypeError, ValueError):
        return None
    return scores if isinstance(scores, dict) and scores else None


def _lock_path() -> Path:
    """A lock file beside the MLflow store (SQLite file or file store); for a tracking server,
    one per server address in the temporary folder (it guards this machine's evaluations)."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return db.with_name(f"{db.name}.promotion.lock")
    if "://" not in uri or uri.startswith("file:"):
        folder = Path(uri.removeprefix("file://").removeprefix("file:"))
        return folder / ".promotion.lock"
    token = hashlib.sha256(uri.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"crossdiff-promotion-{token}.lock"


@contextlib.contextmanager
def promotion_lock() -> Iterator[None]:
    """Hold the registry's promotion lock: reading the champion, comparing and moving the alias
    happen as one step against any other evaluation doing the same."""
    path = _lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _decide(version: str, scores: Mapping[str, Mapping[str, Any]], champion, margin: float
            ) -> tuple[bool, str, dict[str, Any]]:
    """(promote?, reason, the scores compared) of ``version`` against ``champion`` (None: no
    champion)."""
    hqnr, q2n = _means(scores, scores)
    compared: dict[str, Any] = {"candidate_hqnr": hqnr, "candidate_q2n": q2n,
                                "champion_version": None, "champion_hqnr": None,
                                "champion_q2n": None, "compared_scenes": len(scores)}
    if not (_finite(hqnr) and _finite(q2n)):
        return False, "the candidate's HQNR or Q2n is NaN or missing: never promoted", compared
    if champion is None:
        return True, "no champion yet", compared
    compared["champion_version"] = str(champion.version)
    if str(champion.version) == str(version):
        return False, "already the champion", compared
    recorded = _recorded_scores(champion.tags)
    if recorded is None:
        legacy = champion.tags.get(HQNR_TAG)
        if not _finite(legacy):
            return True, f"the champion v{champion.version} has no valid score", compared
        compared["champion_hqnr"] = float(legacy)
        return False, (f"the champion v{champion.version} was scored before scene sets were "
                       "recorded (HQNR only): not comparable on the same scenes; move the "
                       "champion alias by hand if this version should win"), compared
    common = sorted(set(scores) & set(recorded))
    if not common:
        return False, (f"the champion v{champion.version} was scored on another scene set "
                       f"({len(recorded)} scenes, none in common with these {len(scores)} or "
                       "scored with other evaluation settings): not compared"), compared
    champion_hqnr, champion_q2n = _means(recorded, common)
    hqnr, q2n = _means(scores, common)
    compared.update(candidate_hqnr=hqnr, candidate_q2n=q2n, champion_hqnr=champion_hqnr,
                    champion_q2n=champion_q2n, compared_scenes=len(common))
    where = (f"on the {len(common)} scenes both were scored on" if len(common) < len(scores)
             or len(common) < len(recorded) else f"on the same {len(common)} scenes")
    if not (_finite(champion_hqnr) and _finite(champion_q2n)):
        return True, f"the champion v{champion.version} has no valid score {where}", compared
    if hqnr <= champion_hqnr + margin:
        return False, (f"HQNR {hqnr:.4f} does not beat the champion's {champion_hqnr:.4f} by "
                       f"more than the margin {margin:g} {where}"), compared
    if q2n < champion_q2n - margin:
        return False, (f"Q2n at reduced resolution {q2n:.4f} falls more than the margin "
                       f"{margin:g} below the champion's {champion_q2n:.4f} {where}"), compared
    return True, (f"HQNR {hqnr:.4f} beats the champion's {champion_hqnr:.4f} by more than "
                  f"{margin:g} and Q2n {q2n:.4f} holds (champion {champion_q2n:.4f}) {where}"
                  ), compared


def _tag(value: Any) -> str:
    return "none" if value is None else (repr(float(value)) if isinstance(value, float)
                                         else str(value))


def promote_if_better(model_name: str, version: str, scores: Mapping[str, Mapping[str, Any]],
                      margin: float = DEFAULT_MARGIN) -> dict:
    """Record ``scores`` ({scene key: {"hqnr", "q2n"}}, see ``scene_key``) on ``version`` and
    make it the champion when they beat the champion's on the same scenes.

    Promoted only when every score is finite, and, when there is a champion, on the scenes both
    were scored on (keys in common; none in common: not compared, not promoted) its mean HQNR
    beats the champion's by more than ``margin`` and its mean Q2n at reduced resolution falls
    by no more than ``margin``. The champion is not scored again: a champion scored on other
    scenes is compared on those in common only. A champion without a valid score is replaced by
    any valid candidate. Reading the champion, deciding and moving the alias hold the promotion
    lock. The decision, its reason and both scores are tagged on the version, logged and (with
    an active run) saved as promotion_decision.json; returned as a dict.
    """
    client = configure()
    scores = {str(k): {i: (float(v) if _finite(v) else None) for i, v in s.items()}
              for k, s in scores.items()}
    hqnr, q2n = _means(scores, scores)
    for key, value in {HQNR_TAG: _tag(hqnr), Q2N_TAG: _tag(q2n),
                       SCORES_TAG: json.dumps(scores, sort_keys=True),
                       SCENE_SET_TAG: scene_set(scores), "scene_count": str(len(scores))}.items():
        client.set_model_version_tag(model_name, version, key, value)
    with promotion_lock():
        try:
            champion = client.get_model_version_by_alias(model_name, CHAMPION)
        except MlflowException:
            champion = None
        promoted, reason, compared = _decide(version, scores, champion, margin)
        if promoted:
            client.set_registered_model_alias(model_name, CHAMPION, version)
    decision = {"model": model_name, "candidate_version": str(version), "promoted": promoted,
                "reason": reason, "margin": margin, **compared}
    # Backward-compatible names of the previous decision record.
    decision["champion_hqnr_before"] = compared["champion_hqnr"]
    for key, value in {"promotion_decision": "promoted to champion" if promoted
                       else "kept as candidate",
                       "promotion_reason": reason, "promotion_margin": _tag(margin),
                       "promotion_champion_version": _tag(compared["champion_version"]),
                       "promotion_champion_hqnr": _tag(compared["champion_hqnr"]),
                       "promotion_champion_q2n": _tag(compared["champion_q2n"]),
                       "promotion_candidate_hqnr": _tag(compared["candidate_hqnr"]),
                       "promotion_candidate_q2n": _tag(compared["candidate_q2n"]),
                       "promotion_scenes": str(compared["compared_scenes"])}.items():
        client.set_model_version_tag(model_name, version, key, value)
    _log_decision(decision)
    return decision


def _log_decision(decision: dict) -> None:
    def number(value) -> str:
        return "none" if value is None else f"{value:.4f}"

    logger.info(
        "promotion of %s v%s: %s (%s); candidate HQNR %s Q2n %s, champion v%s HQNR %s Q2n %s, "
        "margin %g, %s scenes", decision["model"], decision["candidate_version"],
        "promoted" if decision["promoted"] else "not promoted", decision["reason"],
        number(decision["candidate_hqnr"]), number(decision["candidate_q2n"]),
        decision["champion_version"], number(decision["champion_hqnr"]),
        number(decision["champion_q2n"]), decision["margin"], decision["compared_scenes"])
    if mlflow.active_run() is not None:
        mlflow.log_dict(decision, "promotion_decision.json")


def promote_evaluated(model_name: str, folder: str | Path,
                      scores: Mapping[str, Mapping[str, Any]],
                      margin: float = DEFAULT_MARGIN) -> dict:
    """Promote the registered version holding the evaluated pansharpener ``folder`` (found by its
    content: ``evaluated_version``) when its ``scores`` beat the champion's (promote_if_better).
    When no version holds it (``adapt.random_encoders: true`` registers none), nothing is
    promoted and no version is tagged."""
    version = evaluated_version(model_name, folder)
    if version is None:
        hqnr, q2n = _means(scores, scores)
        decision = {"model": model_name, "candidate_version": None, "promoted": False,
                    "reason": f"no registered version of {model_name} holds the evaluated model "
                              f"{folder} (adapt.random_encoders: true registers none)",
                    "margin": margin, "candidate_hqnr": hqnr, "candidate_q2n": q2n,
                    "champion_version": None, "champion_hqnr": None, "champion_q2n": None,
                    "champion_hqnr_before": None, "compared_scenes": len(scores)}
        _log_decision(decision)
        return decision
    return promote_if_better(model_name, version, scores, margin)


def resolve_model_uri(uri: str, dst: Path) -> Path:
    """Download a registered pansharpener (``models:/<name>@<alias>`` or ``models:/<name>/<v>``)
    into ``dst`` (entry points use ``tasks.models.local_model``, which removes it afterwards).

    Returns the local folder holding the saved pansharpener (state dicts + config). A lookup:
    without an MLflow store it raises StoreNotFoundError and creates none; it prints nothing
    (no download progress bar unless MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR says so).
    """
    existing_store()
    try:
        with _env_default("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"):
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                             dst_path=str(dst)))
    except MlflowException as err:
        raise ValueError(
            f"cannot resolve {uri!r} in the MLflow registry at {tracking_uri()}: {err.message}. "
            "Check the model name and alias (`champion`, `candidate`), or set MLFLOW_TRACKING_URI."
        ) from None
    folder = local / "artifacts" / "pansharpener"
    if not folder.is_dir():
        raise ValueError(f"{uri!r} is not a CrossDiff pansharpener (no artifacts/pansharpener)")
    return folder


@contextlib.contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    """``name=value`` in the environment meanwhile, unless the user set it."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)
