"""Every Python block of the README runs as written, in a folder laid out as `make repro` leaves
the project: the embedded Landsat-8 sample ingested into data/zarr, a pansharpener in
data/models/head (tiny encoders, untrained head: the snippets' calls, not its quality) registered
as the champion in mlflow.db there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crossdiff_core.ingest import ingest_source
from crossdiff_core.nets.extractor import load_extractor
from crossdiff_core.pansharpener import save_pansharpener
from tests.adapt_helpers import scrambled_pansharpener, tiny_extractor, write_tiny_pretrained

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SAMPLE = ROOT / "data" / "raw" / "LC80200392015216LGN00.tar.gz"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    return [match.group(1) for match in BLOCK.finditer(text)]


def test_the_readme_has_python_blocks_and_they_are_found():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3
    assert any("crossdiff_core" in block for block in blocks)
    assert any("mlflow.pyfunc.load_model" in block for block in blocks)
    assert python_blocks("text\n```python\nprint(1)\n```\n```bash\nls\n```\n") == ["print(1)\n"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with what the README's snippets refer to (paths relative to it)."""
    from tasks import tracking

    root = tmp_path_factory.mktemp("readme")
    store = ingest_source(str(SAMPLE), root / "data" / "zarr", progress=False).store
    scratch = tmp_path_factory.mktemp("readme-model")
    encoders = tiny_extractor(write_tiny_pretrained(scratch / "pretrain", "Landsat-8"), store,
                              scratch / "encoders")
    head = save_pansharpener(scrambled_pansharpener(load_extractor(encoders), "Landsat-8"),
                             root / "data" / "models" / "head")
    previous = Path.cwd()
    uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(root)
    try:
        with tracking.stage_run("adapt", {}):
            version = tracking.register_candidate(head, "crossdiff-pansharpener", "Landsat-8")
        decision = tracking.promote_if_better("crossdiff-pansharpener", version,
                                              {"sample": {"hqnr": 0.9, "q2n": 0.9}})
        assert decision["promoted"], decision
    finally:
        os.chdir(previous)
        if uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = uri
    return root


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text()))))
def test_readme_python_block_runs_as_written(workspace, index):
    code = python_blocks(README.read_text())[index]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"README block {index}:\n{code}\n{done.stderr[-3000:]}"
