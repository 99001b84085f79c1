"""A tqdm progress bar for local dask computations (one tick per finished task)."""

from __future__ import annotations

from dask.callbacks import Callback
from tqdm.auto import tqdm


class TqdmCallback(Callback):
    """``with TqdmCallback(desc="..."): dask.compute(...)`` shows the share of tasks done."""

    def __init__(self, desc: str = "") -> None:
        super().__init__()
        self._desc = desc
        self._bar: tqdm | None = None

    def _start_state(self, dsk, state) -> None:
        total = sum(len(state[key]) for key in ("ready", "waiting", "running", "finished"))
        self._bar = tqdm(total=total, desc=self._desc, unit="task", leave=False)

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def _finish(self, dsk, state, errored) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
