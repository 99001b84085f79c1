"""Atomic file writes and folder swaps: permissions, nothing partial on failure, old output kept."""

import os
import stat

import pytest

from crossdiff_core.atomic import atomic_folder, atomic_write


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize(
    "content",
    [b"\x00\x01bytes", "text é\n", lambda path: path.write_bytes(b"from a callback")],
    ids=["bytes", "text", "callback"],
)
def test_file_written_with_ordinary_permissions(tmp_path, umask_022, content):
    path = atomic_write(tmp_path / "sub" / "out.bin", content)
    assert path == tmp_path / "sub" / "out.bin"
    expected = {bytes: b"\x00\x01bytes", str: "text é\n".encode()}.get(type(content))
    assert path.read_bytes() == (expected or b"from a callback")
    assert _mode(path) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["out.bin"]


def test_file_mode_follows_the_umask(tmp_path):
    previous = os.umask(0o077)
    try:
        path = atomic_write(tmp_path / "private.txt", "secret")
    finally:
        os.umask(previous)
    assert _mode(path) == 0o600


def test_torch_weights_are_readable_by_others(tmp_path, umask_022):
    torch = pytest.importorskip("torch")
    path = atomic_write(tmp_path / "weights.pt",
                        lambda temporary: torch.save({"w": torch.ones(2)}, temporary))
    assert _mode(path) == 0o644
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))


def test_failed_write_leaves_old_file_and_no_partial(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")

    def fail(temporary):
        temporary.write_text("half")
        raise Boom

    with pytest.raises(Boom):
        atomic_write(path, fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failed_first_write_leaves_nothing(tmp_path):
    def fail(temporary):
        temporary.write_text("half")
        raise Boom

    with pytest.raises(Boom):
        atomic_write(tmp_path / "out.txt", fail)
    assert list(tmp_path.iterdir()) == []


def test_file_replaces_existing(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    atomic_write(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def _build(target, files: dict[str, str]):
    def build(folder):
        assert folder.is_dir() and not any(folder.iterdir())  # an empty sibling folder
        assert folder.parent == target.parent
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)

    return build


def test_folder_built_in_place(tmp_path, umask_022):
    target = tmp_path / "store.zarr"
    atomic_folder(target, _build(target, {"a.txt": "a", "group/b.txt": "b"}))
    assert (target / "a.txt").read_text() == "a" and (target / "group" / "b.txt").read_text() == "b"
    assert _mode(target) == 0o755
    assert _mode(target / "a.txt") == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]


def test_folder_swap_replaces_existing(tmp_path):
    target = tmp_path / "store.zarr"
    atomic_folder(target, _build(target, {"old.txt": "old"}))
    atomic_folder(target, _build(target, {"new.txt": "new"}))
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]  # old one removed


def test_failed_build_leaves_old_folder_intact(tmp_path):
    target = tmp_path / "store.zarr"
    atomic_folder(target, _build(target, {"old.txt": "old"}))

    def fail(folder):
        (folder / "half.txt").write_text("half")
        raise Boom

    with pytest.raises(Boom):
        atomic_folder(target, fail)
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert (target / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]


def test_failed_first_build_leaves_nothing(tmp_path):
    def fail(folder):
        (folder / "half.txt").write_text("half")
        raise Boom

    with pytest.raises(Boom):
        atomic_folder(tmp_path / "store.zarr", fail)
    assert list(tmp_path.iterdir()) == []


def test_file_and_folder_replace_each_other(tmp_path):
    path = tmp_path / "fused"
    atomic_folder(path, lambda folder: (folder / "x").write_text("x"))
    atomic_write(path, "a file now")
    assert path.is_file() and path.read_text() == "a file now"
    atomic_folder(path, lambda folder: (folder / "y").write_text("y"))
    assert path.is_dir() and [p.name for p in path.iterdir()] == ["y"]
    assert [p.name for p in tmp_path.iterdir()] == ["fused"]


# Crash safety: fsync of the file(s) before the rename and of the folder after it.


@pytest.fixture
def io_events(monkeypatch):
    """Every fsync (the path it flushed) and rename, in order."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        return real_fsync(descriptor)

    def replace(source, target):
        events.append(("replace", str(source), str(target)))
        return real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


@needs_proc
def test_file_fsynced_before_rename_and_folder_after(tmp_path, io_events):
    path = atomic_write(tmp_path / "new" / "out.txt", "data")
    kinds = [event[0] for event in io_events]
    rename = kinds.index("replace")
    temporary = io_events[rename][1]
    assert io_events[rename][2] == str(path)
    assert ("fsync", temporary) in io_events[:rename]  # the file, before the rename
    assert ("fsync", str(tmp_path / "new")) in io_events[rename:]  # its folder, after
    assert ("fsync", str(tmp_path)) in io_events  # the folder created for it, in its parent


@needs_proc
def test_folder_tree_fsynced_before_rename_and_parent_after(tmp_path, io_events):
    target = tmp_path / "store.zarr"
    atomic_folder(target, _build(target, {"a.txt": "a", "group/b.txt": "b"}))
    rename = [event[0] for event in io_events].index("replace")
    partial = io_events[rename][1]
    before = {event[1] for event in io_events[:rename]}
    assert {f"{partial}/a.txt", f"{partial}/group/b.txt", f"{partial}/group", partial} <= before
    assert ("fsync", str(tmp_path)) in io_events[rename:]


def test_folder_fsync_unsupported_is_tolerated_but_io_errors_are_not(tmp_path, monkeypatch):
    import errno

    real_fsync = os.fsync

    def fsync_refusing_folders(code):
        def fsync(descriptor):
            if stat.S_ISDIR(os.fstat(descriptor).st_mode):
                raise OSError(code, os.strerror(code))
            return real_fsync(descriptor)

        return fsync

    monkeypatch.setattr(os, "fsync", fsync_refusing_folders(errno.EINVAL))
    assert atomic_write(tmp_path / "a.txt", "a").read_text() == "a"
    atomic_folder(tmp_path / "f", lambda folder: (folder / "x").write_text("x"))
    monkeypatch.setattr(os, "fsync", fsync_refusing_folders(errno.EIO))
    with pytest.raises(OSError, match="Input/output"):
        atomic_write(tmp_path / "b.txt", "b")


# Stale siblings: what a killed writer left is removed by the next write; a live writer's never.


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _host() -> str:
    from crossdiff_core.atomic import _host_token

    return _host_token()


def test_next_write_removes_dead_writers_siblings_only(tmp_path):
    dead, live, host = _dead_pid(), os.getppid(), _host()
    left = {
        "dead_tmp": tmp_path / f".out.txt.p{dead}h{host}-0badc0de.tmp",
        "dead_strips": tmp_path / f".out.txt.p{dead}h{host}-0badc0de.tmp.strips.tif",
        "live_tmp": tmp_path / f".out.txt.p{live}h{host}-0badc0de.tmp",
        "other_host": tmp_path / f".out.txt.p{dead}hffffff-0badc0de.tmp",
        "unowned": tmp_path / ".out.txt.0123456789ab.tmp",
        "other_output": tmp_path / f".other.txt.p{dead}h{host}-0badc0de.tmp",
    }
    for path in left.values():
        path.write_text("half")
    atomic_write(tmp_path / "out.txt", "new")
    kept = {key for key, path in left.items() if path.exists()}
    assert kept == {"live_tmp", "other_host", "unowned", "other_output"}


def test_dead_partial_folders_removed_live_ones_kept(tmp_path):
    from crossdiff_core.atomic import remove_stale, remove_stale_siblings

    dead, live, host = _dead_pid(), os.getppid(), _host()
    dead_partial = tmp_path / f".S1.zarr.partial-p{dead}h{host}-0badc0de"
    live_partial = tmp_path / f".S1.zarr.partial-p{live}h{host}-0badc0de"
    unowned = tmp_path / ".S1.zarr.partial-0123456789ab"
    other_dead = tmp_path / f".S2.zarr.partial-p{dead}h{host}-0badc0de"
    for folder in (dead_partial, live_partial, unowned, other_dead):
        (folder / "pan").mkdir(parents=True)
        (folder / "pan" / "c.0").write_bytes(b"x")
    atomic_folder(tmp_path / "S1.zarr", lambda folder: (folder / "zarr.json").write_text("{}"))
    assert not dead_partial.exists() and live_partial.exists() and unowned.exists()
    assert other_dead.exists()  # another output: left to its own next write or a sweep
    assert remove_stale(tmp_path / "S1.zarr", unowned_too=True) == [unowned]
    assert remove_stale_siblings(tmp_path) == [other_dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["S1.zarr", live_partial.name])


def test_retired_output_of_a_killed_swap_is_put_back(tmp_path):
    from crossdiff_core.atomic import remove_stale

    dead, host = _dead_pid(), _host()
    # Killed after moving the old store aside and before renaming the new one in.
    retired = tmp_path / f".S1.zarr.old-p{dead}h{host}-0badc0de"
    (retired / "pan").mkdir(parents=True)
    (retired / "zarr.json").write_text("old")
    half = tmp_path / f".S1.zarr.partial-p{dead}h{host}-0badc0de"
    half.mkdir()
    remove_stale(tmp_path / "S1.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S1.zarr"]
    assert (tmp_path / "S1.zarr" / "zarr.json").read_text() == "old"


def test_siblings_name_their_owner(tmp_path):
    from crossdiff_core.atomic import owner_alive

    seen = []
    atomic_write(tmp_path / "out.txt", lambda temporary: seen.append(temporary.name)
                 or temporary.write_text("x"))
    atomic_folder(tmp_path / "s.zarr", lambda folder: seen.append(folder.name))
    assert seen[0].startswith(f".out.txt.p{os.getpid()}h{_host()}-") and seen[0].endswith(".tmp")
    assert seen[1].startswith(f".s.zarr.partial-p{os.getpid()}h{_host()}-")
    assert owner_alive(os.getpid()) and not owner_alive(_dead_pid())
    assert owner_alive(_dead_pid(), "ffffff")  # another machine's process: cannot tell
