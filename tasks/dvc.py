"""The scheduled flows run the pipeline through DVC: ``dvc repro``, with what DVC ran in the log.

Running the stages through DVC (never their ``main()`` behind its back) keeps ``dvc.lock``
describing the models in data/models and in the registry. One schedule lock per project keeps two
scheduled runs (or a landing move and a running repro) from overlapping.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

# DVC's own lines (the stages' output, forwarded by DVC, goes to the debug log).
_DVC_LINE = re.compile(r"^(Running stage|Stage '|Updating lock file|Generating lock file|"
                       r"Data and pipelines are up to date|ERROR|WARNING)")
_RUNNING = re.compile(r"^Running stage '([^']+)'")
LOCK_FILE = Path(".dvc") / "tmp" / "crossdiff-schedule.lock"


@contextlib.contextmanager
def schedule_lock(project: str | Path = ".", wait: bool = True) -> Iterator[bool]:
    """Hold the project's schedule lock; yields False at once (holding nothing) when another run
    holds it and not ``wait``."""
    path = Path(project) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def repro_command(targets: list[str] | None = None, force: bool = False) -> list[str]:
    return [sys.executable, "-m", "dvc", "repro", *(["--force"] if force else []),
            *(targets or [])]


@task(name="dvc-repro", cache_policy=NO_CACHE)
def dvc_repro_task(targets: list[str] | None = None, force: bool = False,
                   project: str = ".") -> list[str]:
    """``dvc repro [--force] [TARGETS]`` in ``project``: DVC reruns the stages whose code, params
    or data changed (and the listed ones when ``force``). Logs DVC's decisions (stages run,
    skipped, lock file updated); returns the stages it ran, in order. Raises RuntimeError with the
    end of the output when DVC fails."""
    logger = get_run_logger()
    command = repro_command(targets, force)
    logger.info("running `dvc %s` in %s", " ".join(command[3:]), Path(project).resolve())
    # The stage commands (`python -m flows.<stage>`) run with this interpreter's environment.
    env = {**os.environ,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    ran: list[str] = []
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip()
            if not line:
                continue
            tail.append(line)
            running = _RUNNING.match(line)
            if running:
                ran.append(running.group(1))
            (logger.info if _DVC_LINE.match(line) else logger.debug)("dvc: %s", line)
    if process.returncode:
        raise RuntimeError(f"`dvc {' '.join(command[3:])}` failed (exit {process.returncode}) "
                           f"after running {ran or 'no stage'}:\n" + "\n".join(tail))
    logger.info("dvc repro ran %s", ", ".join(ran) if ran else "nothing: every stage up to date")
    return ran
