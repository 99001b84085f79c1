"""Names taken from input metadata made safe to use as path components.

Scene ids (a Landsat MTL's ``LANDSAT_SCENE_ID``, a .mat or .h5 file's stem, a GeoTIFF pair's
common prefix), sensor names and anything else an input states become folder and file names.
``safe_name`` reduces such a name to ``[A-Za-z0-9._-]`` (every other run of characters becomes
one ``_``), with no leading dot or dash, never empty, ``.`` or ``..``, and at most
``MAX_NAME_LENGTH`` characters, so it is always one plain, visible path component: a hostile
``LANDSAT_SCENE_ID = "../../ESCAPED"`` becomes ``ESCAPED``. ``inside`` then checks that a path
built from such names stays under the folder it was meant for.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

MAX_NAME_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UnsafePathError(ValueError):
    """A path built from input names would leave the folder it belongs in."""


def safe_name(name: object, what: str = "name") -> str:
    """``name`` as a safe path component (see the module docstring); idempotent.

    Names already safe are returned unchanged. A name longer than ``MAX_NAME_LENGTH`` keeps its
    start plus a short hash of the whole, so distinct long names stay distinct. Raises
    ValueError (naming ``what``) when no letter or digit is left (``"../.."``, ``"///"``, ``""``).
    """
    text = str(name)
    cleaned = _UNSAFE.sub("_", text)
    if cleaned[:1] in (".", "-"):  # hidden, or read as an option: drop the whole lead-in
        cleaned = cleaned.lstrip("._-")
    if not re.search(r"[A-Za-z0-9]", cleaned):
        raise ValueError(f"the {what} {text!r} has no usable characters for a file name")
    if len(cleaned) > MAX_NAME_LENGTH:
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]
        cleaned = f"{cleaned[: MAX_NAME_LENGTH - 11].rstrip('._-')}-{digest}"
    return cleaned


def inside(base: str | Path, path: str | Path) -> Path:
    """``path`` if it lies under ``base`` (compared as absolute, normalised paths, so ``..``
    components count; symbolic links the user made inside ``base`` are trusted); else
    UnsafePathError."""
    root = os.path.normpath(os.path.abspath(base))
    full = os.path.normpath(os.path.abspath(path))
    if os.path.commonpath([root, full]) != root or full == root:
        raise UnsafePathError(f"{path} is not inside {base}; refused")
    return Path(path)
