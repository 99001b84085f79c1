"""DVC lineage: every project module a stage's command imports is one of that stage's ``deps``.

A stage whose code can change without DVC noticing reruns nothing when it should (editing the
freeze code would leave adapt on stale encoders). The imports are read from the source (``ast``),
at any depth (inside functions too), following project modules transitively from the module the
stage's ``cmd`` runs. The MLflow logging side channel (``flows.tracked``, ``tasks.tracking``)
records runs but changes no output, so the walk does not enter it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from import_graph import imports, package_files

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crossdiff_core", "tasks", "flows")
SIDE_CHANNEL = {"flows.tracked", "tasks.tracking"}
PROJECT_MODULES = {name for package in PACKAGES for name in package_files(package)}


def module_file(name: str) -> Path | None:
    """The source file of a project module (package: its ``__init__.py``), or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, name: str) -> set[str]:
    """Project modules ``path`` (module ``name``) imports, with the packages that hold them."""
    with_parents = set()
    for module, _ in imports(path, name, PROJECT_MODULES):
        parts = module.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {module for module in with_parents if module_file(module) is not None}


def import_closure(start: str) -> dict[str, Path]:
    """Every project module reached from ``start`` (side channel excluded), name -> file."""
    seen: dict[str, Path] = {}
    stack = [start]
    parts = start.split(".")
    stack += [".".join(parts[:i]) for i in range(1, len(parts))]
    while stack:
        name = stack.pop()
        if name in seen or name in SIDE_CHANNEL:
            continue
        path = module_file(name)
        if path is None:
            continue
        seen[name] = path
        stack.extend(imported_modules(path, name))
    return seen


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(ROOT)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


def stage_module(stage: dict) -> str:
    match = re.search(r"python -m ([\w.]+)", stage["cmd"])
    assert match, f"stage command {stage['cmd']!r} does not run a project module"
    return match.group(1)


@pytest.mark.parametrize("name", sorted(stages()))
def test_every_imported_project_module_is_a_dependency(name):
    stage = stages()[name]
    deps = [str(dep) for dep in stage.get("deps", [])]
    closure = import_closure(stage_module(stage))
    missing = sorted(str(path.relative_to(ROOT)) for path in closure.values()
                     if not covered(path, deps))
    assert not missing, f"dvc.yaml stage {name!r} imports modules its deps do not list: {missing}"


def test_the_walk_follows_imports_inside_functions_and_relative_ones():
    # flows.freeze is a stage module; the closure must reach the diffusion maths it uses through
    # the core (a failure here means the walk itself broke, not the pipeline).
    closure = import_closure("flows.freeze")
    assert "crossdiff_core.diffusion.gaussian" in closure
    assert "crossdiff_core" in closure  # packages count: their __init__ runs on import
    assert not SIDE_CHANNEL & set(closure)
