"""MLflow tracking and model registry: the only module of the project that imports mlflow.

Stages open one run each (`stage_run`), log their parameters, per-step metrics (through the
plain `(step, metrics)` callbacks the core accepts), final metrics and artifacts, tagged with the
git commit, the DVC hashes of their inputs and the sensor. Models are registered as pyfunc models
holding state dicts + config (never the shape-fixing pt2 format); each adaptation registers a
`candidate`, promoted to `champion` only when its full-resolution HQNR beats the champion's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import yaml
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHAMPION = "champion"
CANDIDATE = "candidate"
HQNR_TAG = "hqnr"


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else a SQLite store in the project root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"


def configure() -> MlflowClient:
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
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
    configure()
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


class PansharpenerModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper: ``predict({"pan": (H, W), "ms": (B, h, w)}) -> fused (B, H, W)`` in DN."""

    def load_context(self, context) -> None:
        from crossdiff_core.pansharpener import load_pansharpener

        self.model = load_pansharpener(Path(context.artifacts["pansharpener"]))

    def predict(self, context, model_input, params=None):
        pan = np.asarray(model_input["pan"])
        ms = np.asarray(model_input["ms"])
        return self.model.fuse(ms, pan)


class FrozenEncodersModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper of the frozen P2M + M2P encoders.

    ``predict({"ms_up": (N, B, H, W), "pan": (N, 1, H, W)})`` (model range) returns
    ``{"p2m_level0": ..., "m2p_level0": ..., ...}``, the multi-scale feature maps.
    """

    def load_context(self, context) -> None:
        from crossdiff_core.nets.extractor import load_extractor

        self.extractor = load_extractor(Path(context.artifacts["extractor"]))

    def predict(self, context, model_input, params=None):
        import torch

        ms_up = torch.as_tensor(np.asarray(model_input["ms_up"]), dtype=torch.float32)
        pan = torch.as_tensor(np.asarray(model_input["pan"]), dtype=torch.float32)
        with torch.no_grad():
            levels = self.extractor.features(ms_up, pan)
        return {f"{branch}_level{i}": maps.numpy()
                for i, pair in enumerate(levels)
                for branch, maps in zip(("p2m", "m2p"), pair, strict=True)}


def _log_pyfunc(name: str, python_model, artifacts: dict[str, Path], registered_name: str,
                tags: dict[str, str]) -> str:
    """Log a pyfunc model into the active run and register it; returns the new version.

    Each artifact folder is staged under its key's name, so the registered model always holds
    ``artifacts/<key>/`` whatever the source folder was called.
    """
    with tempfile.TemporaryDirectory(prefix="crossdiff-stage-") as staging:
        staged = {}
        for key, folder in artifacts.items():
            staged[key] = str(Path(staging) / key)
            shutil.copytree(folder, staged[key])
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=python_model,
            artifacts=staged,
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
    version = _log_pyfunc("encoders", FrozenEncodersModel(), {"extractor": Path(extractor_dir)},
                          registered, {"sensor": sensor, "git_commit": git_commit()})
    configure().set_registered_model_alias(registered, CHAMPION, version)
    return version


def register_candidate(pansharpener_dir: Path, model_name: str, sensor: str) -> str:
    """Register an adapted pansharpener and give it the `candidate` alias; returns the version."""
    version = _log_pyfunc("pansharpener", PansharpenerModel(),
                          {"pansharpener": Path(pansharpener_dir)}, model_name,
                          {"sensor": sensor, "git_commit": git_commit()})
    configure().set_registered_model_alias(model_name, CANDIDATE, version)
    return version


def champion_hqnr(model_name: str) -> float | None:
    client = configure()
    try:
        champion = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    value = champion.tags.get(HQNR_TAG)
    return float(value) if value is not None else None


def promote_if_better(model_name: str, version: str, hqnr: float) -> dict:
    """Make `version` the champion when its HQNR beats the current champion's; log the decision."""
    client = configure()
    client.set_model_version_tag(model_name, version, HQNR_TAG, repr(float(hqnr)))
    current = champion_hqnr(model_name)
    promoted = current is None or hqnr > current
    if promoted:
        client.set_registered_model_alias(model_name, CHAMPION, version)
    decision = {
        "model": model_name,
        "candidate_version": version,
        "candidate_hqnr": float(hqnr),
        "champion_hqnr_before": current,
        "promoted": promoted,
    }
    client.set_model_version_tag(model_name, version, "promotion_decision",
                                 "promoted to champion" if promoted else "kept as candidate")
    if mlflow.active_run() is not None:
        mlflow.log_dict(decision, "promotion_decision.json")
    return decision


def promote_candidate(model_name: str, hqnr: float) -> dict:
    """Promote the current `candidate` version when its HQNR beats the champion's (see below)."""
    client = configure()
    try:
        candidate = client.get_model_version_by_alias(model_name, CANDIDATE)
    except MlflowException:
        return {"model": model_name, "promoted": False, "reason": "no candidate registered"}
    return promote_if_better(model_name, str(candidate.version), hqnr)


def resolve_model_uri(uri: str, dst: Path) -> Path:
    """Download a registered pansharpener (``models:/<name>@<alias>`` or ``models:/<name>/<v>``)
    into ``dst`` (entry points use ``tasks.models.local_model``, which removes it afterwards).

    Returns the local folder holding the saved pansharpener (state dicts + config).
    """
    configure()
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except MlflowException as err:
        raise ValueError(
            f"cannot resolve {uri!r} in the MLflow registry at {tracking_uri()}: {err.message}. "
            "Check the model name and alias (`champion`, `candidate`), or set MLFLOW_TRACKING_URI."
        ) from None
    folder = local / "artifacts" / "pansharpener"
    if not folder.is_dir():
        raise ValueError(f"{uri!r} is not a CrossDiff pansharpener (no artifacts/pansharpener)")
    return folder
