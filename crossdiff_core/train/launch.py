"""Running a module under torchrun (``torch.distributed.run``): N training processes on this
machine, one process group (gloo on CPU, nccl on GPUs; ``crossdiff_core.train.pretrain``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence


def under_torchrun() -> bool:
    """Whether this process is a worker that torchrun (or another launcher) started: the
    environment then describes a process group (``WORLD_SIZE``, ``RANK``)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def torchrun_command(module: str, processes: int, args: Sequence[str] = ()) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node N -m MODULE ARGS``: a
    single-machine rendezvous on a free port, so several launches never collide."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(processes), "-m", module, *args]


def worker_environment(processes: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the workers: ``base`` (default this process's), with
    ``OMP_NUM_THREADS`` set to an equal share of this machine's cores unless it is set already
    (torchrun would set it to 1). The thread count is part of what a CPU run computes (intra-op
    reductions are split by it), so it is fixed for a given machine and process count."""
    env = dict(os.environ if base is None else base)
    if "OMP_NUM_THREADS" not in env:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        env["OMP_NUM_THREADS"] = str(max(1, (cores or 1) // processes))
    return env


def run_torchrun(module: str, processes: int, args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, what: str = "training") -> None:
    """Run ``module`` in ``processes`` processes under torchrun and wait for them.

    RuntimeError when they fail (a worker raised or was killed: torchrun then stops the others);
    whatever they checkpointed stays, so running the same command again resumes.
    """
    command = torchrun_command(module, processes, args)
    completed = subprocess.run(command, env=worker_environment(processes, env), check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{what} under torchrun with {processes} processes failed (exit status "
            f"{completed.returncode}; the workers' errors are above); rerun to resume from the "
            "last checkpoint"
        )
