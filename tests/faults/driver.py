"""Fault injection: SIGKILL an operation at seeded points, then check what it left and rerun it.

``python -m tests.faults.driver OP ROOT [--seed S] [--trials N] [--timed M]`` runs the trials of
one operation (``ingest``, ``pretrain``, ``head``, ``cog``, ``landing``) under ``ROOT`` and prints
one JSON line per trial, then a summary line. The parent imports everything once and never
computes: every step runs in a forked child (no thread pool or torch state crosses a fork).

- setup: a child builds the inputs once in ``ROOT/base`` (tiny synthetic data).
- reference: a child copies them to ``ROOT/reference`` and runs the operation uninterrupted while
  counting the calls that write, rename, remove or flush something (``os.replace``, ``os.rename``,
  ``os.fsync``, ``os.unlink``, ``os.rmdir``, ``os.mkdir``, ``os.open`` for writing, ``open`` for
  writing, ``Path.write_bytes``/``write_text`` and, for the COG, each strip the writer writes):
  the count and the duration calibrate the trials.
- trial (deterministic, ``--trials``): a fresh copy of ``base``; a child runs the operation with
  a hook that SIGKILLs it just before the N-th such call (N drawn with the seed);
  trial (timed, ``--timed``): the parent SIGKILLs the child after a seeded delay within the
  reference's duration.
- check: a child inspects what the killed run left (``inspect``: every visible output complete
  and verifiable, or absent; the inputs and earlier complete outputs still there), reruns the
  operation without a hook and compares the result with the reference (``final``: equal, and no
  hidden partial left).

"nothing lost": no input and no complete earlier output disappeared or changed, and the rerun
gave the whole result. "nothing wrong": no visible output was partial or unreadable after the
kill, and after the rerun the result equals the uninterrupted run with no partial left.
"""

from __future__ import annotations

import argparse
import builtins
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

OPS: dict[str, Op] = {}


@dataclass
class Op:
    """One operation under test. ``scenarios``: starting states (each a function preparing a
    trial folder copied from base, e.g. with an older output in place)."""

    name: str
    setup: Callable[[Path], None]
    run: Callable[[Path], None]
    inspect: Callable[[Path, Path, str], tuple[list[str], list[str]]]
    final: Callable[[Path, Path, str], tuple[list[str], list[str]]]
    scenarios: tuple[str, ...] = ("fresh",)
    prepare: Callable[[Path, str], None] | None = None
    extra_hooks: Callable[[], list[tuple[object, str]]] | None = None


def op(**kwargs) -> None:
    OPS[kwargs["name"]] = Op(**kwargs)


# ---------------------------------------------------------------- the kill hook (in a child)

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def install_hook(kill_at: int | None, extra: list[tuple[object, str]] = ()) -> list[int]:
    """Count (and, at call ``kill_at``, SIGKILL this process just before) every call that writes,
    renames, removes or flushes; returns the live counter ``[calls]``."""
    count = [0]
    lock = threading.Lock()

    def tick() -> None:
        with lock:
            count[0] += 1
            now = count[0]
        if kill_at is not None and now == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(function):
        def hooked(*args, **kwargs):
            tick()
            return function(*args, **kwargs)
        return hooked

    for name in ("replace", "rename", "fsync", "unlink", "rmdir", "mkdir"):
        setattr(os, name, wrap(getattr(os, name)))
    real_os_open, real_open = os.open, builtins.open

    def os_open(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS:
            tick()
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if any(c in str(mode) for c in "wax+"):
            tick()
        return real_open(file, mode, *args, **kwargs)

    os.open, builtins.open = os_open, open_
    for owner, name in [(Path, "write_bytes"), (Path, "write_text"), *extra]:
        setattr(owner, name, wrap(getattr(owner, name)))
    return count


def _child(work: Callable[[], object]) -> int:
    """Fork, run ``work`` in the child (exit 0; 3 on an exception, traceback on stderr)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            work()
        except BaseException:
            traceback.print_exc()
            code = 3
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def _wait(pid: int) -> str:
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        signal_number = os.WTERMSIG(status)
        return "killed" if signal_number == signal.SIGKILL else f"signal {signal_number}"
    return "completed" if os.WEXITSTATUS(status) == 0 else f"failed ({os.WEXITSTATUS(status)})"


def _use_tmp(folder: Path) -> None:
    tmp = folder / "tmp"
    tmp.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = str(tmp)


def _run_op(operation: Op, folder: Path, kill_at: int | None, counter_file: Path | None) -> None:
    _use_tmp(folder)
    extra = operation.extra_hooks() if operation.extra_hooks else []
    count = install_hook(kill_at, extra)
    operation.run(folder)
    if counter_file is not None:
        counter_file.write_text(str(count[0]))


# ---------------------------------------------------------------- helpers for the checks

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hidden_entries(folder: Path) -> list[str]:
    """Hidden names anywhere under ``folder`` (partials, temporaries, locks, scratch folders)."""
    found = []
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            if name.startswith("."):
                found.append(str((Path(root) / name).relative_to(folder)))
    return sorted(found)


def dead_owner(name: str) -> bool:
    """Whether a hidden sibling names an owner process that is not running."""
    from crossdiff_core.atomic import _OWNED, owner_alive

    match = _OWNED.match(Path(name).name)
    return bool(match) and not owner_alive(int(match["pid"]), match["host"])


def leftover_extractions(folder: Path) -> list[str]:
    tmp = folder / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


# ---------------------------------------------------------------- ingest

INGEST_CHUNK = 8


def _ingest_setup(base: Path) -> None:
    from tests.ingest_helpers import landsat_bundle, tar_folder

    bundle, _, _ = landsat_bundle(base / "bundle", ms_shape=(16, 20), seed=0)
    tar_folder(bundle, base / "scene.tar.gz")
    shutil.rmtree(bundle)


def _ingest_run(folder: Path) -> None:
    from crossdiff_core.ingest import ingest_source

    ingest_source(folder / "scene.tar.gz", folder / "out", chunk_size=INGEST_CHUNK)


def _visible_stores(out: Path) -> tuple[list[Path], list[str]]:
    """Visible ``*.zarr`` folders under ``out`` and other visible entries that are no store."""
    stores, strays = [], []
    if not out.exists():
        return stores, strays
    for sensor in out.iterdir():
        if sensor.name.startswith("."):
            continue
        if not sensor.is_dir():
            strays.append(str(sensor))
            continue
        for entry in sensor.iterdir():
            if entry.name.startswith("."):
                continue
            if entry.name.endswith(".zarr.stac.json") and entry.with_suffix("").with_suffix(
                    "").is_dir():
                continue  # the STAC Item beside its store (a store without one is found below)
            (stores if entry.suffix == ".zarr" and entry.is_dir() else strays).append(entry)
    return stores, [str(s) for s in strays]


def _store_problems(out: Path) -> list[str]:
    from crossdiff_core.io.integrity import verify_store

    stores, strays = _visible_stores(out)
    wrong = [f"visible entry that is no store: {s}" for s in strays]
    for store in stores:
        report = verify_store(store)
        if not report.ok:
            wrong.append(f"visible store fails verify: {store.name}: {report.problems[:2]}")
    return wrong


def _ingest_inspect(folder: Path, base: Path, scenario: str) -> tuple[list[str], list[str]]:
    lost = [] if sha256(folder / "scene.tar.gz") == sha256(base / "scene.tar.gz") else [
        "source archive changed"]
    return lost, _store_problems(folder / "out")


def _store_values(store: Path) -> tuple:
    from crossdiff_core.io.store import open_scene, read_store_attrs

    scene = open_scene(store)
    return scene.pan.values, scene.ms.values, read_store_attrs(store)


def _same_store(store: Path, reference: Path, folder: Path, reference_folder: Path) -> bool:
    """Same pixels and attributes; the source's path (``source_uris``) names the trial's own
    folder, so each folder is replaced by one placeholder before comparing."""
    import json

    import numpy as np

    pan, ms, attrs = _store_values(store)
    pan_r, ms_r, attrs_r = _store_values(reference)

    def placed(values: dict, where: Path) -> str:
        return json.dumps(values, sort_keys=True, default=str).replace(str(where), "<folder>")

    return (np.array_equal(pan, pan_r) and np.array_equal(ms, ms_r)
            and placed(attrs, folder) == placed(attrs_r, reference_folder))


def _ingest_final(folder: Path, reference: Path, scenario: str) -> tuple[list[str], list[str]]:
    _ingest_run(folder)
    lost, wrong = [], _store_problems(folder / "out")
    stores, _ = _visible_stores(folder / "out")
    expected, _ = _visible_stores(reference / "out")
    if [s.name for s in stores] != [s.name for s in expected]:
        lost.append(f"rerun gave stores {[s.name for s in stores]}")
    elif not _same_store(stores[0], expected[0], folder, reference):
        wrong.append("rerun store differs from the uninterrupted one")
    wrong += [f"hidden entry left: {h}" for h in hidden_entries(folder / "out")]
    wrong += [f"extraction left in TMPDIR: {e}" for e in leftover_extractions(folder)]
    return lost, wrong


op(name="ingest", setup=_ingest_setup, run=_ingest_run, inspect=_ingest_inspect,
   final=_ingest_final)


# ---------------------------------------------------------------- pretraining checkpoints

TINY_PRETRAIN = {"pan_patch": 16, "batch_size": 4, "channels": [8, 16], "timesteps": 100,
                 "sample_steps": 2, "progress": False, "steps": 4, "checkpoint_every": 1,
                 "branch": "p2m"}


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _pretrain_setup(base: Path) -> None:
    from crossdiff_core.synthetic import write_synthetic_store

    write_synthetic_store(base / "zarr", "Landsat-8", ms_shape=(24, 32), seed=5)


def _pretrain_run(folder: Path) -> None:
    from crossdiff_core.train.config import PretrainConfig
    from crossdiff_core.train.pretrain import train_branch

    _single_thread()
    train_branch(PretrainConfig(scenes=[str(folder / "zarr")], out=str(folder / "out"),
                                **TINY_PRETRAIN))


def _pretrain_outputs(branch: Path) -> list[str]:
    """What is wrong with the visible outputs of a branch folder (each complete, or absent)."""
    import csv

    from crossdiff_core.nets.unet import load_unet
    from crossdiff_core.train.checkpoint import load_checkpoint

    wrong = []
    if not branch.exists():
        return wrong
    checks = {
        "checkpoint.pt": lambda p: load_checkpoint(p)["step"],
        "config.json": lambda p: load_unet(p.parent),
        "weights.pt": lambda p: __import__("torch").load(p, map_location="cpu"),
        "losses.csv": lambda p: [float(r["loss"]) for r in csv.DictReader(p.open())],
        "diagnostics.json": lambda p: json.loads(p.read_text()),
        "quicklook.png": lambda p: __import__("PIL.Image").Image.open(p).load(),
    }
    for entry in sorted(branch.iterdir()):
        if entry.name.startswith("."):
            continue
        check = checks.get(entry.name)
        if check is None:
            wrong.append(f"unexpected visible file {entry.name}")
            continue
        try:
            check(entry)
        except Exception as error:  # noqa: BLE001 - any failure to load is the finding
            wrong.append(f"{entry.name} does not load: {type(error).__name__}: {error}"[:200])
    return wrong


def _pretrain_inspect(folder: Path, base: Path, scenario: str) -> tuple[list[str], list[str]]:
    return [], _pretrain_outputs(folder / "out" / "p2m")


def _same_weights(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _pretrain_final(folder: Path, reference: Path, scenario: str) -> tuple[list[str], list[str]]:
    from crossdiff_core.nets.unet import load_unet

    _pretrain_run(folder)
    branch, expected = folder / "out" / "p2m", reference / "out" / "p2m"
    lost, wrong = [], _pretrain_outputs(branch)
    names = sorted(p.name for p in branch.iterdir() if not p.name.startswith("."))
    if names != sorted(p.name for p in expected.iterdir() if not p.name.startswith(".")):
        lost.append(f"rerun outputs {names}")
        return lost, wrong
    if not _same_weights(load_unet(branch).state_dict(), load_unet(expected).state_dict()):
        wrong.append("rerun weights differ from the uninterrupted run")
    if (branch / "losses.csv").read_text() != (expected / "losses.csv").read_text():
        wrong.append("rerun losses differ from the uninterrupted run")
    wrong += [f"hidden entry left: {h}" for h in hidden_entries(folder / "out")]
    return lost, wrong


op(name="pretrain", setup=_pretrain_setup, run=_pretrain_run, inspect=_pretrain_inspect,
   final=_pretrain_final)


# ---------------------------------------------------------------- head (pansharpener) save

def _head_setup(base: Path) -> None:
    from crossdiff_core.nets.extractor import load_extractor
    from crossdiff_core.pansharpener import save_pansharpener
    from crossdiff_core.synthetic import write_synthetic_store
    from tests.adapt_helpers import scrambled_pansharpener, tiny_extractor, write_tiny_pretrained

    _single_thread()
    store = write_synthetic_store(base / "zarr", "QuickBird", ms_shape=(16, 16), seed=0)
    write_tiny_pretrained(base / "pretrained", "QuickBird")
    tiny_extractor(base / "pretrained", store, base / "encoders")
    shutil.rmtree(base / "pretrained")
    old = scrambled_pansharpener(load_extractor(base / "encoders"), "QuickBird", seed=7)
    save_pansharpener(old, base / "older-head")


def _head_prepare(folder: Path, scenario: str) -> None:
    if scenario == "over an older head":
        shutil.copytree(folder / "older-head", folder / "head")


def _head_run(folder: Path) -> None:
    from crossdiff_core.nets.extractor import load_extractor
    from crossdiff_core.pansharpener import save_pansharpener
    from tests.adapt_helpers import scrambled_pansharpener

    _single_thread()
    model = scrambled_pansharpener(load_extractor(folder / "encoders"), "QuickBird", seed=1)
    save_pansharpener(model, folder / "head")


def _head_state(folder: Path) -> dict:
    from crossdiff_core.pansharpener import load_pansharpener

    return load_pansharpener(folder).state_dict()


def _head_inspect(folder: Path, base: Path, scenario: str) -> tuple[list[str], list[str]]:
    from crossdiff_core.pansharpener import is_pansharpener_folder

    head, lost, wrong = folder / "head", [], []
    older = scenario == "over an older head"
    visible = sorted(p.name for p in head.iterdir() if not p.name.startswith(".")) \
        if head.exists() else []
    if not is_pansharpener_folder(head):
        if older:
            lost.append("the older head is gone (no config.json) and the new one is not there")
        return lost, [f"visible file {name} in a folder that is no model"
                      for name in visible if name not in ("weights.pt",)]
    try:
        state = _head_state(head)
    except Exception as error:  # noqa: BLE001
        return lost, [f"head does not load: {type(error).__name__}: {error}"[:200]]
    candidates = [_head_state(base.parent / "reference" / "head")]
    if older:
        candidates.append(_head_state(base / "older-head"))
    if not any(_same_weights(state, c) for c in candidates):
        wrong.append("head loads but is neither the older nor the new one")
    return lost, wrong


def _head_final(folder: Path, reference: Path, scenario: str) -> tuple[list[str], list[str]]:
    _head_run(folder)
    lost, wrong = [], []
    if not _same_weights(_head_state(folder / "head"), _head_state(reference / "head")):
        wrong.append("rerun head differs from the uninterrupted save")
    wrong += [f"hidden entry left: {h}" for h in hidden_entries(folder / "head")]
    return lost, wrong


op(name="head", setup=_head_setup, run=_head_run, inspect=_head_inspect, final=_head_final,
   scenarios=("fresh", "over an older head"), prepare=_head_prepare)


# ---------------------------------------------------------------- whole-scene COG

def _cog_setup(base: Path) -> None:
    from crossdiff_core.synthetic import write_synthetic_store

    write_synthetic_store(base / "zarr", "QuickBird", ms_shape=(48, 48), seed=3)
    _cog_write(base, "gsa", base / "older.tif")


def _cog_write(folder: Path, method: str, out: Path) -> None:
    from crossdiff_core.infer import pansharpen_scene
    from crossdiff_core.infer.fusers import baseline_fuser
    from crossdiff_core.io.store import find_scene_stores, open_scene

    scene = open_scene(find_scene_stores(folder / "zarr")[0])
    pansharpen_scene(scene, baseline_fuser(method, scene), out, overwrite=True, progress=False)


def _cog_prepare(folder: Path, scenario: str) -> None:
    if scenario == "over an older output":
        shutil.copy2(folder / "older.tif", folder / "out.tif")


def _cog_run(folder: Path) -> None:
    _cog_write(folder, "brovey", folder / "out.tif")


def _cog_hooks() -> list[tuple[object, str]]:
    from crossdiff_core.infer.writers import GeoTiffWriter

    return [(GeoTiffWriter, "write"), (GeoTiffWriter, "finish")]


def _read_tif(path: Path):
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read(), dataset.profile["transform"], dataset.crs


def _same_tif(path: Path, other: Path) -> bool:
    import numpy as np

    a, b = _read_tif(path), _read_tif(other)
    return np.array_equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]


def _cog_visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.suffix == ".tif" and not p.name.startswith(".")
                  and p.name not in ("older.tif",))


def _cog_inspect(folder: Path, base: Path, scenario: str) -> tuple[list[str], list[str]]:
    out, lost, wrong = folder / "out.tif", [], []
    older = scenario == "over an older output"
    strays = [name for name in _cog_visible(folder) if name != "out.tif"]
    wrong += [f"visible stray output {name}" for name in strays]
    if not out.exists():
        if older:
            lost.append("the older output is gone")
        return lost, wrong
    try:
        candidates = [base.parent / "reference" / "out.tif"] + ([base / "older.tif"] if older
                                                                else [])
        if not any(_same_tif(out, c) for c in candidates):
            wrong.append("out.tif reads but is neither the older nor the new output")
    except Exception as error:  # noqa: BLE001
        wrong.append(f"out.tif does not read: {type(error).__name__}: {error}"[:200])
    return lost, wrong


def _cog_final(folder: Path, reference: Path, scenario: str) -> tuple[list[str], list[str]]:
    _cog_run(folder)
    wrong = [] if _same_tif(folder / "out.tif", reference / "out.tif") else [
        "rerun output differs from the uninterrupted one"]
    wrong += [f"visible stray output {n}" for n in _cog_visible(folder) if n != "out.tif"]
    wrong += [f"hidden entry left: {h}" for h in hidden_entries(folder)
              if not h.startswith(("zarr", "tmp"))]
    return [], wrong


op(name="cog", setup=_cog_setup, run=_cog_run, inspect=_cog_inspect, final=_cog_final,
   scenarios=("fresh", "over an older output"), prepare=_cog_prepare,
   extra_hooks=_cog_hooks)


# ---------------------------------------------------------------- landing run

GOOD = ("good-a.tar.gz", "good-b.tar.gz")
BAD = ("empty.tar.gz",)


def _landing_setup(base: Path) -> None:
    from tests.ingest_helpers import landsat_bundle, tar_folder

    landing = base / "landing"
    landing.mkdir()
    for name, naming, seed in zip(GOOD, ("pre", "post"), (0, 1), strict=True):
        bundle, _, _ = landsat_bundle(base / f"bundle-{seed}", naming=naming, seed=seed)
        tar_folder(bundle, landing / name)
        shutil.rmtree(bundle)
    (landing / BAD[0]).write_bytes(b"")
    for age, name in enumerate((*GOOD, *BAD)):  # delivery order: oldest first
        os.utime(landing / name, (1_000_000 + age, 1_000_000 + age))
    (base / "originals.json").write_text(json.dumps(
        {name: sha256(landing / name) for name in (*GOOD, *BAD)}))


def _landing_config(folder: Path):
    from crossdiff_core.config import IngestParams

    return IngestParams(sources=[], landed=str(folder / "landed"), out=str(folder / "zarr"),
                        sensor=None, chunk_size=INGEST_CHUNK)


def _landing_run(folder: Path) -> None:
    from flows.landing import land_arrivals

    land_arrivals(folder / "landing", _landing_config(folder))


def _landing_places(folder: Path) -> dict[str, list[str]]:
    originals = json.loads((folder / "originals.json").read_text())
    places: dict[str, list[str]] = {name: [] for name in originals}
    for where in ("landing", "landed", "landing/rejected"):
        for name, digest in originals.items():
            path = folder / where / name
            if path.is_file():
                places[name].append(where if sha256(path) == digest else f"{where} (changed)")
    return places


def _landing_inspect(folder: Path, base: Path, scenario: str) -> tuple[list[str], list[str]]:
    lost, wrong = [], []
    for name, where in _landing_places(folder).items():
        if not where:
            lost.append(f"{name} is nowhere")
        elif len(where) > 1 or "changed" in where[0]:
            wrong.append(f"{name} is in {where}")
    originals = set(json.loads((folder / "originals.json").read_text()))
    for where in ("landed", "landing/rejected"):
        place = folder / where
        for entry in sorted(place.iterdir()) if place.is_dir() else []:
            if entry.name.startswith(".") or entry.name in originals:
                continue
            if not (entry.name.endswith(".reason") and entry.name[:-7] in originals):
                wrong.append(f"stray visible entry {where}/{entry.name}")
    return lost, wrong


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith("."))


def _landing_final(folder: Path, reference: Path, scenario: str) -> tuple[list[str], list[str]]:
    _landing_run(folder)
    lost, wrong = [], []
    for name, where in _landing_places(folder).items():
        expected = "landed" if name in GOOD else "landing/rejected"
        if where != [expected]:
            (lost if not where else wrong).append(f"after the rerun {name} is in {where}")
    for part in ("landing", "landed"):
        if _listing(folder / part) != _listing(reference / part):
            wrong.append(f"{part} after the rerun: {_listing(folder / part)}")
    if (folder / "landing/rejected/empty.tar.gz.reason").is_file() and (
            folder / "landing/rejected/empty.tar.gz.reason").read_text() != (
            reference / "landing/rejected/empty.tar.gz.reason").read_text().replace(
            str(reference), str(folder)):
        wrong.append("the .reason differs from the uninterrupted run's")
    wrong += [f"hidden entry left: {h}" for h in hidden_entries(folder / "landing")
              + hidden_entries(folder / "landed")]
    wrong += [f"extraction left in TMPDIR: {e}" for e in leftover_extractions(folder)]
    return lost, wrong


op(name="landing", setup=_landing_setup, run=_landing_run, inspect=_landing_inspect,
   final=_landing_final)


# ---------------------------------------------------------------- the trials

def _imports(name: str) -> None:
    """Import what the operation uses once in the parent (children share it through fork)."""
    import numpy  # noqa: F401

    import crossdiff_core.infer  # noqa: F401
    import crossdiff_core.ingest  # noqa: F401
    import crossdiff_core.io.integrity  # noqa: F401
    import crossdiff_core.io.store  # noqa: F401
    import tests.ingest_helpers  # noqa: F401

    if name in ("pretrain", "head"):
        import matplotlib.pyplot  # noqa: F401
        import torch._dynamo  # noqa: F401  (2 s, imported by the first optimizer)

        import crossdiff_core.pansharpener  # noqa: F401
        import crossdiff_core.train.pretrain  # noqa: F401
        import tests.adapt_helpers  # noqa: F401
    if name == "landing":
        import flows.landing  # noqa: F401
    if name == "cog":
        import rasterio  # noqa: F401

        import crossdiff_core.infer.fusers  # noqa: F401


def _fresh(base: Path, folder: Path, operation: Op, scenario: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base, folder, symlinks=True)
    if operation.prepare:
        operation.prepare(folder, scenario)


def _check(operation: Op, folder: Path, base: Path, scenario: str, outcome: Path) -> None:
    def work() -> None:
        _use_tmp(folder)
        lost, wrong = operation.inspect(folder, base, scenario)
        lost_final, wrong_final = operation.final(folder, base.parent / "reference", scenario)
        outcome.write_text(json.dumps({"after_kill": {"lost": lost, "wrong": wrong},
                                       "after_rerun": {"lost": lost_final,
                                                       "wrong": wrong_final}}))

    status = _wait(_child(work))
    if status != "completed":
        outcome.write_text(json.dumps({"after_kill": {"lost": [], "wrong": []}, "after_rerun": {
            "lost": [], "wrong": [f"check or rerun {status}"]}}))


def run_trials(name: str, root: Path, seed: int = 0, trials: int = 20, timed: int = 5,
               keep: bool = False, emit: Callable[[dict], None] = lambda _: None) -> dict:
    """Run the ``trials`` hook-killed and ``timed`` time-killed trials of operation ``name``
    under ``root``; returns the summary (also emitted per trial through ``emit``)."""
    operation = OPS[name]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _imports(name)
    base, reference = root / "base", root / "reference"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    if (status := _wait(_child(lambda: operation.setup(base)))) != "completed":
        raise RuntimeError(f"{name}: setup {status}")
    counts, durations = {}, {}
    for scenario in operation.scenarios:
        folder = reference if scenario == operation.scenarios[0] else root / "reference-2"
        _fresh(base, folder, operation, scenario)
        started = time.perf_counter()
        status = _wait(_child(lambda f=folder: _run_op(operation, f, None, f / ".count")))
        durations[scenario] = time.perf_counter() - started
        if status != "completed":
            raise RuntimeError(f"{name}: uninterrupted run ({scenario}) {status}")
        counts[scenario] = int((folder / ".count").read_text())
        (folder / ".count").unlink()
    rng = random.Random(f"{name}-{seed}")
    space = [(s, n) for s in operation.scenarios for n in range(1, counts[s] + 1)]
    points = rng.sample(space, trials) if len(space) >= trials else [
        rng.choice(space) for _ in range(trials)]
    plan = [{"kind": "hook", "scenario": s, "at": n} for s, n in points]
    plan += [{"kind": "timed", "scenario": s, "delay": round(rng.uniform(0.0, durations[s]), 3)}
             for s in (rng.choice(operation.scenarios) for _ in range(timed))]
    results = []
    for index, trial in enumerate(plan):
        folder = root / f"trial-{index:02d}"
        _fresh(base, folder, operation, trial["scenario"])
        started = time.perf_counter()
        if trial["kind"] == "hook":
            pid = _child(lambda f=folder, n=trial["at"]: _run_op(operation, f, n, None))
        else:
            pid = _child(lambda f=folder: _run_op(operation, f, None, None))
            time.sleep(trial["delay"])
            os.kill(pid, signal.SIGKILL)
        trial["run"] = _wait(pid)
        outcome = folder / ".outcome.json"
        _check(operation, folder, base, trial["scenario"], outcome)
        found = json.loads(outcome.read_text())
        trial.update(found)
        trial["lost"] = bool(found["after_kill"]["lost"] or found["after_rerun"]["lost"])
        trial["wrong"] = bool(found["after_kill"]["wrong"] or found["after_rerun"]["wrong"])
        trial["seconds"] = round(time.perf_counter() - started, 2)
        trial["op"] = name
        results.append(trial)
        emit(trial)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    summary = {
        "op": name, "seed": seed, "trials": len(results),
        "hook_trials": sum(t["kind"] == "hook" for t in results),
        "timed_trials": sum(t["kind"] == "timed" for t in results),
        "killed": sum(t["run"] == "killed" for t in results),
        "nothing_lost": sum(not t["lost"] for t in results),
        "nothing_wrong": sum(not t["wrong"] for t in results),
        "calls": counts, "reference_seconds": {k: round(v, 2) for k, v in durations.items()},
        "distinct_points": len({(t["scenario"], t.get("at")) for t in results
                                if t["kind"] == "hook"}),
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("op", choices=sorted(OPS))
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--timed", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the trial folders")
    args = parser.parse_args(argv)
    summary = run_trials(args.op, args.root, args.seed, args.trials, args.timed, args.keep,
                         emit=lambda t: print(json.dumps(t), flush=True))
    print(json.dumps({"summary": summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
