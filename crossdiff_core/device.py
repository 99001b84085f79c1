"""The one device picker: a setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``) -> a torch device."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

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


# cuBLAS reuses its workspace deterministically only with a fixed workspace configuration; it has
# to be in the environment before cuBLAS starts (the first matrix product on the GPU).
CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def determinism(enabled: bool, device: torch.device) -> Iterator[None]:
    """Bit-for-bit repeatable kernels inside the block when ``enabled``; restored after.

    On the CPU torch's kernels are repeatable already for a given thread count (intra-op
    reductions are split by ``torch.get_num_threads()``, so another count gives other roundings);
    ``torch.use_deterministic_algorithms(True)`` then only refuses the few ops that are not.
    Its filling of uninitialised memory (``torch.utils.deterministic.fill_uninitialized_memory``)
    is left off: it changes no result of correct code and cost ~15 % of a CPU training step.
    On CUDA it also makes cuDNN pick deterministic convolution algorithms (including the
    transposed convolutions of the UNet and their gradients), turns cuDNN autotuning off and sets
    ``CUBLAS_WORKSPACE_CONFIG`` (when unset) for cuBLAS. Not covered on GPUs: NCCL all-reduce
    order across another number or topology of GPUs, and other GPU models or library versions.
    When not ``enabled``, cuDNN autotunes its algorithms (faster, not repeatable).
    """
    import torch.utils.deterministic as settings

    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.benchmark, settings.fill_uninitialized_memory)
    if enabled:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        settings.fill_uninitialized_memory = False
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = device.type == "cuda"
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]
        settings.fill_uninitialized_memory = previous[3]
