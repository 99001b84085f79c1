"""The schedule goes through DVC, on scratch git + DVC copies of the project with tiny params:
landed scenes survive `dvc repro -f` and reach the evaluation; more pretrain steps resume under
`dvc repro`, other settings retrain from scratch."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from dvc_project import copy_project, run, set_params, stages_run
from ingest_helpers import landsat_bundle, tar_folder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
LANDED_ID = "LC08_L1TP_020039_20150804_20200908_02_T1"  # landsat_bundle(naming="post")


def test_landed_scene_survives_dvc_repro_force_and_is_evaluated(tmp_path, prefect_server,
                                                                 monkeypatch):
    from flows.landing import landing_flow

    root = tmp_path / "project"
    env = copy_project(root, {"evaluate.methods": ["exp", "crossdiff"]})
    for name in ("PATH", "PREFECT_API_URL", "MLFLOW_TRACKING_URI", "CROSSDIFF_PARAMS",
                 "TQDM_DISABLE"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.chdir(root)
    # Another scene (another id, other pixels, hence another sha256) than the embedded sample.
    bundle, _, _ = landsat_bundle(tmp_path / "bundle", naming="post", ms_shape=(128, 128), seed=5)
    tar_folder(bundle, root / "data" / "landing" / "new-delivery.tar.gz")
    (root / "data" / "landing" / "next.tar.gz.part").write_bytes(b"still uploading")

    assert landing_flow() == ["data/landed/new-delivery.tar.gz"]
    store = root / "data" / "zarr" / "Landsat-8" / f"{LANDED_ID}.zarr"
    assert store.is_dir()
    assert LANDED_ID in json.loads((root / "reports" / "metrics.json").read_text())
    assert (root / "data" / "landing" / "next.tar.gz.part").is_file()

    forced = run(["dvc", "repro", "-f"], root, env, timeout=1200)
    assert "ingest" in stages_run(forced.stdout)
    assert store.is_dir()
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert {LANDED_ID, "LC80200392015216LGN00"} <= set(metrics)
    assert "crossdiff" in metrics[LANDED_ID]
    assert stages_run(run(["dvc", "repro"], root, env).stdout) == []


def _losses(root: Path, branch: str = "p2m") -> list[dict]:
    with open(root / "data" / "models" / "pretrain" / branch / "losses.csv") as handle:
        return list(csv.DictReader(handle))


def test_more_pretrain_steps_resume_under_dvc_repro(tmp_path, prefect_server):
    root = tmp_path / "project"
    env = copy_project(root, {"pretrain.steps": 6, "pretrain.checkpoint_every": 3})
    env["PREFECT_LOGGING_LEVEL"] = "INFO"  # the stage's log says whether it resumed
    first = run(["dvc", "repro", "pretrain"], root, env)
    assert stages_run(first.stdout) == ["ingest", "pretrain"]
    six = _losses(root)
    assert len(six) == 6

    set_params(root, {"pretrain.steps": 12})
    resumed = run(["dvc", "repro", "pretrain"], root, env)
    output = resumed.stdout + resumed.stderr
    assert stages_run(resumed.stdout) == ["pretrain"]
    assert "p2m: resumed from step 6" in output and "m2p: resumed from step 6" in output
    twelve = _losses(root)
    assert len(twelve) == 12 and twelve[:6] == six

    set_params(root, {"pretrain.lr": 1e-3})
    fresh = run(["dvc", "repro", "pretrain"], root, env)
    output = fresh.stdout + fresh.stderr
    assert "p2m: trained from scratch, the checkpoint could not be resumed" in output
    assert "lr: checkpoint 0.0003 vs now 0.001" in output
    again = _losses(root)
    assert len(again) == 12 and again[1:] != twelve[1:]  # step 1 precedes any update
    assert stages_run(run(["dvc", "repro", "pretrain"], root, env).stdout) == []
