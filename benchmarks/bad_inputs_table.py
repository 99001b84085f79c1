"""The bad-input table of issue 14: builds each bad input of the issue in a temporary folder, runs
the ``crossdiff`` command a user would run on it (a subprocess) and prints the markdown table
"input | command | exit code | first line of the message | what was left".

"What was left": every file or folder (hidden ones included) the command added to its working
folder, outside the inputs; "nothing" is the goal.

    python benchmarks/bad_inputs_table.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from ingest_helpers import geotiff_pair, landsat_bundle, tar_folder, write_geotiff  # noqa: E402

from crossdiff_core.synthetic import write_synthetic_store  # noqa: E402


def _store(folder: Path) -> Path:
    return write_synthetic_store(folder / "zarr", "QuickBird", ms_shape=(32, 32), seed=0)


def damaged_store(kind: str):
    def build(folder: Path) -> list[str]:
        store = _store(folder)
        chunks = sorted(p for p in (store / "pan" / "pan").rglob("*") if p.is_file()
                        and p.name != "zarr.json")
        if kind == "missing chunk":
            chunks[0].unlink()
        elif kind == "missing ms/":
            shutil.rmtree(store / "ms")
        elif kind == "garbage chunk":
            chunks[0].write_bytes(os.urandom(chunks[0].stat().st_size))
        elif kind == "truncated chunk":
            chunks[0].write_bytes(chunks[0].read_bytes()[:10])
        elif kind == "garbage zarr.json":
            (store / "zarr.json").write_text("{not json")
        return ["pansharpen", "--model", "gsa", "--scene", str(store),
                str(folder / "fused.tif")]
    return build


def hostile_mtl(folder: Path) -> list[str]:
    bundle, _, _ = landsat_bundle(folder / "bundle")
    mtl = next(bundle.glob("*_MTL.txt"))
    mtl.write_text(mtl.read_text().replace('LANDSAT_SCENE_ID = "LC80200392015216LGN00"',
                                           'LANDSAT_SCENE_ID = "../../ESCAPED"'))
    archive = tar_folder(bundle, folder / "hostile.tar.gz")
    shutil.rmtree(bundle)
    return ["ingest", str(archive), "--out", str(folder / "out")]


def empty_targz(folder: Path) -> list[str]:
    (folder / "empty.tar.gz").write_bytes(b"")
    return ["ingest", str(folder / "empty.tar.gz"), "--out", str(folder / "out")]


def empty_mat(folder: Path) -> list[str]:
    (folder / "empty.mat").write_bytes(b"")
    return ["ingest", str(folder / "empty.mat"), "--out", str(folder / "out")]


def nan_raster(folder: Path) -> list[str]:
    pan_path, ms_path, pan, ms = geotiff_pair(folder / "pair", pan_margin=(0, 0, 0, 0),
                                              dtype="float32")
    pan[3, 3] = np.nan
    write_geotiff(pan_path, pan, Affine(0.5, 0, 400_000.0, 0, -0.5, 4_000_000.0), nodata=np.nan)
    write_geotiff(ms_path, ms, Affine(2.0, 0, 400_000.0, 0, -2.0, 4_000_000.0), nodata=np.nan)
    return ["ingest", str(pan_path), str(ms_path), "--sensor", "QB", "--out",
            str(folder / "out")]


CASES = [
    ("store with a chunk file deleted", damaged_store("missing chunk")),
    ("store with its ms/ folder deleted", damaged_store("missing ms/")),
    ("store with a garbage chunk", damaged_store("garbage chunk")),
    ("store with a truncated chunk", damaged_store("truncated chunk")),
    ("store with a garbage zarr.json", damaged_store("garbage zarr.json")),
    ('Landsat MTL with LANDSAT_SCENE_ID = "../../ESCAPED"', hostile_mtl),
    ("empty .tar.gz", empty_targz),
    ("empty .mat", empty_mat),
    ("float rasters with NaN pixels and nodata NaN", nan_raster),
]


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _left(before: set[str], after: set[str], folder: Path) -> str:
    new = sorted(after - before)
    tops = sorted({n for n in new if not any(n.startswith(o + "/") for o in new if o != n)})
    if not tops:
        return "nothing"
    shown = []
    for name in tops:
        path = folder / name
        shown.append(f"`{name}/` ({sum(1 for _ in path.rglob('*'))} entries)" if path.is_dir()
                     else f"`{name}`")
    return ", ".join(shown)


def main() -> int:
    rows = ["| input | command | exit code | first line of the message | what was left |",
            "|---|---|---|---|---|"]
    crossdiff = shutil.which("crossdiff") or str(Path(sys.executable).parent / "crossdiff")
    started = time.perf_counter()
    for label, build in CASES:
        with tempfile.TemporaryDirectory(prefix="crossdiff-bad-") as tmp:
            folder = Path(tmp)
            args = build(folder)
            before = _listing(folder)
            done = subprocess.run([crossdiff, *args], capture_output=True, text=True,
                                  cwd=folder, env={**os.environ, "TQDM_DISABLE": "1"})
            after = _listing(folder)
            lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            first = lines[0] if lines else ""
            first = first.replace(str(folder), "$TMP").replace("|", "\\|")
            n_lines = len(lines)
            command = " ".join(["crossdiff", args[0]])
            rows.append(f"| {label} | `{command}` | {done.returncode} | {first}"
                        f"{'' if n_lines <= 1 else f' (+{n_lines - 1} lines)'} "
                        f"| {_left(before, after, folder)} |")
    print("\n".join(rows))
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
