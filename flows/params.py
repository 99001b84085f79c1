"""Reading params.yaml, the single source of every hyperparameter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


def params_path() -> Path:
    """`CROSSDIFF_PARAMS` if set, else ``params.yaml`` in the working directory (as DVC runs it)."""
    return Path(os.environ.get("CROSSDIFF_PARAMS", "params.yaml"))


def load_params(section: str | None = None, path: Path | None = None) -> dict[str, Any]:
    """The whole params file, or one section of it, with a clear error when either is missing."""
    path = path or params_path()
    if not path.exists():
        raise FileNotFoundError(f"{path}: parameters file not found (run from the project root, "
                                "or set CROSSDIFF_PARAMS)")
    params = yaml.safe_load(path.read_text()) or {}
    if section is None:
        return params
    if section not in params:
        raise KeyError(f"{path}: no '{section}' section (compare with tests/params-tiny.yaml)")
    return params[section] or {}
