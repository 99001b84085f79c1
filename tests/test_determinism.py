"""Bit-for-bit repeatable runs on the CPU: the same settings write the same bytes.

Stage by stage at tiny size (pretraining, freezing, adaptation, each run twice into two folders),
then the real pipeline: `dvc repro` of tests/params-tiny.yaml in two fresh copies of the project
at once, every output hash in the two dvc.lock files compared (slow).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import PROJECT_ROOT

from crossdiff_core.synthetic import write_synthetic_store

# Outputs of the pipeline whose bytes may differ between two runs of the same settings, with the
# reason (README, "Reproducibility"). None: models, stores, metrics, report data and pictures are
# all identical.
MAY_DIFFER: dict[str, str] = {}

TINY = {"pan_patch": 16, "batch_size": 4, "steps": 4, "checkpoint_every": 2, "channels": [8, 16],
        "timesteps": 50, "sample_steps": 2, "progress": False, "device": "cpu"}


TRAIN = """
import json, sys
from crossdiff_core.train.config import PretrainConfig
from crossdiff_core.train.pretrain import train_branch
for config in json.loads(sys.argv[1]):
    train_branch(PretrainConfig(**config))
"""


def _digests(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder``."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _assert_same_files(first: Path, second: Path) -> None:
    one, two = _digests(first), _digests(second)
    assert one and one.keys() == two.keys()
    differing = sorted(name for name in one if one[name] != two[name])
    assert not differing, f"files that differ between two identical runs: {differing}"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("zarr")
    write_synthetic_store(root, "QuickBird", ms_shape=(24, 24), seed=4)
    return [str(root)]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, scenes):
    """Both branches trained twice, into two folders, each time in a fresh Python process (what
    a process starts with, such as NumPy's unseeded global generator, must not reach the files);
    m2p much shorter: the same code."""
    folders = [tmp_path_factory.mktemp(name) for name in ("first", "second")]
    for folder in folders:
        configs = [{**TINY, "branch": branch, "steps": steps, "scenes": scenes,
                    "out": str(folder)} for branch, steps in (("p2m", 4), ("m2p", 1))]
        subprocess.run([sys.executable, "-c", TRAIN, json.dumps(configs)], check=True,
                       cwd=PROJECT_ROOT, timeout=600)
    return folders


@pytest.mark.slow  # two fresh Python processes: 30-55 s on a busy 2-core machine
def test_pretraining_twice_writes_the_same_bytes(pretrained):
    # weights.pt, checkpoint.pt (optimizer, generators), losses.csv, diagnostics.json, quicklook
    _assert_same_files(*pretrained)
    assert {"p2m/weights.pt", "m2p/checkpoint.pt", "p2m/quicklook.png"} <= set(
        _digests(pretrained[0]))


@pytest.mark.slow  # two fresh Python processes: 30-55 s on a busy 2-core machine
def test_freezing_and_adapting_twice_write_the_same_bytes(pretrained, scenes, tmp_path):
    from crossdiff_core.io.store import find_scene_stores
    from crossdiff_core.nets.extractor import load_extractor
    from crossdiff_core.train.adapt import AdaptConfig, adapt_head
    from crossdiff_core.train.freeze import freeze_pretrained

    stores = find_scene_stores(scenes)
    settings = AdaptConfig(steps=3, batch_size=2, pan_patch=16, head_channels=[4, 4],
                           device="cpu")
    for run in ("a", "b"):
        freeze_pretrained(pretrained[0], stores, tmp_path / run / "encoders", t_feature=10,
                          pan_patch=16, calibration_patches=2)
        adapt_head(stores, tmp_path / run / "head",
                   load_extractor(tmp_path / run / "encoders"), settings)
    _assert_same_files(tmp_path / "a", tmp_path / "b")
    summary = (tmp_path / "a" / "head" / "summary.json").read_text()
    assert "seconds" not in summary  # a timing would make every run's model folder another


def test_checkpoints_of_equal_states_are_equal_bytes_whatever_the_file_name(tmp_path):
    from crossdiff_core.train.checkpoint import save_checkpoint

    state = {"step": 3, "model": {"w": torch.arange(6.0)}}
    save_checkpoint(tmp_path / "a" / "checkpoint.pt", state)
    save_checkpoint(tmp_path / "b" / "other.pt", state)
    # torch.save(state, path) names the archive inside after the path (the writer's temporary
    # name, with its pid): the bytes then differed from run to run.
    assert ((tmp_path / "a" / "checkpoint.pt").read_bytes()
            == (tmp_path / "b" / "other.pt").read_bytes())


def test_determinism_switches_deterministic_kernels_on_and_restores_them():
    import torch.utils.deterministic as settings

    from crossdiff_core.device import determinism

    before = torch.are_deterministic_algorithms_enabled(), settings.fill_uninitialized_memory
    with determinism(True, torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled()
        assert not settings.fill_uninitialized_memory  # a cost, and no result changes with it
    assert (torch.are_deterministic_algorithms_enabled(),
            settings.fill_uninitialized_memory) == before
    with determinism(False, torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled() == before[0]


# --- The pipeline: two `dvc repro` in two fresh copies ------------------------------------------

def _outputs(lock: dict) -> dict[str, str]:
    """{path: md5} of every output, metric and plot the lock file records."""
    return {out["path"]: out["md5"] for stage in lock["stages"].values()
            for out in stage.get("outs", [])}


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_two_repros_in_two_fresh_copies_give_identical_outputs(tmp_path_factory, prefect_server):
    from dvc_project import copy_project

    roots = [tmp_path_factory.mktemp(name) for name in ("copy-one", "copy-two")]
    environments = [copy_project(root) for root in roots]
    # At once: what one run computes may not depend on what else the machine does.
    runs = [subprocess.Popen(["dvc", "repro"], cwd=root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for root, env in zip(roots, environments, strict=True)]
    for run in runs:
        output, _ = run.communicate(timeout=3000)
        assert run.returncode == 0, output[-6000:]
    first, second = (_outputs(yaml.safe_load((root / "dvc.lock").read_text())) for root in roots)
    assert first.keys() == second.keys()
    assert {"data/models/pretrain", "data/models/head", "reports/metrics.json",
            "reports/report"} <= set(first)
    differing = sorted(path for path in first
                       if first[path] != second[path] and path not in MAY_DIFFER)
    details = {}
    for path in differing:
        one, two = (root / path for root in roots)
        if one.is_dir():
            files_one, files_two = _digests(one), _digests(two)
            details[path] = sorted(name for name in files_one.keys() | files_two.keys()
                                   if files_one.get(name) != files_two.get(name))
        else:
            details[path] = [path]
    assert not differing, f"outputs that differ between two identical repros: {details}"


def test_pretrain_threads_pins_the_thread_count_during_training_only(scenes, tmp_path):
    from crossdiff_core.train.config import PretrainConfig
    from crossdiff_core.train.pretrain import train_branch

    before = torch.get_num_threads()
    seen = []
    config = PretrainConfig(branch="p2m", scenes=scenes, out=str(tmp_path),
                            **{**TINY, "steps": 1, "threads": 1})
    train_branch(config, on_step=lambda step, metrics: seen.append(torch.get_num_threads()))
    assert seen == [1] and torch.get_num_threads() == before
