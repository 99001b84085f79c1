"""The layers, read from the source with ast (every import at any depth, functions included; imports
under ``if TYPE_CHECKING:`` never run and are left out):

- crossdiff_core, the science, imports none of tasks, flows, prefect, mlflow or dvc;
- tasks import no flows;
- crossdiff_core's own modules import each other without cycles (importing ``a.b.c`` also runs the
  package ``a.b``, so that counts as an import of it), and so do its layers: each subpackage
  (``train``, ``nets``, ``io``, ...) and each top-level module (``pansharpener``, ``infer``, ...).
"""

from __future__ import annotations

from pathlib import Path

from import_graph import imports, package_files

ROOT = Path(__file__).resolve().parents[1]
CORE_FORBIDDEN = ("tasks", "flows", "prefect", "mlflow", "dvc")


def _top(name: str) -> str:
    return name.split(".")[0]


def forbidden_imports(package: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    files = package_files(package, root)
    return [
        f"{path.relative_to(root)}:{line} imports {target}"
        for module, path in files.items()
        for target, line in imports(path, module, set(files))
        if _top(target) in forbidden
    ]


def import_graph(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, with the packages each import runs."""
    files = package_files(package, root)
    graph: dict[str, set[str]] = {module: set() for module in files}
    for module, path in files.items():
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        for target, _ in imports(path, module, set(files)):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                name = ".".join(parts[:i])
                if name in files and name != module and name not in own_packages:
                    graph[module].add(name)
    return graph


def layer_graph(graph: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    """The module graph with each module folded into its layer: ``package.x`` for ``package.x.*``
    (the package itself left out: every module runs it)."""
    depth = package.count(".") + 2

    def layer(module: str) -> str:
        return ".".join(module.split(".")[:depth])

    layers: dict[str, set[str]] = {layer(m): set() for m in graph if m != package}
    for module, targets in graph.items():
        if module == package:
            continue
        layers[layer(module)].update(
            layer(t) for t in targets if t != package and layer(t) != layer(module)
        )
    return layers


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected component of more than one module (Tarjan), as one cycle in it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_one_cycle(graph, set(component)) for component in components]


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, for the message."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    return sorted(component)


def test_core_imports_no_orchestration():
    assert forbidden_imports("crossdiff_core", CORE_FORBIDDEN) == []


def test_tasks_import_no_flows():
    assert forbidden_imports("tasks", ("flows",)) == []


def test_core_modules_have_no_import_cycle():
    found = cycles(import_graph("crossdiff_core"))
    assert not found, "import cycles in crossdiff_core: " + "; ".join(
        " -> ".join(cycle) for cycle in found
    )


def test_core_layers_have_no_import_cycle():
    found = cycles(layer_graph(import_graph("crossdiff_core"), "crossdiff_core"))
    assert not found, "import cycles between crossdiff_core's layers: " + "; ".join(
        " -> ".join(cycle) for cycle in found
    )


def _write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checks_see_function_level_relative_and_forbidden_imports(tmp_path):
    root = _write_tree(tmp_path, {
        "core/__init__.py": "",
        "core/sub/__init__.py": "",
        "core/a.py": "from core.sub import b\n",
        "core/sub/b.py": "def f():\n    from ..a import thing\n    import mlflow.pyfunc\n",
        "core/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import prefect\n",
    })
    graph = import_graph("core", root)
    assert graph["core.a"] == {"core.sub", "core.sub.b"}
    assert graph["core.sub.b"] == {"core.a"}
    assert cycles(graph) == [["core.a", "core.sub.b", "core.a"]]
    assert forbidden_imports("core", CORE_FORBIDDEN, root) == [
        f"{Path('core/sub/b.py')}:3 imports mlflow.pyfunc"
    ]


def test_a_layer_cycle_without_a_module_cycle_is_found(tmp_path):
    """core.d uses core.sub.e and core.sub.f uses core.d: no module cycle, a layer cycle."""
    root = _write_tree(tmp_path, {
        "core/__init__.py": "",
        "core/sub/__init__.py": "",
        "core/d.py": "from .sub.e import x\n",
        "core/sub/e.py": "x = 1\n",
        "core/sub/f.py": "import core.d\n",
    })
    graph = import_graph("core", root)
    assert graph["core.d"] == {"core.sub", "core.sub.e"} and graph["core.sub.f"] == {"core.d"}
    assert cycles(graph) == []
    assert cycles(layer_graph(graph, "core")) == [["core.d", "core.sub", "core.d"]]
