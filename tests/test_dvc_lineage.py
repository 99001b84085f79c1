"""DVC lineage: every project module a stage's command imports is one of that stage's ``deps``.

A stage whose code can change without DVC noticing reruns nothing when it should (editing the
freeze code would leave adapt on stale encoders). The imports are read from the source (``ast``),
at any depth (inside functions too), following project modules transitively from the module the
stage's ``cmd`` runs. The MLflow logging side channel (``flows.tracked``, ``tasks.tracking``)
records runs but changes no output, so the walk does not enter it. A package's lazy attributes
(PEP 562: imports inside its module-level ``__getattr__``, e.g. ``crossdiff_core.pansharpen``)
are followed only from modules that may read them: ``import package`` or ``from package import
name`` where ``name`` is no submodule.
"""

from __future__ import annotations

import ast
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


def _with_packages(modules) -> set[str]:
    with_parents = set()
    for module in modules:
        parts = module.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {module for module in with_parents if module_file(module) is not None}


def lazy_lines(path: Path) -> set[int]:
    """Lines of a package's module-level ``__getattr__`` (its lazy attributes' imports)."""
    if path.name != "__init__.py":
        return set()
    tree = ast.parse(path.read_text(), filename=str(path))
    return {line for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
            for line in range(node.lineno, node.end_lineno + 1)}


def imported_modules(path: Path, name: str) -> tuple[set[str], set[str]]:
    """Project modules ``path`` (module ``name``) imports, with the packages that hold them:
    (eager ones, lazy ones of the package's ``__getattr__``)."""
    lazy = lazy_lines(path)
    found = imports(path, name, PROJECT_MODULES)
    return (_with_packages(m for m, line in found if line not in lazy),
            _with_packages(m for m, line in found if line in lazy))


def eager_names(path: Path) -> set[str]:
    """Names a module binds when it runs (not those its ``__getattr__`` makes on first use)."""
    names: set[str] = set()

    def visit(body) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            for field in ("body", "orelse", "finalbody", "handlers"):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    visit(getattr(node, field, []))

    visit(ast.parse(path.read_text(), filename=str(path)).body)
    return names


def reads_lazy_attributes_of(path: Path, name: str) -> set[str]:
    """Packages whose lazy attributes module ``name`` may read: ``import package`` (any
    attribute) or ``from package import attribute`` (neither a submodule nor bound when the
    package runs)."""
    packages = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            packages.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            package_file = module_file(node.module)
            eager = eager_names(package_file) if package_file is not None else set()
            if any(f"{node.module}.{alias.name}" not in PROJECT_MODULES
                   and alias.name not in eager for alias in node.names):
                packages.add(node.module)
    return {package for package in packages if package != name}


def import_closure(start: str, files=None) -> dict[str, Path]:
    """Every project module reached from ``start`` (side channel excluded), name -> file
    (``files``: name -> file or None, default ``module_file``)."""
    files = files or module_file
    seen: dict[str, Path] = {}
    lazy: dict[str, set[str]] = {}  # package -> its lazy imports, followed once read
    read: set[str] = set()  # packages whose attributes a reached module may read
    stack = [start]
    parts = start.split(".")
    stack += [".".join(parts[:i]) for i in range(1, len(parts))]
    while True:
        while stack:
            name = stack.pop()
            if name in seen or name in SIDE_CHANNEL:
                continue
            path = files(name)
            if path is None:
                continue
            seen[name] = path
            eager, lazy[name] = imported_modules(path, name)
            stack.extend(eager)
            read |= reads_lazy_attributes_of(path, name)
        stack = [module for package in read & set(lazy) for module in lazy[package]
                 if module not in seen]
        if not stack:
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


def test_lazy_attributes_are_followed_only_where_they_may_be_read(tmp_path):
    """crossdiff_core's top-level API (``crossdiff_core.pansharpen``, ...) is imported on first
    use: a stage importing submodules does not run it, a module reading the package's
    attributes does."""
    assert "crossdiff_core.api" not in import_closure("flows.freeze")
    reader = tmp_path / "reader.py"
    reader.write_text("from crossdiff_core import pansharpen\n")
    closure = import_closure("flows.reader",
                             lambda name: reader if name == "flows.reader" else module_file(name))
    assert "crossdiff_core.api" in closure and "crossdiff_core.pansharpener" in closure
