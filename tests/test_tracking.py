"""MLflow registry: candidate registration, promotion by HQNR, lookup by alias."""

from __future__ import annotations

import json
import uuid

import pytest

from tasks import tracking


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    """A model folder to register; the registry is the session's temporary MLflow store
    (tests/conftest.py), each test using its own model name."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"kind": "test"}))
    return folder


@pytest.fixture()
def name(request) -> str:
    return f"test-{request.node.name}-{uuid.uuid4().hex[:8]}"


def test_worse_candidate_does_not_become_champion(registry, name):
    with tracking.stage_run("adapt", {"lr": 0.001, "nested": {"a": [1, 2]}}):
        first = tracking.register_candidate(registry, name, "QuickBird")
        decision = tracking.promote_candidate(name, hqnr=0.80)
        assert decision["promoted"] and decision["candidate_version"] == first
        second = tracking.register_candidate(registry, name, "QuickBird")
        decision = tracking.promote_candidate(name, hqnr=0.75)
    assert second != first
    assert not decision["promoted"]
    assert decision["champion_hqnr_before"] == pytest.approx(0.80)
    client = tracking.configure()
    assert str(client.get_model_version_by_alias(name, "champion").version) == first
    assert str(client.get_model_version_by_alias(name, "candidate").version) == second

    with tracking.stage_run("adapt", {}):
        third = tracking.register_candidate(registry, name, "QuickBird")
        assert tracking.promote_candidate(name, hqnr=0.85)["promoted"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == third


def test_resolve_model_uri_downloads_the_registered_folder(registry, name, tmp_path):
    with tracking.stage_run("adapt", {}):
        tracking.register_candidate(registry, name, "QuickBird")
    folder = tracking.resolve_model_uri(f"models:/{name}@candidate", tmp_path / "dl")
    assert json.loads((folder / "config.json").read_text()) == {"kind": "test"}
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
