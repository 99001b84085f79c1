"""Whole-scene pansharpening on a dask.distributed cluster, equal bit for bit to one process.

``pansharpen_scene`` (``whole_scene``) computes fused rows in the calling process; here the
workers do the heavy work and the caller plans, waits and writes the output:

- a model: one task per batch of windows (the batches ``iter_fused_rows`` forms along each strip
  of windows) returns the weighted windows; one task per output chunk (512 x 512 PAN pixels, all
  bands) adds the windows that touch it in the order the single process adds them (strip by
  strip, left to right, in float32) and normalises: the same float32 operations in the same
  order, so every value is the one ``iter_fused_rows`` yields;
- a classical method: the same lazy whole-scene graph ``BaselineFuser.iter_rows`` computes
  (``baselines.scene.fused_strips``: global statistics first, then strips), its chunks computed
  on the workers.

Each output chunk task writes its float32 values into a scratch Zarr store (a hidden sibling of
the output, named after this process so a sweep removes it if the process dies). The output
itself, a COG or a Zarr store with every attribute, nodata hole and clipping rule of
``pansharpen_scene``, is then written by ``pansharpen_scene`` from those rows (one row of chunks in
memory at a time), atomically, and the scratch removed: the output equals the single-process
output because it is written by the same code from the same float32 values.

Work is submitted one row of output chunks at a time, at most ``rows_in_flight`` rows ahead, and
window results are released once the last chunk that needs them is written: a worker holds a few
windows and chunks, whatever the scene size. A worker lost mid-run (killed, or restarted by its
nanny over its memory limit) is survived: dask recomputes what it held and reruns what it was
running, and chunk writes are idempotent (the same bytes to the same chunk file). A run that
fails (the same task lost with its worker more than ``distributed.scheduler.allowed-failures``
times, 3 by default) raises and leaves nothing at ``out``; run it again.

Workers read the scene store and the model folder by path and write the scratch by path: the
paths must be the same on every worker (one machine, or a shared file system).
"""

from __future__ import annotations

import functools
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossdiff_core.atomic import owner_tag, remove_stale
from crossdiff_core.config import PansharpenParams
from crossdiff_core.infer.fusers import BaselineFuser
from crossdiff_core.infer.tiling import AxisLayout, check_scene_fits, plan_layout
from crossdiff_core.infer.writers import ZarrWriter, check_output

ROWS_IN_FLIGHT = 2  # rows of output chunks submitted ahead of the one being waited for


@dataclass(frozen=True)
class _Plan:
    """What every task of one run needs, small enough to ship with each task."""

    store: str
    model: str
    device: str
    height: int
    width: int
    bands: int
    ratio: int
    chunk: int
    rows: AxisLayout | None = None
    cols: AxisLayout | None = None
    batch_size: int = 1


# --- per-worker caches: each worker opens the scene and loads the model once -----------------


@functools.lru_cache(maxsize=4)
def _scene(store: str):
    from crossdiff_core.io.store import open_scene

    return open_scene(store)


@functools.lru_cache(maxsize=2)
def _fuser(model: str, store: str, device: str):
    from crossdiff_core.infer.fusers import load_fuser

    return load_fuser(model, _scene(store), device)


@functools.lru_cache(maxsize=4)
def _padded(plan: _Plan):
    from crossdiff_core.infer.tiling import _mirrored

    scene = _scene(plan.store)
    return _mirrored(scene.pan.data, scene.ms.data, plan.rows, plan.cols, plan.ratio,
                     (plan.height, plan.width))


@functools.lru_cache(maxsize=4)
def _output_array(path: str):
    import zarr

    return zarr.open_array(path, mode="r+")


def _clear_caches() -> None:
    for cache in (_scene, _fuser, _padded, _output_array):
        cache.cache_clear()


# --- tasks ------------------------------------------------------------------------------------


def _batches(plan: _Plan) -> list[list[int]]:
    """Column indices of the windows of each batch along a strip (as ``_fuse_strip`` forms
    them)."""
    indices = list(range(len(plan.cols.starts)))
    return [indices[i : i + plan.batch_size] for i in range(0, len(indices), plan.batch_size)]


def _window_weight(plan: _Plan, row_index: int, col_index: int) -> np.ndarray:
    return plan.rows.weights(row_index)[:, None] * plan.cols.weights(col_index)[None, :]


def fuse_window_batch(plan: _Plan, row_index: int, col_indices: list[int]) -> list[np.ndarray]:
    """The weighted windows (B, tile, tile) float32 of one batch of strip ``row_index``."""
    import dask

    fuser = _fuser(plan.model, plan.store, plan.device)
    pan_padded, ms_padded = _padded(plan)
    rows, cols, ratio = plan.rows, plan.cols, plan.ratio
    row_start = rows.starts[row_index]
    first, last = cols.starts[col_indices[0]], cols.starts[col_indices[-1]] + cols.tile
    pan_strip, ms_strip = dask.compute(
        pan_padded[row_start : row_start + rows.tile, first:last],
        ms_padded[:, row_start // ratio : (row_start + rows.tile) // ratio,
                  first // ratio : last // ratio],
        scheduler="synchronous",
    )
    starts = [cols.starts[j] - first for j in col_indices]
    pan_windows = np.stack([pan_strip[:, s : s + cols.tile] for s in starts])
    ms_windows = np.stack(
        [ms_strip[:, :, s // ratio : (s + cols.tile) // ratio] for s in starts])
    origins = [(row_start - rows.context, cols.starts[j] - cols.context) for j in col_indices]
    fused = fuser.fuse_windows(ms_windows, pan_windows, origins)
    out = []
    for col_index, window in zip(col_indices, fused, strict=True):
        window *= _window_weight(plan, row_index, col_index)
        out.append(window)
    return out


def _overlapping(layout: AxisLayout, first: int, stop: int) -> list[int]:
    """Indices of the windows of ``layout`` covering padded positions [first, stop)."""
    return [i for i, start in enumerate(layout.starts)
            if start < stop and start + layout.tile > first]


def _block_bounds(plan: _Plan, block_row: int, block_col: int) -> tuple[int, int, int, int]:
    r0, c0 = block_row * plan.chunk, block_col * plan.chunk
    return r0, min(r0 + plan.chunk, plan.height), c0, min(c0 + plan.chunk, plan.width)


def _write_block(plan: _Plan, output: str, block_row: int, block_col: int,
                 fused: np.ndarray) -> int:
    """Store one fused chunk (B, n, m) float32 in the scratch array ``output``."""
    r0, r1, c0, c1 = _block_bounds(plan, block_row, block_col)
    _output_array(output)[:, r0:r1, c0:c1] = fused
    return int(fused.nbytes)


def blend_block(plan: _Plan, output: str, block_row: int, block_col: int,
                windows: dict[tuple[int, int], np.ndarray]) -> int:
    """Sum the weighted windows over one output chunk in the single process's order, normalise
    and write it. ``windows``: (row index, col index) -> weighted window."""
    rows, cols = plan.rows, plan.cols
    r0, r1, c0, c1 = _block_bounds(plan, block_row, block_col)
    pr0, pr1, pc0, pc1 = r0 + rows.context, r1 + rows.context, c0 + cols.context, \
        c1 + cols.context
    values = np.zeros((plan.bands, r1 - r0, c1 - c0), np.float32)
    weights = np.zeros((r1 - r0, c1 - c0), np.float32)
    for i in _overlapping(rows, pr0, pr1):
        ys = max(pr0, rows.starts[i]), min(pr1, rows.starts[i] + rows.tile)
        for j in _overlapping(cols, pc0, pc1):
            xs = max(pc0, cols.starts[j]), min(pc1, cols.starts[j] + cols.tile)
            source = (slice(ys[0] - rows.starts[i], ys[1] - rows.starts[i]),
                      slice(xs[0] - cols.starts[j], xs[1] - cols.starts[j]))
            target = (slice(ys[0] - pr0, ys[1] - pr0), slice(xs[0] - pc0, xs[1] - pc0))
            values[(slice(None), *target)] += windows[i, j][(slice(None), *source)]
            weights[target] += _window_weight(plan, i, j)[source]
    fused = values / np.maximum(weights, np.float32(1e-12))
    return _write_block(plan, output, block_row, block_col, fused)


def _blend_from_batches(plan: _Plan, output: str, block_row: int, block_col: int,
                        keys: list[tuple[int, tuple[int, ...]]], *batches) -> int:
    windows = {}
    for (row_index, col_indices), batch in zip(keys, batches, strict=True):
        for col_index, window in zip(col_indices, batch, strict=True):
            windows[row_index, col_index] = window
    return blend_block(plan, output, block_row, block_col, windows)


def write_baseline_block(plan: _Plan, output: str, block_row: int, block_col: int,
                         fused: np.ndarray) -> int:
    """One output chunk of a classical method, float64 -> float32 (as ``iter_rows`` hands rows
    on), stored."""
    return _write_block(plan, output, block_row, block_col, fused.astype(np.float32))


# --- the driver -------------------------------------------------------------------------------


def pansharpen_scene_distributed(
    store: str | Path,
    model: str | Path,
    out: str | Path,
    client,
    fmt: str = PansharpenParams.format,
    tile: int = PansharpenParams.tile,
    context: int | None = None,
    blend: int = PansharpenParams.blend,
    batch_size: int = PansharpenParams.batch_size,
    device: str = "cpu",
    overwrite: bool = False,
    rows_in_flight: int = ROWS_IN_FLIGHT,
    on_block_row: Callable[[int, int], None] | None = None,
    **output_options,
) -> Path:
    """Pansharpen the scene store ``store`` with ``model`` (a pansharpener folder or a baseline
    name) into ``out`` (COG or Zarr) on the workers of ``client`` (a ``distributed.Client``).

    The output equals ``pansharpen_scene``'s with the same tiling, bit for bit: it is written by
    ``pansharpen_scene`` (``output_options``, e.g. its output settings, are passed on) from the
    rows the workers computed. ``on_block_row(done, total)`` is called after each row of output
    chunks the workers finished."""
    from crossdiff_core.infer.fusers import BaselineFuser, load_fuser
    from crossdiff_core.infer.whole_scene import pansharpen_scene
    from crossdiff_core.io.store import open_scene

    out = check_output(out, fmt, overwrite)
    store = str(Path(store).resolve())
    scene = open_scene(store)
    fuser = load_fuser(str(model), scene, device)  # checks model and scene; metadata here
    check_scene_fits(tuple(scene.pan.shape), tuple(scene.ms.shape), fuser, str(out))
    model_ref = str(Path(model).resolve()) if Path(model).exists() else str(model)
    height, width = (int(n) for n in scene.pan.shape)
    plan = _Plan(store=store, model=model_ref, device=str(getattr(fuser, "device", device)),
                 height=height, width=width, bands=int(scene.ms.sizes["band"]),
                 ratio=fuser.ratio, chunk=ZarrWriter.chunk, batch_size=batch_size)
    if not isinstance(fuser, BaselineFuser):
        context = fuser.context if context is None else context
        rows, cols = plan_layout(height, width, tile, context, blend,
                                 math.lcm(fuser.size_multiple, fuser.ratio))
        plan = _replace(plan, rows=rows, cols=cols)
    scratch = _scratch_path(out)
    remove_stale(scratch)  # scratch stores of runs that died
    try:
        client.run(_clear_caches)  # a store rewritten at the same path since a previous run
        array = _create_scratch(scratch, plan)
        if isinstance(fuser, BaselineFuser):
            _run_baseline(client, plan, fuser, scene, array, rows_in_flight, on_block_row)
        else:
            _run_model(client, plan, array, rows_in_flight, on_block_row)
        client.run(_clear_caches)
        rows_fuser = ScratchRows(method=getattr(fuser, "method", None), ratio=fuser.ratio,
                                 n_bands=fuser.n_bands, sensor=scene.sensor, path=array)
        if not isinstance(fuser, BaselineFuser):  # the record says the model, not the rows
            given = dict(output_options.get("provenance") or {})
            given.setdefault("method", "crossdiff")
            given["parameters"] = {"tile": tile, "blend": blend, "batch_size": batch_size,
                                   "context": context, **given.get("parameters", {})}
            output_options["provenance"] = given
        return pansharpen_scene(scene, rows_fuser, out, fmt=fmt, overwrite=overwrite,
                                progress=False, **_accepted(pansharpen_scene, output_options))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _accepted(function, options: dict) -> dict:
    """The ``options`` ``function`` takes (None values dropped)."""
    import inspect

    parameters = inspect.signature(function).parameters
    return {k: v for k, v in options.items() if k in parameters and v is not None}


@dataclass
class ScratchRows(BaselineFuser):
    """Rows the workers already fused, read back from the scratch array ``path`` in rows of
    chunks, for ``pansharpen_scene`` to write (``iter_rows`` is all it calls)."""

    path: str = ""

    def iter_rows(self, ms, pan, progress: bool = False):
        import zarr

        array = zarr.open_array(self.path, mode="r")
        step = array.chunks[1]
        for first in range(0, array.shape[1], step):
            yield first, array[:, first : first + step]


def _scratch_path(out: Path) -> Path:
    """A hidden sibling of ``out`` naming this process (``crossdiff_core.atomic``'s pattern, so
    ``remove_stale`` sweeps it when this process is gone)."""
    import uuid

    return out.with_name(f".{out.name}.{owner_tag()}-{uuid.uuid4().hex[:8]}.rows.zarr")


def _create_scratch(path: Path, plan: _Plan) -> str:
    """An empty float32 Zarr array (band, y, x) chunked like the outputs; returns its path."""
    import zarr

    zarr.create_array(str(path), shape=(plan.bands, plan.height, plan.width),
                      chunks=(plan.bands, plan.chunk, plan.chunk), dtype="float32",
                      fill_value=0.0)
    return str(path.resolve())


def _replace(plan: _Plan, **changes) -> _Plan:
    from dataclasses import replace

    return replace(plan, **changes)


def _block_grid(plan: _Plan) -> tuple[int, int]:
    return -(-plan.height // plan.chunk), -(-plan.width // plan.chunk)


def _run_model(client, plan: _Plan, output: str, rows_in_flight: int,
               on_block_row: Callable[[int, int], None] | None) -> None:
    """Submit window batches and output chunks row by row; keep window futures only as long as
    an unsubmitted or unfinished chunk needs them."""
    import uuid

    from distributed import wait

    run = uuid.uuid4().hex
    n_rows, n_cols = _block_grid(plan)
    batches = _batches(plan)
    batch_of = {j: b for b, cols in enumerate(batches) for j in cols}
    rows, cols = plan.rows, plan.cols
    window_rows = [_overlapping(rows, r * plan.chunk + rows.context,
                                min((r + 1) * plan.chunk, plan.height) + rows.context)
                   for r in range(n_rows)]
    last_need = {}
    for r, indices in enumerate(window_rows):
        for i in indices:
            last_need[i] = r
    window_futures: dict[tuple[int, int], object] = {}
    pending: list[list] = []
    done = 0
    for r in range(n_rows):
        blocks = []
        for c in range(n_cols):
            pc0 = c * plan.chunk + cols.context
            pc1 = min((c + 1) * plan.chunk, plan.width) + cols.context
            needed = sorted({(i, batch_of[j]) for i in window_rows[r]
                             for j in _overlapping(cols, pc0, pc1)})
            for i, b in needed:
                if (i, b) not in window_futures:
                    window_futures[i, b] = client.submit(
                        fuse_window_batch, plan, i, batches[b], pure=False,
                        key=f"crossdiff-windows-{i}-{b}-{run}", priority=-r)
            keys = [(i, tuple(batches[b])) for i, b in needed]
            blocks.append(client.submit(
                _blend_from_batches, plan, output, r, c, keys,
                *(window_futures[key] for key in needed), pure=False, priority=-r))
        pending.append(blocks)
        # Windows no later row needs: drop this side's reference (the scheduler frees them once
        # the chunks submitted above have read them).
        for key in [key for key in window_futures if last_need[key[0]] <= r]:
            del window_futures[key]
        while len(pending) > rows_in_flight:
            done = _finish_row(pending.pop(0), wait, done, n_rows, on_block_row)
    while pending:
        done = _finish_row(pending.pop(0), wait, done, n_rows, on_block_row)


def _finish_row(futures: list, wait, done: int, total: int,
                on_block_row: Callable[[int, int], None] | None) -> int:
    wait(futures)
    for future in futures:
        future.result()  # raises the task's error (or KilledWorker) here
    done += 1
    if on_block_row is not None:
        on_block_row(done, total)
    return done


def _run_baseline(client, plan: _Plan, fuser, scene, output: str, rows_in_flight: int,
                  on_block_row: Callable[[int, int], None] | None) -> None:
    """The method's lazy whole-scene graph, rechunked to the output chunks and written row of
    chunks by row of chunks on the workers (rows in flight share their upstream results)."""
    import dask
    from distributed import wait

    from crossdiff_core.baselines.scene import fused_strips

    with dask.config.set(scheduler=client):  # the global statistics are computed there too
        fused = fused_strips(fuser.method, scene.ms.data, scene.pan.data, fuser.ratio,
                             fuser.sensor)
    fused = fused.rechunk((plan.bands, plan.chunk, plan.chunk))
    blocks = fused.to_delayed()[0]
    write = dask.delayed(write_baseline_block, pure=False)
    n_rows, n_cols = _block_grid(plan)
    pending: list[list] = []
    done = 0
    for r in range(n_rows):
        pending.append(client.compute([write(plan, output, r, c, blocks[r, c])
                                       for c in range(n_cols)], priority=-r))
        while len(pending) > rows_in_flight:
            done = _finish_row(pending.pop(0), wait, done, n_rows, on_block_row)
    while pending:
        done = _finish_row(pending.pop(0), wait, done, n_rows, on_block_row)
