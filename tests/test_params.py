"""One typed config per params.yaml section: defaults, unknown keys, overrides, and the keys each
DVC stage lists (every key it reads that changes its outputs, nothing else)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from crossdiff_core.config import SECTIONS, ConfigError, field_names, section_values
from flows.params import NO_RERUN, STAGE_PARAMS, cli_config, dvc_params, load_config

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
TINY = ROOT / "tests" / "params-tiny.yaml"


def _dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _listed(stage: dict) -> list[str]:
    listed = []
    for entry in stage.get("params", []):
        assert isinstance(entry, str), f"params from another file are not expected: {entry}"
        listed.append(entry)
    return listed


def test_every_stage_lists_exactly_the_keys_it_reads_that_change_its_outputs():
    stages = _dvc_stages()
    modules = {name: re.fullmatch(r"python -m flows\.(\w+)", stage["cmd"]).group(1)
               for name, stage in stages.items()}
    assert set(STAGE_PARAMS) == set(stages) and all(m == n for n, m in modules.items())
    for name, stage in stages.items():
        listed = _listed(stage)
        assert len(listed) == len(set(listed)), f"{name} lists a key twice"
        for key in listed:
            section, _, field = key.partition(".")
            assert field, f"dvc.yaml stage {name} lists the whole section {key}: list its keys"
            assert field in field_names(SECTIONS[section]), f"{name}: {key} is no config key"
        assert set(listed) == set(dvc_params(name)), (
            f"dvc.yaml stage {name}: missing {sorted(set(dvc_params(name)) - set(listed))}, "
            f"not read {sorted(set(listed) - set(dvc_params(name)))}")


def test_keys_that_change_no_output_rerun_nothing():
    for section, keys in NO_RERUN.items():
        assert set(keys) <= set(field_names(SECTIONS[section])), section
        assert all(reason.strip() for reason in keys.values())
    listed = {key for stage in _dvc_stages().values() for key in _listed(stage)}
    for key in ("pretrain.progress", "pretrain.device", "pretrain.num_workers",
                "adapt.device", "ingest.scheduler"):
        assert key not in listed
    # What a stage reads, less what changes nothing, is listed: a stage that reads a whole
    # section lists every other key of it.
    assert set(dvc_params("adapt")) >= {f"adapt.{k}" for k in field_names(SECTIONS["adapt"])
                                        if k != "device"}


def test_stage_mains_read_their_sections_through_the_declared_reads():
    """``stage_config(stage)`` loads only the sections ``STAGE_PARAMS`` declares; the stage
    modules read params.yaml no other way."""
    for stage in STAGE_PARAMS:
        tree = ast.parse((ROOT / "flows" / f"{stage}.py").read_text())
        called = {node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                  for node in ast.walk(tree) if isinstance(node, ast.Call)
                  and isinstance(node.func, ast.Name | ast.Attribute)}
        assert "stage_config" in called, stage
        assert not called & {"load_config", "read_params", "safe_load"}, stage


@pytest.mark.parametrize("path", [PARAMS, TINY], ids=["params.yaml", "params-tiny.yaml"])
def test_params_files_hold_every_key_of_every_section(path):
    raw = yaml.safe_load(path.read_text())
    assert list(raw) == list(SECTIONS)
    for section, config in SECTIONS.items():
        assert set(raw[section]) == set(field_names(config)), section
        assert section_values(load_config(section, path)) == raw[section]


def test_defaults_are_the_values_of_params_yaml():
    raw = yaml.safe_load(PARAMS.read_text())
    for section, config in SECTIONS.items():
        assert section_values(config()) == raw[section], section


@pytest.mark.parametrize("section, values, needle", [
    ("adapt", {"learning_rate": 0.1}, "unknown key 'learning_rate' in section 'adapt'"),
    ("pretrain", {"p2m": {"stepz": 3}}, "unknown key 'stepz' in section 'pretrain.p2m'"),
    ("cross_sensor", {"adapt": {"lr_rate": 1}}, "unknown key 'lr_rate' in section "
                                                "'cross_sensor.adapt'"),
    ("evaluate", {"border_cut": "wide"}, "evaluate.border_cut: Input should be a valid integer"),
    ("pansharpen", {"format": "png"}, "pansharpen.format 'png'"),
])
def test_bad_keys_and_values_are_refused_naming_key_and_section(tmp_path, section, values,
                                                                needle):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({section: values}))
    with pytest.raises(ConfigError, match=re.escape(needle)) as caught:
        load_config(section, path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_typo_in_a_section_stops_the_stage(tmp_path, monkeypatch):
    from flows.params import stage_config

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"adapt": {"learning_rate": 0.1}}))
    monkeypatch.setenv("CROSSDIFF_PARAMS", str(path))
    with pytest.raises(ConfigError, match="'learning_rate' in section 'adapt'"):
        stage_config("adapt")


def test_command_options_override_the_file_in_one_place(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"pretrain": {"steps": 20, "p2m": {"steps": 50, "lr": 0.01}},
                                    "pansharpen": {"tile": 256}}))
    pretrain = cli_config("pretrain", path, steps=7, lr=None, out=tmp_path / "m")
    assert pretrain.out == str(tmp_path / "m")
    # An option wins over the file's per-branch value too; other per-branch values stay.
    assert pretrain.branch_config("p2m").steps == 7 and pretrain.branch_config("p2m").lr == 0.01
    assert cli_config("pansharpen", path).tile == 256
    assert cli_config("pansharpen", path, tile=512).tile == 512
    # No file: the built-in defaults, which are params.yaml's.
    assert cli_config("pansharpen", tmp_path / "missing.yaml").tile == 640
    with pytest.raises(ConfigError, match="--tile"):
        cli_config("pansharpen", path, tile=0)


def test_a_missing_params_file_stops_a_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="parameters file not found"):
        load_config("ingest", tmp_path / "missing.yaml")


def test_dvc_reruns_only_the_stages_whose_outputs_a_changed_key_changes(tmp_path):
    """DVC itself, on a scratch project with the real params.yaml and every stage's ``params``
    (commands that do nothing): a key that changes no output leaves every stage up to date."""
    import json
    import subprocess
    import sys

    raw = yaml.safe_load(PARAMS.read_text())
    stages = {name: {"cmd": "true", "params": _listed(stage)}
              for name, stage in _dvc_stages().items()}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))

    def dvc(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    dvc("init", "--no-scm", "-q")
    dvc("commit", "-f", "-q")
    changes = {"pretrain.progress": False, "pretrain.device": "cuda", "pretrain.num_workers": 4,
               "adapt.device": "cpu", "ingest.scheduler": "processes", "adapt.lr": 2e-3,
               "pretrain.steps": 301}
    rerun = {}
    for key, value in changes.items():
        section, name = key.split(".")
        changed = yaml.safe_load(yaml.safe_dump(raw))
        changed[section][name] = value
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(changed))
        rerun[key] = set(json.loads(dvc("status", "--json") or "{}"))
    assert rerun == {"pretrain.progress": set(), "pretrain.device": set(),
                     "pretrain.num_workers": set(), "adapt.device": set(),
                     "ingest.scheduler": set(),
                     # The evaluation's reduced-resolution head and the random-encoder heads are
                     # trained with the adapt settings; evaluate follows through their outputs.
                     "adapt.lr": {"adapt", "reduced_adapt", "ablation"},
                     "pretrain.steps": {"pretrain", "reduced"}}
