"""The one device picker: a setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``) -> a torch device."""

from __future__ import annotations

import torch

DEVICE_SETTINGS = ("auto", "cpu", "cuda", "cuda:N")


def pick_device(
    setting: str | torch.device = "auto", local_rank: int | None = None, what: str = "device"
) -> torch.device:
    """The torch device a setting names.

    ``auto`` is CUDA when a GPU is visible, else the CPU. ``cuda`` (or ``cuda:N``) without a
    visible GPU raises ValueError rather than falling back silently. Under DDP ``local_rank``
    gives each process its own GPU for ``auto`` / ``cuda``. ``what`` names the setting in errors
    (e.g. ``pretrain.device``).
    """
    name = str(setting).strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    index = name.removeprefix("cuda:") if name.startswith("cuda:") else None
    if name != "cuda" and not (index and index.isdigit()):
        raise ValueError(f"{what} must be one of {', '.join(DEVICE_SETTINGS)}, got {setting!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"{what} is {setting!r} but no CUDA device is visible: use auto or cpu")
    count = torch.cuda.device_count()
    if index is not None:
        if int(index) >= count:
            raise ValueError(f"{what} is {setting!r} but only {count} CUDA device(s) are visible")
        return torch.device("cuda", int(index))
    if local_rank is None:
        return torch.device("cuda")
    return torch.device("cuda", local_rank % count)
