"""Training checkpoints: written atomically, refused when they come from another configuration."""

from __future__ import annotations

from pathlib import Path

import torch

from crossdiff_core.atomic import atomic_write
from crossdiff_core.nets.serialization import torch_save

CHECKPOINT_FILE = "checkpoint.pt"


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` with torch.save to a temporary sibling, then rename it over ``path`` (the
    same state gives the same bytes: ``nets.serialization.torch_save``)."""
    return atomic_write(path, lambda temporary: torch_save(state, temporary))


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by ``save_checkpoint`` onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    # RNG states and optimizer state are plain tensors and Python containers.
    return torch.load(path, map_location="cpu", weights_only=False)


def check_same_configuration(path: str | Path, saved: dict, current: dict) -> None:
    """Raise ValueError naming every key whose value differs between two run fingerprints."""
    keys = sorted(set(saved) | set(current))
    differences = [
        f"{key}: checkpoint {saved.get(key)!r} vs now {current.get(key)!r}"
        for key in keys
        if saved.get(key) != current.get(key)
    ]
    if differences:
        raise ValueError(
            f"checkpoint {path} comes from another configuration ({'; '.join(differences)}): "
            "restore those settings, or choose a new output folder (or delete the checkpoint) "
            "to start afresh"
        )
