"""Shared test set-up: isolated Prefect and MLflow state, one Prefect server per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Isolate orchestration state before prefect or mlflow are imported anywhere.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="crossdiff-tests-"))
os.environ.setdefault("PREFECT_HOME", str(_SESSION_DIR / "prefect"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{_SESSION_DIR / 'mlflow.db'}")
os.environ.setdefault("TQDM_DISABLE", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Real scenes and golden values: ../shared beside the project, or CROSSDIFF_SHARED.
SHARED_DIR = Path(os.environ.get("CROSSDIFF_SHARED", PROJECT_ROOT.parent / "shared"))
SHARED_DATA = SHARED_DIR / "data"
GOLDEN_DIR = SHARED_DIR / "golden"


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip_gpu = pytest.mark.skip(reason="no CUDA device on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server (its own database) shared by every test that runs flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test scenes not found at {SHARED_DATA}: put the project's shared "
                    "folder (data/, golden/) beside the project or set CROSSDIFF_SHARED")
    return SHARED_DATA


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN_DIR.is_dir():
        pytest.skip(f"golden values of the reference toolbox not found at {GOLDEN_DIR}: put the "
                    "shared folder beside the project or set CROSSDIFF_SHARED")
    return GOLDEN_DIR
