"""Concurrent and killed ingests: one store per scene, a clear word to the loser, no leftovers.

The ingests run in separate processes (``spawn``: nothing shared but the file system). A run is
held inside its partial store, with the scene's lock taken, by wrapping ``atomic_folder``: it
writes ``started`` and waits for ``release`` (or for a SIGKILL).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ingest_helpers import landsat_bundle, tar_folder

from crossdiff_core.atomic import _host_token
from crossdiff_core.ingest import ingest_source
from crossdiff_core.io.locks import SceneBusyError, lock_path, scene_lock

SCENE = "LC80200392015216LGN00"
CONTEXT = multiprocessing.get_context("spawn")


def _ingest_child(source: str, out: str, hold: str | None, tmpdir: str, results) -> None:
    """Ingest ``source`` into ``out`` and put what happened on ``results``."""
    os.environ["TMPDIR"] = tmpdir
    tempfile.tempdir = tmpdir
    if hold:
        from crossdiff_core.io import store

        real = store.atomic_folder
        held = Path(hold)

        def slow(path, build):
            def build_held(folder):
                (held / "started").write_text(str(folder))
                deadline = time.monotonic() + 120
                while not (held / "release").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                return build(folder)

            return real(path, build_held)

        store.atomic_folder = slow
    try:
        result = ingest_source(source, out)
    except SceneBusyError as error:
        results.put(("busy", str(error)))
    except BaseException as error:  # noqa: BLE001 (reported to the test)
        results.put(("error", f"{type(error).__name__}: {error}"))
    else:
        results.put(("skipped" if result.skipped else "wrote", str(result.store)))


def _start(source, out, tmpdir, hold=None):
    results = CONTEXT.Queue()
    process = CONTEXT.Process(target=_ingest_child,
                              args=(str(source), str(out), hold and str(hold), str(tmpdir),
                                    results))
    process.start()
    return process, results


def _wait_for(path: Path, process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.is_alive(), "the held ingest ended before writing"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _finish(process, results, timeout: float = 180):
    outcome = results.get(timeout=timeout)
    process.join(timeout=30)
    return outcome


@pytest.fixture
def source(tmp_path):
    folder, _, _ = landsat_bundle(tmp_path / "bundle")
    return tar_folder(folder, tmp_path / f"{SCENE}.tar.gz")


@pytest.fixture
def tmpdir_(tmp_path, monkeypatch):
    """A private $TMPDIR, to see the extraction folders of the runs."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _leftovers(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*"))


def test_second_ingest_while_first_writes_is_told_then_skips(source, tmp_path, tmpdir_):
    out, hold = tmp_path / "out", tmp_path / "hold"
    hold.mkdir()
    first, first_results = _start(source, out, tmpdir_, hold)
    _wait_for(hold / "started", first)
    partial = Path((hold / "started").read_text())
    assert partial.name.startswith(f".{SCENE}.zarr.partial-p{first.pid}h")

    second, second_results = _start(source, out, tmpdir_)
    kind, message = _finish(second, second_results)
    assert kind == "busy", message
    assert "already being ingested by another run" in message and SCENE in message
    assert f"pid {first.pid}" in message and "\n" not in message
    assert partial.exists()  # a live run's partial store is never touched

    (hold / "release").write_text("")
    assert _finish(first, first_results)[0] == "wrote"
    store = out / "Landsat-8" / f"{SCENE}.zarr"
    # One store and its STAC Item; no lock, no partial.
    assert sorted(os.listdir(out / "Landsat-8")) == [store.name, f"{store.name}.stac.json"]
    # A rerun finds it whole and skips.
    third, third_results = _start(source, out, tmpdir_)
    assert _finish(third, third_results) == ("skipped", str(store))
    assert list(tmpdir_.iterdir()) == []  # extraction folders all removed


def test_two_ingests_started_at_once_give_one_store(source, tmp_path, tmpdir_):
    out = tmp_path / "out"
    runs = [_start(source, out, tmpdir_) for _ in range(2)]
    outcomes = sorted(_finish(process, results)[0] for process, results in runs)
    assert outcomes in (["busy", "wrote"], ["skipped", "wrote"]), outcomes
    assert sorted(os.listdir(out / "Landsat-8")) == [f"{SCENE}.zarr", f"{SCENE}.zarr.stac.json"]
    assert _leftovers(out) == []


def test_killed_ingest_leaves_nothing_that_blocks_and_is_cleaned_by_the_next(
        source, tmp_path, tmpdir_):
    out, hold = tmp_path / "out", tmp_path / "hold"
    hold.mkdir()
    killed, _ = _start(source, out, tmpdir_, hold)
    _wait_for(hold / "started", killed)
    partial = Path((hold / "started").read_text())
    os.kill(killed.pid, signal.SIGKILL)
    killed.join(timeout=30)
    assert partial.exists() and any(tmpdir_.iterdir())  # what a SIGKILL leaves

    result = ingest_source(source, out)
    assert not result.skipped and result.store == out / "Landsat-8" / f"{SCENE}.zarr"
    assert sorted(os.listdir(out / "Landsat-8")) == [f"{SCENE}.zarr", f"{SCENE}.zarr.stac.json"]
    assert list(tmpdir_.iterdir()) == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_dead_runs_partials_removed_live_ones_kept(source, tmp_path, tmpdir_):
    out = tmp_path / "out"
    folder = out / "Landsat-8"
    host, dead = _host_token(), _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        left = {
            "dead, this scene": folder / f".{SCENE}.zarr.partial-p{dead}h{host}-0badc0de",
            "dead, other scene": folder / f".OTHER.zarr.partial-p{dead}h{host}-0badc0de",
            "live, other scene": folder / f".OTHER.zarr.partial-p{live.pid}h{host}-0badc0de",
            "other host": folder / f".OTHER.zarr.partial-p{dead}hffffff-0badc0de",
            "old version, this scene": folder / f".{SCENE}.zarr.partial-0123456789ab",
            "old version, other scene": folder / ".OTHER.zarr.partial-0123456789ab",
            "dead extraction": tmpdir_ / f"crossdiff-extract-p{dead}h{host}-x1y2z3",
            "live extraction": tmpdir_ / f"crossdiff-extract-p{live.pid}h{host}-x1y2z3",
        }
        for path in left.values():
            (path / "pan").mkdir(parents=True)
            (path / "pan" / "0").write_bytes(b"half a chunk")
        ingest_source(source, out)
        kept = {name for name, path in left.items() if path.exists()}
        assert kept == {"live, other scene", "other host", "old version, other scene",
                        "live extraction"}
    finally:
        live.kill()
        live.wait()


def test_scene_lock_is_exclusive_and_removed_after(tmp_path):
    store = tmp_path / "Landsat-8" / "S.zarr"
    with scene_lock(store, "a.tar") as path:
        assert path == lock_path(store) and path.name == ".S.zarr.lock"
        code = ("import sys; from crossdiff_core.io.locks import scene_lock\n"
                f"with scene_lock({str(store)!r}, 'b.tar'): pass")
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parents[1])
        assert other.returncode != 0
        assert "SceneBusyError: b.tar: " in other.stderr and f"pid {os.getpid()}" in other.stderr
    assert not lock_path(store).exists()
    with scene_lock(store):  # free again
        pass


def test_lock_files_nobody_holds_are_swept_and_held_ones_stay(tmp_path):
    """A run killed after its store was in place but before it removed its lock file leaves the
    file; the next ingest into the folder removes it (even when it then skips), never a held one."""
    from crossdiff_core.io.locks import lock_path, remove_stale_locks, scene_lock

    left = lock_path(tmp_path / "A.zarr")
    left.write_text("pid 1 on gone\n")
    with scene_lock(tmp_path / "B.zarr") as held:
        assert remove_stale_locks(tmp_path) == [left]
        assert not left.exists() and held.exists()
    assert not held.exists()
