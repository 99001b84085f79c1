"""pretrain.init: starting both branches from an earlier run's weights, and refusing weights of
another band set, ratio, layout or schedule with an error that names the file and the way out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from crossdiff_core.config import ConfigError
from crossdiff_core.ingest import source_sha256
from crossdiff_core.io.integrity import file_sha256
from crossdiff_core.io.store import find_scene_stores, open_scene
from crossdiff_core.nets.unet import load_unet, read_unet_config
from crossdiff_core.sensors import get_sensor
from crossdiff_core.synthetic import write_synthetic_store
from crossdiff_core.train import init_weights
from crossdiff_core.train.config import PretrainConfig
from crossdiff_core.train.init_weights import InitMismatchError, load_init_weights
from crossdiff_core.train.pretrain import train_branch
from flows.params import validate
from tests.pretrain_helpers import TINY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def landsat(tmp_path_factory):
    root = tmp_path_factory.mktemp("landsat")
    write_synthetic_store(root, "Landsat-8", ms_shape=(24, 32), seed=5)
    return [str(root)]


@pytest.fixture(scope="module")
def source(tmp_path_factory, landsat):
    """An earlier pretraining run of both branches (the folder pretrain.init points at)."""
    out = tmp_path_factory.mktemp("source")
    for branch in ("p2m", "m2p"):
        train_branch(PretrainConfig(branch=branch, scenes=landsat, out=str(out), steps=4, **TINY))
    return out


def _state(folder):
    return load_unet(folder).state_dict()


def test_default_is_shipped_and_an_empty_value_is_refused():
    assert validate("pretrain", {}).init == "shipped"
    assert PretrainConfig(branch="p2m").init == "shipped"
    with pytest.raises(ConfigError, match="pretrain.init must be 'scratch', 'shipped' or a folder"):
        validate("pretrain", {"init": "  "})


@pytest.mark.parametrize("branch", ["p2m", "m2p"])
def test_a_run_starts_from_the_init_weights_and_records_them(tmp_path, landsat, source, branch):
    # A learning rate of 1e-12 leaves the starting weights where they were: the saved UNet then
    # shows what the run started from.
    settings = dict(branch=branch, scenes=landsat, steps=1, lr=1e-12, finetune_steps=None,
                    **TINY)
    train_branch(PretrainConfig(out=str(tmp_path / "init"), init=str(source), **settings))
    train_branch(PretrainConfig(out=str(tmp_path / "scratch"), **settings))
    started, scratch = _state(tmp_path / "init" / branch), _state(tmp_path / "scratch" / branch)
    original = _state(source / branch)
    far = [key for key in original if not torch.allclose(started[key], original[key], atol=1e-6)]
    assert not far
    assert any(not torch.allclose(scratch[key], original[key], atol=1e-3) for key in original)
    extra = json.loads((tmp_path / "init" / branch / "config.json").read_text())["extra"]
    assert extra["init"]["weights_sha256"] == file_sha256(source / branch / "weights.pt")
    assert extra["init"]["steps"] == 4 and extra["init"]["sensor"] == "Landsat-8"
    assert "init" not in json.loads((tmp_path / "scratch" / branch / "config.json").read_text())[
        "extra"]


def test_fine_tuning_from_init_trains_further_and_resumes_only_its_own_checkpoint(
    tmp_path, landsat, source
):
    settings = dict(branch="p2m", scenes=landsat, finetune_steps=None, **TINY)
    tuned = train_branch(PretrainConfig(out=str(tmp_path), init=str(source), steps=3, **settings))
    assert tuned.steps == 3 and tuned.resumed_from == 0
    original, now = _state(source / "p2m"), _state(tmp_path / "p2m")
    assert any(not torch.equal(original[key], now[key]) for key in original)
    # More steps resume the run's own checkpoint ...
    assert train_branch(PretrainConfig(out=str(tmp_path), init=str(source), steps=4,
                                       **settings)).resumed_from == 3
    # ... and a run from scratch refuses it: it started from other weights.
    with pytest.raises(ValueError, match=r"another configuration \(init_sha256: checkpoint '"):
        train_branch(PretrainConfig(out=str(tmp_path), steps=5, **settings))


def test_finetune_steps_count_from_the_init_weights_and_zero_keeps_them(tmp_path, landsat,
                                                                        source):
    settings = dict(branch="m2p", scenes=landsat, steps=5, init=str(source), **TINY)
    kept = train_branch(PretrainConfig(out=str(tmp_path / "zero"), finetune_steps=0, **settings))
    assert kept.steps == 0
    assert kept.started_from == f"the weights in {source} (0 steps: pretrain.finetune_steps)"
    original, saved = _state(source / "m2p"), _state(tmp_path / "zero" / "m2p")
    assert all(torch.equal(original[key], saved[key]) for key in original)
    extra = json.loads((tmp_path / "zero" / "m2p" / "config.json").read_text())["extra"]
    assert extra["steps"] == 0 and extra["init"]["weights_sha256"] == file_sha256(
        source / "m2p" / "weights.pt")
    tuned = train_branch(PretrainConfig(out=str(tmp_path / "two"), finetune_steps=2, **settings))
    assert tuned.steps == 2
    assert (tmp_path / "two" / "m2p" / "losses.csv").read_text().count("\n") == 3  # header + 2
    # finetune_steps below a checkpoint's step is refused by its own name.
    with pytest.raises(ValueError, match="beyond pretrain.finetune_steps 1: raise finetune_steps"):
        train_branch(PretrainConfig(out=str(tmp_path / "two"), finetune_steps=1, **settings))


def test_finetune_steps_do_not_apply_to_a_run_from_scratch(tmp_path, landsat, shipped):
    # No Landsat-8 matched_scale pair ships, so this run falls back to scratch: it trains steps.
    result = train_branch(PretrainConfig(branch="p2m", scenes=landsat, out=str(tmp_path / "out"),
                                         init="shipped", pretext="matched_scale", steps=2,
                                         finetune_steps=0, **TINY))
    assert result.started_from.startswith("scratch: no encoders ship") and result.steps == 2
    assert train_branch(PretrainConfig(branch="p2m", scenes=landsat, out=str(tmp_path / "new"),
                                       init="scratch", steps=2, finetune_steps=0,
                                       **TINY)).steps == 2


def test_finetune_steps_default_and_negative_ones_are_refused():
    assert validate("pretrain", {}).finetune_steps == 30
    assert validate("pretrain", {"finetune_steps": None}).finetune_steps is None
    with pytest.raises(ConfigError, match="pretrain.finetune_steps must be >= 0"):
        validate("pretrain", {"finetune_steps": -1})


def test_weights_of_another_band_set_are_refused(tmp_path, source):
    eight_bands = tmp_path / "worldview3"
    write_synthetic_store(eight_bands, "WorldView-3", ms_shape=(8, 8), seed=1)
    config = PretrainConfig(branch="p2m", scenes=[str(eight_bands)], out=str(tmp_path / "out"),
                            init=str(source), steps=1, **TINY)
    expected = (rf"pretrain.init: {source / 'p2m' / 'config.json'} was pretrained with MS bands "
                r"4, this run needs 8\. .*pretrain.init: scratch")
    with pytest.raises(InitMismatchError, match=expected):
        train_branch(config)
    assert not (tmp_path / "out" / "p2m").exists()  # nothing written


def test_weights_of_another_ratio_are_refused(tmp_path, source):
    ikonos = tmp_path / "ikonos"  # the same four bands as Landsat-8, at ratio 4
    write_synthetic_store(ikonos, "IKONOS", ms_shape=(8, 8), seed=2)
    config = PretrainConfig(branch="m2p", scenes=[str(ikonos)], out=str(tmp_path / "out"),
                            init=str(source), steps=1, **TINY)
    with pytest.raises(InitMismatchError, match=r"m2p/config.json was pretrained with PAN/MS "
                                                r"ratio 2, this run needs 4"):
        train_branch(config)


def test_weights_of_another_layout_or_schedule_are_refused(tmp_path, landsat, source):
    base = dict(branch="p2m", scenes=landsat, out=str(tmp_path), init=str(source), steps=1)
    with pytest.raises(InitMismatchError, match=r"UNet widths \(pretrain.channels\) \[8, 16\], "
                                                r"this run needs \[8, 8\]"):
        train_branch(PretrainConfig(**base, **{**TINY, "channels": [8, 8]}))
    with pytest.raises(InitMismatchError, match="noise schedule 'cosine', this run needs 'linear'"):
        train_branch(PretrainConfig(**base, schedule="linear", **TINY))
    with pytest.raises(InitMismatchError, match="diffusion steps T 100, this run needs 200"):
        train_branch(PretrainConfig(**base, **{**TINY, "timesteps": 200}))


def test_band_names_must_match_too(source):
    with pytest.raises(InitMismatchError, match="band names"):
        load_init_weights(source, "p2m", unet_config=load_unet(source / "p2m").config,
                          n_bands=4, band_names=["b1", "b2", "b3", "b4"], ratio=2,
                          schedule="cosine", timesteps=100)


def test_a_missing_init_folder_says_what_it_should_hold(tmp_path, landsat):
    config = PretrainConfig(branch="p2m", scenes=landsat, out=str(tmp_path / "out"),
                            init=str(tmp_path / "nowhere"), steps=1, **TINY)
    with pytest.raises(FileNotFoundError, match=r"nowhere/p2m/config.json not found\. "
                                                r"pretrain.init takes 'scratch', 'shipped' or a "
                                                r"folder"):
        train_branch(config)


@pytest.fixture
def shipped(tmp_path, source, monkeypatch):
    """``source`` shipped as the Landsat-8 ``original`` pair (and nothing else ships)."""
    folder = tmp_path / "shipped"
    for branch in ("p2m", "m2p"):
        shutil.copytree(source / branch, folder / "Landsat-8" / "original" / branch)
    monkeypatch.setattr(init_weights, "SHIPPED_DIR", folder)
    return folder


def test_shipped_starts_from_the_encoders_of_the_scenes_sensor(tmp_path, landsat, shipped):
    result = train_branch(PretrainConfig(branch="m2p", scenes=landsat, out=str(tmp_path / "out"),
                                         init="shipped", pretext="original", steps=1, lr=1e-12,
                                         finetune_steps=None, **TINY))
    assert result.started_from == "the shipped Landsat-8/original encoders"
    extra = json.loads((tmp_path / "out" / "m2p" / "config.json").read_text())["extra"]
    assert extra["init"]["weights_sha256"] == file_sha256(
        shipped / "Landsat-8" / "original" / "m2p" / "weights.pt")


def test_shipped_trains_from_scratch_where_none_ship_and_says_so(tmp_path, landsat, shipped):
    result = train_branch(PretrainConfig(branch="p2m", scenes=landsat, out=str(tmp_path / "out"),
                                         init="shipped", pretext="matched_scale", steps=1,
                                         **TINY))
    assert result.started_from == ("scratch: no encoders ship for Landsat-8 with pretext "
                                   "matched_scale (shipped: Landsat-8/original)")
    assert "init" not in json.loads((tmp_path / "out" / "p2m" / "config.json").read_text())[
        "extra"]


def test_shipped_trains_from_scratch_on_a_scene_they_were_pretrained_on(tmp_path, landsat,
                                                                         shipped):
    # Their reduced-resolution chain would otherwise start from weights that saw the reference.
    scene = open_scene(find_scene_stores(landsat)[0])
    (shipped / "Landsat-8" / "original" / "record.json").write_text(json.dumps({"sources": [
        {"name": "the_sample.tar.gz", "source_sha256": scene.attrs["source_sha256"]}]}))
    result = train_branch(PretrainConfig(branch="p2m", scenes=landsat, out=str(tmp_path / "out"),
                                         init="shipped", pretext="original", steps=1, **TINY))
    assert result.started_from == (
        "scratch: the shipped Landsat-8/original encoders were pretrained on part of "
        "the_sample.tar.gz, which this run trains on; starting from them would let its "
        "reduced-resolution check see the reference")
    assert "init" not in json.loads((tmp_path / "out" / "p2m" / "config.json").read_text())[
        "extra"]


def test_shipped_that_do_not_fit_the_layout_train_from_scratch_and_say_why(tmp_path, landsat,
                                                                           shipped):
    settings = {**TINY, "channels": [8, 8]}  # the shipped pair is [8, 16] wide
    result = train_branch(PretrainConfig(branch="m2p", scenes=landsat, out=str(tmp_path / "out"),
                                         init="shipped", pretext="original", steps=1,
                                         **settings))
    assert result.started_from == (
        "scratch: the shipped Landsat-8/original encoders do not fit this run "
        "(UNet widths (pretrain.channels) [8, 16], this run [8, 8])")


SHIPPED = sorted(init_weights.SHIPPED_DIR.glob("*/*/record.json"))


@pytest.mark.parametrize("record", SHIPPED, ids=lambda path: f"{path.parent.parent.name}/"
                                                               f"{path.parent.name}")
def test_each_shipped_pair_fits_the_default_network_and_says_how_it_was_made(record):
    folder = record.parent
    sensor_name, pretext = folder.parent.name, folder.name
    made = json.loads(record.read_text())
    assert made["corpus"] and made["commit"] and set(made["branches"]) == {"p2m", "m2p"}
    assert init_weights.shipped_sources(folder), "record.json names no source scene"
    settings = validate("pretrain", {})
    sensor = get_sensor(sensor_name)
    for branch in ("p2m", "m2p"):
        extra = read_unet_config(folder / branch)["extra"]
        assert (extra["sensor"], extra["pretext"], extra["branch"]) == (sensor_name, pretext,
                                                                        branch)
        assert extra["steps"] == made["branches"][branch]["steps"]
        n_bands = len(extra["band_names"])
        unet = {"in_channels": n_bands if branch == "p2m" else 1,
                "cond_channels": 1 if branch == "p2m" else n_bands,
                "channels": settings.channels, "time_embed_dim": None}
        loaded = load_init_weights(folder, branch, unet_config=unet, n_bands=n_bands,
                                   band_names=list(sensor.bands)[:n_bands], ratio=sensor.ratio,
                                   schedule=settings.schedule, timesteps=settings.timesteps)
        assert loaded.record["sensor"] == sensor_name
        # Another sensor's scenes are refused, naming the file.
        with pytest.raises(InitMismatchError, match=rf"{branch}/config.json was pretrained"):
            load_init_weights(folder, branch, unet_config=unet, n_bands=n_bands,
                              band_names=[f"b{i}" for i in range(n_bands)],
                              ratio=sensor.ratio * 2, schedule=settings.schedule,
                              timesteps=settings.timesteps)


def test_the_sample_is_a_source_of_the_shipped_landsat_pairs_so_dvc_repro_starts_from_scratch():
    # The Landsat-8 pairs were pretrained on part of the embedded sample: the default `dvc
    # repro` (whose evaluation crop is most of the sample) must not start from them.
    sample = source_sha256(ROOT / "data" / "raw" / "LC80200392015216LGN00.tar.gz")
    for pretext in ("original", "matched_scale"):
        folder = init_weights.shipped_encoders("Landsat-8", pretext)
        assert folder is not None
        assert init_weights.shipped_sources(folder)[sample] == "LC80200392015216LGN00.tar.gz"
    assert init_weights.shipped_encoders("QuickBird", "original") is None
