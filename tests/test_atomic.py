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
