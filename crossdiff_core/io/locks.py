"""Per-scene locks: one ingest at a time writes a given scene store.

The lock is an exclusive ``flock`` on a hidden file beside the store (``.<scene>.zarr.lock``),
taken without waiting: a second ingest of the same scene, while the first writes it, raises
``SceneBusyError`` (a ``BlockingIOError``, so a Prefect task retries it later, when the first
has finished and the source is skipped). The kernel drops the lock when its holder dies, so a
killed run never blocks the next one. The file holds the holder's pid and host, for the message,
and is removed by its holder before it lets go (the next holder checks that the file it locked
is still the one at that name).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

LOCK_SUFFIX = ".lock"


class SceneBusyError(BlockingIOError):
    """Another run is ingesting this scene right now; its message is one line."""

    def __str__(self) -> str:
        return str(self.strerror)


def lock_path(store: str | Path) -> Path:
    """The lock file of ``store``: ``.<name>.lock`` beside it (hidden, not a store)."""
    store = Path(store)
    return store.with_name(f".{store.name}{LOCK_SUFFIX}")


@contextlib.contextmanager
def scene_lock(store: str | Path, label: object = None) -> Iterator[Path]:
    """Hold the lock of ``store`` for the ``with`` block; SceneBusyError (naming ``label``, the
    source, and the holder) when another process holds it."""
    import fcntl  # POSIX; the project's machines are Linux

    path = lock_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _read(descriptor)
            os.close(descriptor)
            if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
            source = f"{label}: " if label is not None else ""
            by = f" ({holder})" if holder else ""
            raise SceneBusyError(
                errno.EAGAIN,
                f"{source}{store} is already being ingested by another run{by}; run again "
                "when it has finished (the scene is then skipped)",
            ) from None
        # The previous holder removes the file before unlocking: if it did so after this open,
        # this lock is on a name nobody else will open; take the lock on the current file.
        try:
            current = os.path.samestat(os.fstat(descriptor), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def _read(descriptor: int) -> str:
    try:
        return os.pread(descriptor, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def remove_stale_locks(folder: str | Path) -> list[Path]:
    """Remove the lock files in ``folder`` that no process holds (their holder was killed after
    its store was in place, before it removed the file); returns them. A lock held now stays.
    Safe against a run taking the lock meanwhile: ``scene_lock`` retries on a file that vanished
    under it."""
    import fcntl

    removed = []
    for path in Path(folder).glob(f".*{LOCK_SUFFIX}"):
        try:
            descriptor = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)  # held by a live run
            continue
        try:
            if os.path.samestat(os.fstat(descriptor), os.stat(path)):
                os.unlink(path)
                removed.append(path)
        except FileNotFoundError:
            pass
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)
    return removed
