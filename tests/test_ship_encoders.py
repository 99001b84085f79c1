"""benchmarks/ship_encoders.py train: one pretext only, pretrain settings given with --set."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import PROJECT_ROOT

from crossdiff_core.synthetic import write_synthetic_store

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from ship_encoders import parse_overrides, train  # noqa: E402


def test_overrides_are_read_as_yaml_and_checked_against_the_pretrain_keys():
    assert parse_overrides(["augment=dihedral", "lr=1e-4", "channels=[8, 16]"]) == {
        "augment": "dihedral", "lr": 1e-4, "channels": [8, 16]}
    with pytest.raises(SystemExit, match="augmnt"):
        parse_overrides(["augmnt=dihedral"])
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        parse_overrides(["augment"])
    with pytest.raises(SystemExit, match="pretext has its own option"):
        parse_overrides(["pretext=original"])


def test_train_makes_only_the_pretexts_asked_for_with_the_settings_given(tmp_path):
    corpus = tmp_path / "corpus"
    store = write_synthetic_store(corpus / "syn" / "stores", "IKONOS", ms_shape=(16, 16), seed=3)
    (corpus / "syn").mkdir(exist_ok=True)
    (corpus / "syn" / "corpus.json").write_text(json.dumps(
        {"sensor": "IKONOS", "ratio": 4, "stores": [str(store.relative_to(corpus))],
         "source": None}))
    overrides = parse_overrides(["augment=dihedral", "channels=[8, 16]", "batch_size=2",
                                 "pan_patch=16", "num_workers=0"])
    train(corpus, tmp_path / "out", tmp_path / "work", seconds=1.0, probe_steps=2,
          device="cpu", commit="test", sensors=["syn"], pretexts=["matched_scale"],
          overrides=overrides)

    assert sorted(path.name for path in (tmp_path / "out" / "syn").iterdir()) == ["matched_scale"]
    record = json.loads((tmp_path / "out" / "syn" / "matched_scale" / "record.json").read_text())
    assert record["device"].startswith("CPU (")
    for branch in ("p2m", "m2p"):
        settings = record["branches"][branch]["settings"]
        assert settings["augment"] == "dihedral"
        assert settings["channels"] == [8, 16]
        assert settings["pretext"] == "matched_scale"
        saved = json.loads(
            (tmp_path / "out" / "syn" / "matched_scale" / branch / "config.json").read_text())
        assert saved["extra"]["augment"] == "dihedral"
        assert saved["config"]["channels"] == [8, 16]
