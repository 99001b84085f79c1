"""A scratch git + DVC copy of the project for tests that run `dvc repro` for real.

The copy holds the project's tracked files and untracked ones git does not ignore, with
tests/params-tiny.yaml (plus any changes) as params.yaml, committed in a git repository of its own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import PROJECT_ROOT

COMMAND_TIMEOUT = 600


def run(args: list[str], cwd: Path, env: dict,
        timeout: int = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    """Run a command; an AssertionError with the end of its output when it fails."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def stages_run(output: str) -> list[str]:
    """The stages a `dvc repro` output says it ran, in order."""
    return re.findall(r"^Running stage '([^']+)'", output, flags=re.MULTILINE)


def set_params(root: Path, changes: dict[str, object]) -> None:
    """Set ``section.key`` values in the copy's params.yaml."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        section, name = key.split(".", 1)
        params[section][name] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def copy_project(root: Path, changes: dict[str, object] | None = None) -> dict[str, str]:
    """Copy the project into ``root`` with tiny params (``changes`` applied), commit it, and
    return the environment its commands run in (this interpreter's tools first, the running
    Prefect server, an MLflow store and params file of the copy's own)."""
    from prefect.settings import PREFECT_API_URL

    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        source = PROJECT_ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    shutil.copy2(root / "tests" / "params-tiny.yaml", root / "params.yaml")
    if changes:
        set_params(root, changes)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "CROSSDIFF_PARAMS": str(root / "params.yaml"),
        "TQDM_DISABLE": "1",
    }
    for args in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=test", "-c", "user.email=test@example.org",
                  "commit", "-qm", "copy"]):
        run(args, root, env)
    return env
