"""Shared test set-up: isolated Prefect and MLflow state, one Prefect server per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Isolate orchestration state before prefect or mlflow are imported anywhere; removed when the
# session ends (pytest_unconfigure).
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="crossdiff-tests-"))
os.environ.setdefault("PREFECT_HOME", str(_SESSION_DIR / "prefect"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{_SESSION_DIR / 'mlflow.db'}")
os.environ.setdefault("TQDM_DISABLE", "1")

# Golden values: tests/data/golden in the repository. Real scenes (and the anchor crops that may
# not be copied): ../shared beside the project, or CROSSDIFF_SHARED.
from tests.golden_helpers import GOLDEN_DIR, SHARED_DIR  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = SHARED_DIR / "data"


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_unconfigure(config):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


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
    """The real WorldView-3 and IKONOS scenes (licences in its README: not copyable here)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test scenes not found at {SHARED_DATA}: the WorldView-3 pair "
                    "(CristianICS/gdal-pansharpening, GPL-3.0) and IKONOS imgIK.mat (GRIP-UNINA, "
                    "non-profit use only) may not be copied into the project; put the project's "
                    "shared folder (data/) beside the project or set CROSSDIFF_SHARED")
    return SHARED_DATA


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The reference toolbox's golden values, in the repository (tests/data/golden/README.md)."""
    assert GOLDEN_DIR.is_dir(), f"{GOLDEN_DIR} is part of the repository and is missing"
    return GOLDEN_DIR
