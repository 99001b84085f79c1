"""Atomic outputs: a file or a folder is built under a hidden sibling name, then renamed into place.

A crash or an interrupt leaves either the old output or the new one, never half of either, and
readers never see a partial one. Outputs get the permissions an ordinary ``open()`` or ``mkdir()``
gives (0666 / 0777 less the umask: 0644 / 0755 usually), not the private 0600 / 0700 of
``mkstemp`` / ``mkdtemp``: models, reports and stores are meant to be read by others.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

FileContent = bytes | str | Callable[[Path], object]


def atomic_write(path: str | Path, content: FileContent) -> Path:
    """Write the file ``path`` atomically and return it.

    ``content`` is bytes, text (written as UTF-8), or a callback ``write(temporary)`` that creates
    the file at the path it is given (a hidden sibling of ``path``, which does not exist yet), e.g.
    ``lambda temporary: torch.save(state, temporary)``. The file is flushed to disk before the
    rename; on any failure the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _sibling(path, "tmp")
    try:
        if callable(content):
            content(temporary)
        else:
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            # os.open applies the umask to 0666 exactly as open() does.
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        _install(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    return path


def atomic_folder(path: str | Path, build: Callable[[Path], object]) -> Path:
    """Build the folder ``path`` atomically and return it.

    ``build(temporary)`` fills an empty hidden sibling folder, which then takes the place of
    ``path``. An existing ``path`` (folder or file) is moved aside first and removed only once the
    new folder is in place; on any failure the temporary folder is removed and ``path`` is left as
    it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _sibling(path, "partial")
    temporary.mkdir()
    try:
        build(temporary)
        _install(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    return path


def _sibling(path: Path, kind: str) -> Path:
    """A hidden, unused name beside ``path``: ``.NAME.HEX.tmp``, ``.NAME.partial-HEX``, ..."""
    token = uuid.uuid4().hex[:12]
    if kind == "tmp":
        return path.with_name(f".{path.name}.{token}.tmp")
    return path.with_name(f".{path.name}.{kind}-{token}")


def _install(built: Path, target: Path) -> None:
    """Rename ``built`` to ``target``; a folder at ``target`` (or a file a folder replaces) is
    moved aside first, put back if the rename fails, and removed once the new one is in place."""
    replaces_folder = target.is_dir() and not target.is_symlink()
    if not (replaces_folder or (built.is_dir() and target.exists())):
        os.replace(built, target)  # atomic for a file over a file
        return
    retired = _sibling(target, "old")
    os.replace(target, retired)
    try:
        os.replace(built, target)
    except BaseException:
        os.replace(retired, target)
        raise
    _remove(retired)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
