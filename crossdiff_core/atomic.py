"""Atomic outputs: a file or a folder is built under a hidden sibling name, then renamed into place.

A crash or an interrupt leaves either the old output or the new one, never half of either, and
readers never see a partial one. Outputs get the permissions an ordinary ``open()`` or ``mkdir()``
gives (0666 / 0777 less the umask: 0644 / 0755 usually), not the private 0600 / 0700 of
``mkstemp`` / ``mkdtemp``: models, reports and stores are meant to be read by others.

Crash safety, not only atomicity: the new file (every file and folder of a new folder) is
fsynced before the rename and the folder holding it after, so after a power loss the output is
the old one or the whole new one, never a renamed but empty file. Folders that cannot be fsynced
(Windows, some network or FUSE file systems) are skipped; real I/O errors are raised.

The hidden siblings carry their owner (``.NAME.partial-p<pid>h<host>-<hex>``,
``.NAME.p<pid>h<host>-<hex>.tmp``, ``.NAME.old-p<pid>h<host>-<hex>``): the ones a killed
process left are removed by the next write of the same output (``remove_stale``) or by a sweep
of the folder (``remove_stale_siblings``); those of a live process, or of another host, are
never touched.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

FileContent = bytes | str | Callable[[Path], object]


def atomic_write(path: str | Path, content: FileContent) -> Path:
    """Write the file ``path`` atomically and return it.

    ``content`` is bytes, text (written as UTF-8), or a callback ``write(temporary)`` that creates
    the file at the path it is given (a hidden sibling of ``path``, which does not exist yet), e.g.
    ``lambda temporary: torch.save(state, temporary)``. The file is fsynced before the rename and
    its folder after; on any failure the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    _make_folder(path.parent)
    remove_stale(path)
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
        fsync_file(temporary)
        _install(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    return path


def atomic_folder(path: str | Path, build: Callable[[Path], object]) -> Path:
    """Build the folder ``path`` atomically and return it.

    ``build(temporary)`` fills an empty hidden sibling folder, which then takes the place of
    ``path``. Every file and folder in it is fsynced before the rename, the parent folder after.
    An existing ``path`` (folder or file) is moved aside first and removed only once the new
    folder is in place; on any failure the temporary folder is removed and ``path`` is left as
    it was.
    """
    path = Path(path)
    _make_folder(path.parent)
    remove_stale(path)
    temporary = _sibling(path, "partial")
    temporary.mkdir()
    try:
        build(temporary)
        fsync_tree(temporary)
        _install(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    return path


def fsync_file(path: str | Path) -> None:
    """Flush the file ``path`` to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# fsync of a folder is refused by some systems and file systems: nothing to flush there.
_NO_FOLDER_FSYNC = {errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EOPNOTSUPP,
                    getattr(errno, "ENOSYS", errno.EINVAL)}


def fsync_folder(folder: str | Path) -> None:
    """Flush the entries of ``folder`` (names created, renamed or removed in it) to disk.

    A no-op where folders cannot be fsynced (Windows; file systems answering EINVAL or
    ENOTSUP); any other error (EIO: the data did not reach the disk) is raised.
    """
    if os.name == "nt":  # folders cannot be opened there; NTFS journals renames itself
        return
    descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in _NO_FOLDER_FSYNC:
            raise
    finally:
        os.close(descriptor)


def fsync_tree(folder: str | Path) -> None:
    """fsync every file under ``folder``, then every folder, deepest first, ``folder`` last."""
    for root, _, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                fsync_file(path)
        fsync_folder(root)


def _make_folder(folder: Path) -> None:
    """``mkdir -p folder``, with each folder created made durable in its parent."""
    if folder.is_dir():
        return
    missing = []
    current = folder
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_folder(created.parent)


def owner_tag() -> str:
    """``p<pid>h<host>``: this process on this machine (host: 6 hex digits of its name)."""
    return f"p{os.getpid()}h{_host_token()}"


def _host_token() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _sibling(path: Path, kind: str) -> Path:
    """A hidden, unused name beside ``path`` that names its owner: ``.NAME.p<pid>h<host>-HEX.tmp``,
    ``.NAME.partial-p<pid>h<host>-HEX``, ``.NAME.old-p<pid>h<host>-HEX``."""
    token = f"{owner_tag()}-{uuid.uuid4().hex[:8]}"
    if kind == "tmp":
        return path.with_name(f".{path.name}.{token}.tmp")
    return path.with_name(f".{path.name}.{kind}-{token}")


# A sibling made by ``_sibling`` (with anything a writer adds after it, e.g. ``.strips.tif``),
# and those of earlier versions, which did not name their owner: ``.NAME.HEX12.tmp`` ...
_OWNED = re.compile(r"^\.(?P<name>.+)\.(?:(?:partial|old)-)?p(?P<pid>\d+)h(?P<host>[0-9a-f]{6})"
                    r"-[0-9a-f]{8}(?:\..+)?$")
_UNOWNED = re.compile(r"^\.(?P<name>.+)\.(?:(?:partial|old)-[0-9a-f]{12}|[0-9a-f]{12}\.tmp)$")


def owner_alive(pid: int, host: str | None = None) -> bool:
    """Whether process ``pid`` on ``host`` (a host token; None: this machine) may be running.

    Processes on another machine cannot be checked here and count as alive."""
    if host is not None and host != _host_token():
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, owned by another user
        return True
    return True


def _stale(entry: Path, name: str | None, unowned_too: bool) -> bool:
    owned = _OWNED.match(entry.name)
    if owned:
        return ((name is None or owned["name"] == name)
                and not owner_alive(int(owned["pid"]), owned["host"]))
    unowned = _UNOWNED.match(entry.name) if unowned_too else None
    return bool(unowned) and (name is None or unowned["name"] == name)


def remove_stale(path: str | Path, unowned_too: bool = False) -> list[Path]:
    """Remove the hidden siblings of ``path`` (temporary files, partial and retired folders)
    whose owner process has died on this machine; returns them. A retired (``.old-``) output
    whose replacement never arrived is put back at ``path`` instead.

    ``unowned_too`` also removes those of earlier versions, which do not name their owner: only
    for a caller that knows nobody else is writing ``path`` (it holds the output's lock).
    """
    path = Path(path)
    return _remove_matching(path.parent, path.name, unowned_too)


def remove_stale_siblings(folder: str | Path) -> list[Path]:
    """Remove every hidden sibling in ``folder`` left by a process that died on this machine."""
    return _remove_matching(Path(folder), None, False)


def _remove_matching(folder: Path, name: str | None, unowned_too: bool) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = [entry for entry in entries
               if entry.name.startswith(".") and _stale(entry, name, unowned_too)]
    for entry in removed:
        owned = _OWNED.match(entry.name)
        target = folder / owned["name"] if owned else None
        if (target is not None and entry.name.startswith(f".{target.name}.old-")
                and not os.path.lexists(target)):
            # Killed between moving the old output aside and renaming the new one in: the old
            # output is whole, so it goes back (the unfinished new one is removed).
            os.replace(entry, target)
            fsync_folder(folder)
        else:
            _remove(entry)
    return removed


def _install(built: Path, target: Path) -> None:
    """Rename ``built`` to ``target`` and fsync their folder; a folder at ``target`` (or a file a
    folder replaces) is moved aside first, put back if the rename fails, and removed once the new
    one is in place."""
    replaces_folder = target.is_dir() and not target.is_symlink()
    if not (replaces_folder or (built.is_dir() and target.exists())):
        os.replace(built, target)  # atomic for a file over a file
        fsync_folder(target.parent)
        return
    retired = _sibling(target, "old")
    os.replace(target, retired)
    try:
        os.replace(built, target)
    except BaseException:
        os.replace(retired, target)
        raise
    fsync_folder(target.parent)
    _remove(retired)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
