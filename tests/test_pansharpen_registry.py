"""A registry address (models:/<name>@champion) works through every entry point of whole-scene
pansharpening: the flow's ``python -m flows.pansharpen`` and ``crossdiff pansharpen``. The model is
downloaded once, loaded once and its temporary download removed."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from typer.testing import CliRunner

from crossdiff_core.config import PansharpenParams
from crossdiff_core.nets.extractor import load_extractor
from crossdiff_core.pansharpener import save_pansharpener
from crossdiff_core.synthetic import write_synthetic_store
from tests.adapt_helpers import scrambled_pansharpener, tiny_extractor, write_tiny_pretrained

SETTINGS = {"tile": 256, "blend": 16, "batch_size": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    store = write_synthetic_store(root / "zarr", "QuickBird", ms_shape=(40, 56), seed=1)
    encoders = tiny_extractor(write_tiny_pretrained(root / "pretrain", "QuickBird"), store,
                              root / "encoders")
    save_pansharpener(scrambled_pansharpener(load_extractor(encoders), "QuickBird"),
                      root / "model")
    from tasks.models import fuse_store

    reference = fuse_store(str(root / "model"), store, root / "reference.tif",
                           PansharpenParams(**SETTINGS), progress=False)
    with rasterio.open(reference) as dataset:
        fused = dataset.read()
    return {"store": store, "folder": root / "model", "fused": fused}


@pytest.fixture()
def champion(model, tmp_path, monkeypatch):
    """The model registered as champion in an MLflow store of this test's own (a SQLite file in
    tmp_path); temporary files from then on go to ``tmp_path/tmp``."""
    from tasks import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    name = f"pansharpener-{uuid.uuid4().hex[:8]}"
    with tracking.stage_run("adapt", {}):
        version = tracking.register_candidate(model["folder"], name, "QuickBird")
    assert tracking.promote_if_better(name, version, {"s": {"hqnr": 0.9, "q2n": 0.9}})["promoted"]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return f"models:/{name}@champion", scratch


@pytest.fixture()
def loads(monkeypatch):
    """Every load of a saved pansharpener, by folder."""
    import crossdiff_core.pansharpener as pansharpener

    seen = []
    original = pansharpener.load_pansharpener

    def counting(folder, *args, **kwargs):
        seen.append(folder)
        return original(folder, *args, **kwargs)

    monkeypatch.setattr(pansharpener, "load_pansharpener", counting)
    return seen


def _params(tmp_path, **pansharpen) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"pansharpen": {**SETTINGS, **pansharpen}}))
    return str(path)


def _downloads(scratch):
    return [p for p in scratch.iterdir() if p.name.startswith("crossdiff-model-")]


def test_flow_entry_point_resolves_a_registry_address(model, champion, tmp_path, monkeypatch,
                                                      loads, prefect_server):
    from flows import pansharpen

    uri, scratch = champion
    params = _params(tmp_path, model=uri, scenes=[str(model["store"])], out=str(tmp_path / "out"))
    monkeypatch.setenv("CROSSDIFF_PARAMS", params)
    pansharpen.main()
    with rasterio.open(tmp_path / "out" / f"{model['store'].stem}.tif") as dataset:
        np.testing.assert_array_equal(dataset.read(), model["fused"])
    assert len(loads) == 1 and not _downloads(scratch)


def test_command_resolves_a_registry_address_and_removes_the_download(model, champion,
                                                                      tmp_path, loads):
    from flows.cli import app

    uri, scratch = champion
    out = tmp_path / "fused.tif"
    result = CliRunner().invoke(app, ["pansharpen", "--model", uri, "--scene",
                                      str(model["store"]), str(out),
                                      "--params", _params(tmp_path)])
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as dataset:
        np.testing.assert_array_equal(dataset.read(), model["fused"])
    assert len(loads) == 1 and not _downloads(scratch)

    missing = uri.replace("@champion", "@nightly")
    result = CliRunner().invoke(app, ["pansharpen", "--model", missing, "--scene",
                                      str(model["store"]), str(tmp_path / "no.tif"),
                                      "--params", _params(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: cannot resolve")
    assert not _downloads(scratch) and not (tmp_path / "no.tif").exists()


FRESH_PROCESS = """
import json, sys
import mlflow
import numpy as np

model = mlflow.pyfunc.load_model("models:/crossdiff-pansharpener@champion")
example = model.input_example
fused = model.predict(example)
np.save("fused.npy", fused)
np.savez("example.npz", **example)
import crossdiff_core
loaded = {"core": crossdiff_core.__file__, "prefect": "prefect" in sys.modules}

from tasks.models import local_model  # the one-shot lookup of `crossdiff pansharpen --model`
with local_model("models:/crossdiff-pansharpener@champion") as folder:
    loaded["download"] = folder
print(json.dumps(loaded))
"""


@pytest.mark.slow
def test_the_champion_loads_in_a_fresh_process_quietly(model, tmp_path, monkeypatch):
    """Registered in the default store of a folder (mlflow.db there), the champion loads in a
    fresh Python started there with the README's call, from its own code (crossdiff_core logged
    with it, no prefect), predicts on its input example what the saved model fuses, and neither
    that nor the CLI's lookup prints a warning."""
    import subprocess
    import sys

    from crossdiff_core.pansharpener import load_pansharpener
    from tasks import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    with tracking.stage_run("adapt", {}):
        version = tracking.register_candidate(model["folder"], "crossdiff-pansharpener",
                                              "QuickBird")
    tracking.promote_if_better("crossdiff-pansharpener", version, {"s": {"hqnr": 0.9, "q2n": 0.9}})
    assert (tmp_path / "mlflow.db").is_file() and (tmp_path / "mlruns").is_dir()

    env = {k: v for k, v in __import__("os").environ.items()
           if not k.startswith(("MLFLOW_", "PYTHON"))}
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.stderr.strip() == "", done.stderr  # no warning, no progress bar
    assert Path(loaded["core"]).is_relative_to(tmp_path / "mlruns")  # the logged code path
    assert "/code/crossdiff_core/" in loaded["core"] and not loaded["prefect"]
    assert not Path(loaded["download"]).exists()

    example = dict(np.load(tmp_path / "example.npz"))
    assert example["pan"].dtype == np.float32 and example["pan"].shape[0] <= 64
    expected = load_pansharpener(model["folder"]).fuse(example["ms"], example["pan"])
    np.testing.assert_allclose(np.load(tmp_path / "fused.npy"), expected, rtol=1e-5, atol=1e-3)
