"""MLflow registry: the store where you work (never the package folder; lookups create none),
candidate registration (signature, input example), promotion of the evaluated version (margin,
NaN, scene sets, concurrent evaluations), lookup by alias."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

from tasks import tracking


@pytest.fixture(scope="module")
def pansharpener(tmp_path_factory) -> Path:
    """A tiny saved pansharpener (random weights), what the registry holds."""
    from crossdiff_core.nets.extractor import load_extractor
    from crossdiff_core.pansharpener import save_pansharpener
    from crossdiff_core.synthetic import write_synthetic_store
    from tests.adapt_helpers import scrambled_pansharpener, tiny_extractor, write_tiny_pretrained

    root = tmp_path_factory.mktemp("pansharpener")
    store = write_synthetic_store(root / "zarr", "QuickBird", ms_shape=(16, 16), seed=1)
    encoders = tiny_extractor(write_tiny_pretrained(root / "pretrain", "QuickBird"), store,
                              root / "encoders")
    return save_pansharpener(scrambled_pansharpener(load_extractor(encoders), "QuickBird"),
                             root / "model")


def variant(pansharpener: Path, folder: Path, note: str) -> Path:
    """A copy of the pansharpener with other content (an extra file): another model to the
    registry, which finds versions by the sha256 of their folder."""
    shutil.copytree(pansharpener, folder)
    (folder / "NOTE.txt").write_text(note)
    return folder


@pytest.fixture()
def registry(pansharpener, tmp_path, monkeypatch):
    """A model folder to register; the registry is the session's temporary MLflow store
    (tests/conftest.py), each test using its own model name."""
    monkeypatch.chdir(tmp_path)
    return variant(pansharpener, tmp_path / "model", "registered by the test")


@pytest.fixture()
def name(request) -> str:
    return f"test-{request.node.name}-{uuid.uuid4().hex[:8]}"


def test_worse_candidate_does_not_become_champion(registry, name):
    with tracking.stage_run("adapt", {"lr": 0.001, "nested": {"a": [1, 2]}}):
        first = tracking.register_candidate(registry, name, "QuickBird")
        decision = tracking.promote_if_better(name, first, scores(0.80))
        assert decision["promoted"] and decision["candidate_version"] == first
        second = tracking.register_candidate(registry, name, "QuickBird")
        decision = tracking.promote_if_better(name, second, scores(0.75))
    assert second != first
    assert not decision["promoted"]
    assert decision["champion_hqnr_before"] == pytest.approx(0.80)
    client = tracking.configure()
    assert str(client.get_model_version_by_alias(name, "champion").version) == first
    assert str(client.get_model_version_by_alias(name, "candidate").version) == second

    with tracking.stage_run("adapt", {}):
        third = tracking.register_candidate(registry, name, "QuickBird")
        assert tracking.promote_if_better(name, third, scores(0.85))["promoted"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == third


def test_resolve_model_uri_downloads_the_registered_folder(registry, name, tmp_path):
    with tracking.stage_run("adapt", {}):
        tracking.register_candidate(registry, name, "QuickBird")
    folder = tracking.resolve_model_uri(f"models:/{name}@candidate", tmp_path / "dl")
    assert tracking.folder_sha256(folder) == tracking.folder_sha256(registry)
    with pytest.raises(ValueError, match="champion"):
        tracking.resolve_model_uri(f"models:/{name}@champion", tmp_path / "dl2")


def test_step_logger_records_per_step_metrics(registry):
    with tracking.stage_run("pretrain", {"steps": 3}) as run_id:
        log = tracking.step_logger("p2m_")
        for step in range(3):
            log(step, {"loss": 1.0 / (step + 1), "note": "ignored"})
    history = tracking.configure().get_metric_history(run_id, "p2m_loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert history[-1].value == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- promotion


def scores(hqnr: float, q2n: float = 0.9, scenes: tuple[str, ...] = ("a", "b")) -> dict:
    """The same score on each scene (keys as tasks.tracking.scene_key makes them)."""
    return {f"{scene}:0123456789ab": {"hqnr": hqnr, "q2n": q2n} for scene in scenes}


@pytest.fixture()
def versions(registry, name):
    """Three versions of ``name`` (no champion yet; made directly in the registry, which the
    promotion needs only the ids of); returns their ids."""
    client = tracking.configure()
    client.create_registered_model(name)
    return [str(client.create_model_version(name, str(registry)).version) for _ in range(3)]


def champion_of(name: str) -> str | None:
    try:
        return str(tracking.configure().get_model_version_by_alias(name, "champion").version)
    except Exception:  # noqa: BLE001 - no champion
        return None


def test_a_nan_score_never_promotes_and_never_blocks(versions, name):
    v1, v2, _ = versions
    decision = tracking.promote_if_better(name, v1, scores(float("nan")))
    assert not decision["promoted"] and "NaN" in decision["reason"]
    assert champion_of(name) is None
    missing = tracking.promote_if_better(name, v1, {"a:0123456789ab": {"hqnr": 0.9}})
    assert not missing["promoted"] and champion_of(name) is None
    assert tracking.promote_if_better(name, v2, scores(0.95))["promoted"]
    assert champion_of(name) == v2


def test_a_champion_without_a_valid_score_is_replaced(versions, name):
    v1, v2, _ = versions
    client = tracking.configure()
    client.set_registered_model_alias(name, "champion", v1)  # as the old rule left it
    client.set_model_version_tag(name, v1, "hqnr", "nan")
    assert tracking.promote_if_better(name, v2, scores(0.95))["promoted"]
    assert champion_of(name) == v2


def test_worse_and_within_margin_are_kept_beyond_margin_promoted(versions, name):
    v1, v2, v3 = versions
    assert tracking.promote_if_better(name, v1, scores(0.80))["promoted"]
    worse = tracking.promote_if_better(name, v2, scores(0.79))
    within = tracking.promote_if_better(name, v2, scores(0.804))
    assert not worse["promoted"] and not within["promoted"] and champion_of(name) == v1
    assert "margin 0.005" in within["reason"]
    assert within["champion_hqnr"] == pytest.approx(0.80)
    assert within["candidate_hqnr"] == pytest.approx(0.804)
    beyond = tracking.promote_if_better(name, v3, scores(0.81))
    assert beyond["promoted"] and champion_of(name) == v3
    # Both scores and the decision are on the version.
    tags = tracking.configure().get_model_version(name, v3).tags
    assert tags["promotion_decision"] == "promoted to champion"
    assert float(tags["promotion_champion_hqnr"]) == pytest.approx(0.80)
    assert float(tags["promotion_candidate_hqnr"]) == pytest.approx(0.81)
    assert tags["promotion_champion_version"] == v1 and tags["scene_count"] == "2"
    assert tracking.promote_if_better(name, v1, scores(0.80), margin=0.0)["promoted"] is False


def test_a_better_hqnr_with_a_q2n_fall_beyond_the_margin_is_kept(versions, name, caplog):
    v1, v2, _ = versions
    tracking.promote_if_better(name, v1, scores(0.80, q2n=0.90))
    with caplog.at_level("INFO", logger="crossdiff.promotion"):
        decision = tracking.promote_if_better(name, v2, scores(0.90, q2n=0.89))
    assert not decision["promoted"] and "Q2n" in decision["reason"]
    assert champion_of(name) == v1
    assert f"v{v2}: not promoted" in caplog.text and "champion v" in caplog.text
    assert tracking.promote_if_better(name, v2, scores(0.90, q2n=0.896))["promoted"]


def test_scores_on_another_scene_set_are_not_compared(versions, name):
    v1, v2, v3 = versions
    tracking.promote_if_better(name, v1, scores(0.80, scenes=("a", "b")))
    other = tracking.promote_if_better(name, v2, scores(0.99, scenes=("c", "d")))
    assert not other["promoted"] and "another scene set" in other["reason"]
    assert champion_of(name) == v1
    # A new scene: compared on the scenes both were scored on (the champion's a and b).
    more = {**scores(0.80, scenes=("a", "b")), **scores(0.99, scenes=("c",))}
    decision = tracking.promote_if_better(name, v3, more)
    assert not decision["promoted"] and decision["compared_scenes"] == 2
    assert "2 scenes both were scored on" in decision["reason"]
    assert decision["candidate_hqnr"] == pytest.approx(0.80)


def test_a_legacy_champion_without_a_scene_set_is_not_compared(versions, name):
    v1, v2, _ = versions
    client = tracking.configure()
    client.set_registered_model_alias(name, "champion", v1)
    client.set_model_version_tag(name, v1, "hqnr", "0.8")
    decision = tracking.promote_if_better(name, v2, scores(0.95))
    assert not decision["promoted"] and "before scene sets were recorded" in decision["reason"]


def test_concurrent_evaluations_leave_the_best_champion(versions, name, monkeypatch):
    """v2 (0.90) and v3 (0.85) are evaluated at once against v1 (0.80): v2 decides slowly; v3's
    decision waits for it (the promotion lock) and sees v2 as champion, so v2 stays."""
    import threading
    import time

    v1, v2, v3 = versions
    tracking.promote_if_better(name, v1, scores(0.80))
    decide = tracking._decide

    def slow_decide(version, *args, **kwargs):
        if version == v2:
            time.sleep(1.0)
        return decide(version, *args, **kwargs)

    monkeypatch.setattr(tracking, "_decide", slow_decide)
    decisions = {}

    def evaluate(version, hqnr):
        decisions[version] = tracking.promote_if_better(name, version, scores(hqnr))

    first = threading.Thread(target=evaluate, args=(v2, 0.90))
    second = threading.Thread(target=evaluate, args=(v3, 0.85))
    first.start()
    time.sleep(0.3)
    second.start()
    first.join()
    second.join()
    assert decisions[v2]["promoted"] and decisions[v2]["champion_version"] == v1
    assert not decisions[v3]["promoted"] and decisions[v3]["champion_version"] == v2
    assert champion_of(name) == v2


def test_the_evaluated_version_is_promoted_not_the_alias(registry, name, tmp_path):
    """The version whose content was evaluated is promoted, though `candidate` has moved on; a
    random-encoder head (registered by nobody) promotes nothing."""
    other = variant(registry, tmp_path / "other", "newer")
    with tracking.stage_run("adapt", {}):
        evaluated = tracking.register_candidate(registry, name, "QuickBird")
        newer = tracking.register_candidate(other, name, "QuickBird")
    assert tracking.evaluated_version(name, registry) == evaluated
    decision = tracking.promote_evaluated(name, registry, scores(0.8))
    assert decision["promoted"] and decision["candidate_version"] == evaluated
    assert champion_of(name) == evaluated
    client = tracking.configure()
    assert str(client.get_model_version_by_alias(name, "candidate").version) == newer

    random_head = variant(registry, tmp_path / "random", "random encoders")
    decision = tracking.promote_evaluated(name, random_head, scores(0.99))
    assert not decision["promoted"] and "random_encoders" in decision["reason"]
    assert champion_of(name) == evaluated
    assert "hqnr" not in client.get_model_version(name, newer).tags


def test_scene_keys_differ_with_source_and_settings():
    settings = {"max_pan_size": 256, "block_size": 32, "border_cut": 0}
    key = tracking.scene_key("LC8", "abc", settings)
    assert key == tracking.scene_key("LC8", "abc", dict(settings))
    assert key != tracking.scene_key("LC8", "abd", settings)
    assert key != tracking.scene_key("LC8", "abc", {**settings, "max_pan_size": 512})


# --------------------------------------------------------------------------- where the store is


@pytest.fixture()
def no_tracking_uri(tmp_path, monkeypatch):
    """No MLFLOW_TRACKING_URI; the current folder is an empty ``tmp_path/work``."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_the_default_store_and_its_artifacts_are_in_the_working_folder(no_tracking_uri):
    work = no_tracking_uri
    assert tracking.tracking_uri() == f"sqlite:///{work / 'mlflow.db'}"
    (work / "note.txt").write_text("artifact")
    with tracking.stage_run("report", {"a": 1}, experiment="where-you-work") as run_id:
        tracking.log_artifact(work / "note.txt")
    assert (work / "mlflow.db").is_file()
    run = tracking.configure().get_run(run_id)
    assert run.info.artifact_uri.startswith((work / "mlruns").as_uri())
    assert list((work / "mlruns").rglob("note.txt"))
    package = Path(tracking.__file__).resolve().parent
    assert tracking.local_store() == work / "mlflow.db" and package not in work.parents


def test_a_store_elsewhere_keeps_its_artifacts_beside_it(tmp_path, monkeypatch):
    store = tmp_path / "elsewhere" / "mlflow.db"
    store.parent.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "note.txt").write_text("artifact")
    with tracking.stage_run("report", {}, experiment="beside the store"):
        tracking.log_artifact(tmp_path / "note.txt")
    assert list((store.parent / "mlruns" / "beside_the_store").rglob("note.txt"))
    assert not (tmp_path / "mlruns").exists()


def test_lookups_never_create_a_store(no_tracking_uri, pansharpener, tmp_path, monkeypatch):
    work = no_tracking_uri
    for lookup in (lambda: tracking.resolve_model_uri("models:/crossdiff-pansharpener@champion",
                                                      work / "dl"),
                   lambda: tracking.evaluated_version("crossdiff-pansharpener", pansharpener)):
        with pytest.raises(tracking.StoreNotFoundError) as error:
            lookup()
        message = str(error.value)
        assert str(work / "mlflow.db") in message
        assert "dvc repro" in message and "MLFLOW_TRACKING_URI" in message
        assert isinstance(error.value, OSError)  # one line from the CLI's handler
    assert list(work.iterdir()) == []

    missing = tmp_path / "server-less" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    with pytest.raises(tracking.StoreNotFoundError, match="set to|MLFLOW_TRACKING_URI"):
        tracking.resolve_model_uri("models:/crossdiff-pansharpener@champion", work / "dl")
    assert not missing.parent.exists() and list(work.iterdir()) == []


def test_a_registered_pansharpener_has_a_signature_example_and_code(registry, name):
    import mlflow

    with tracking.stage_run("adapt", {}):
        version = tracking.register_candidate(registry, name, "QuickBird")
    info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    inputs = {spec.name: spec for spec in info.signature.inputs.inputs}
    assert inputs["pan"].shape == (-1, -1) and inputs["ms"].shape == (4, -1, -1)
    assert inputs["pan"].type == np.dtype("float32")
    assert info.signature.outputs.inputs[0].shape == (4, -1, -1)
    assert info.saved_input_example_info is not None
    assert (info.flavors["python_function"]["code"] == "code"
            and info.flavors["python_function"].get("model_code_path"))


def test_only_a_pansharpener_is_registered(tmp_path, registry, name):
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text(json.dumps({"kind": "test"}))
    with tracking.stage_run("adapt", {}), pytest.raises(ValueError, match="not a saved"):
        tracking.register_candidate(not_a_model, name, "QuickBird")
