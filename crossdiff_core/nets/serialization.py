"""One way to save and load every network: a folder with ``config.json`` and ``weights.pt``.

``config.json`` holds ``format`` (``crossdiff-<kind>``), ``version``, ``config`` (what rebuilds
the network) and whatever else the network records beside it (a UNet's ``extra``, a
pansharpener's ``extractor`` config); ``weights.pt`` holds the state dict (CPU tensors), read
back with ``weights_only=True`` so loading a model never runs code. Both files are written
atomically and fsynced (``crossdiff_core.atomic``), weights first, and an old ``config.json`` is
removed before: a folder with a config always has the weights that belong to it, crash or not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from crossdiff_core.atomic import atomic_write, fsync_folder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"


class Kind(NamedTuple):
    label: str  # the network's name in messages
    command: str  # the command that creates such a folder
    version: int  # of what ``save_network`` writes now; older versions stay readable


KINDS = {
    "unet": Kind("UNet", "crossdiff pretrain", 1),
    "extractor": Kind("frozen extractor", "crossdiff freeze", 1),
    # 1: extractor.pt + head.pt; 2: one weights.pt (keys extractor.* and head.*)
    "pansharpener": Kind("pansharpener", "crossdiff adapt", 2),
}


def state_on_cpu(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict, detached and on the CPU."""
    return {key: value.detach().cpu() for key, value in module.state_dict().items()}


def torch_save(obj: object, path: str | Path) -> None:
    """``torch.save(obj)`` into the new file ``path`` through an open handle. Given a file name,
    torch.save names the archive inside after it, and an atomic write's temporary name carries
    the writer's pid and host: equal objects would give other bytes on every run (and other DVC
    hashes). Through a handle the archive is always named ``archive``."""
    with open(path, "xb") as handle:
        torch.save(obj, handle)


def save_network(
    folder: str | Path, kind: str, config: dict, state: dict[str, torch.Tensor], **record
) -> Path:
    """Write ``weights.pt`` (``state``) and then ``config.json`` (format, version, ``config``
    and ``record``) into ``folder``; returns the folder."""
    document = {"format": f"crossdiff-{kind}", "version": KINDS[kind].version, "config": config,
                **record}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        (folder / CONFIG_FILE).unlink()
    except FileNotFoundError:
        pass
    else:
        fsync_folder(folder)  # gone for good before the new weights arrive
    atomic_write(folder / WEIGHTS_FILE, lambda temporary: torch_save(state, temporary))
    atomic_write(folder / CONFIG_FILE, json.dumps(document, indent=2, sort_keys=True))
    return folder


def is_network_folder(folder: str | Path, kind: str) -> bool:
    """Whether ``folder`` holds a ``config.json`` of this kind of network."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("format") == f"crossdiff-{kind}"
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def read_network_config(folder: str | Path, kind: str) -> dict:
    """The whole ``config.json`` document of a saved network of this kind (checked)."""
    label, command, version = KINDS[kind]
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {folder} is not a saved {label} folder (run `{command}` first)"
        )
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not readable JSON ({error}): save the {label} again") from None
    found = document.get("format") if isinstance(document, dict) else None
    if found != f"crossdiff-{kind}":
        raise ValueError(f"{path} is not a CrossDiff {label} config (format {found!r})")
    if document.get("version", 1) > version:
        raise ValueError(
            f"{path} is a {label} of format version {document['version']}, newer than this "
            f"CrossDiff reads ({version}): update CrossDiff"
        )
    return document


def load_weights(
    folder: str | Path, kind: str, name: str = WEIGHTS_FILE,
    map_location: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """A state dict saved in ``folder`` (tensors only: ``weights_only``)."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the {KINDS[kind].label} folder {folder} is incomplete"
        )
    return torch.load(path, map_location=map_location, weights_only=True)


def load_network(
    folder: str | Path, kind: str, map_location: str | torch.device = "cpu"
) -> tuple[dict, dict[str, torch.Tensor]]:
    """(``config.json`` document, state dict) of a network saved by ``save_network``."""
    document = read_network_config(folder, kind)
    return document, load_weights(folder, kind, map_location=map_location)
