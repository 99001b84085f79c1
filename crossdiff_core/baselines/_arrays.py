"""Array operations the baselines share, for numpy arrays and (chunk-wise, exact) dask arrays.

A baseline written with these helpers runs in memory on numpy input and lazily, chunk by chunk,
on dask input: global statistics are reductions computed once (:func:`materialise` for cheap ones,
:func:`block_reduce` and :func:`band_moments` for those over a deep pipeline, in bounded memory),
and the fusion rules are pixel-wise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import dask
import dask.array as da
import numpy as np
from dask._task_spec import DataNode  # dask is pinned in pyproject.toml
from dask.local import get_sync

from crossdiff_core import degrade
from crossdiff_core.sensors import Sensor

Array = np.ndarray | da.Array


def is_lazy(array: Array) -> bool:
    return isinstance(array, da.Array)


def check_inputs(ms: Array, pan: Array, ratio: int) -> tuple[Array, Array]:
    """Validate ms (B, h, w) and pan (ratio h, ratio w); returns float64 views."""
    if ms.ndim != 3:
        raise ValueError(f"ms must be (band, y, x), got shape {ms.shape}")
    if pan.ndim != 2:
        raise ValueError(f"pan must be (y, x), got shape {pan.shape}")
    if isinstance(ratio, bool) or int(ratio) != ratio or ratio < 2:
        raise ValueError(f"ratio must be an integer >= 2, got {ratio!r}")
    if pan.shape != (ms.shape[1] * ratio, ms.shape[2] * ratio):
        raise ValueError(f"pan shape {pan.shape} is not ratio {ratio} x ms shape {ms.shape[1:]}: "
                         "the grids must nest")
    if is_lazy(ms) != is_lazy(pan):
        raise ValueError("give ms and pan both as numpy or both as dask arrays")
    if not is_lazy(ms):
        ms, pan = np.asarray(ms, dtype=np.float64), np.asarray(pan, dtype=np.float64)
        for name, image in (("ms", ms), ("pan", pan)):
            if not np.isfinite(image).all():
                raise ValueError(f"{name} contains NaN or inf: fill or mask them before fusing")
        return ms, pan
    return ms.astype(np.float64), pan.astype(np.float64)


def upsample(ms: Array, ratio: int) -> Array:
    """interp23tap: (B, h, w) -> (B, ratio h, ratio w)."""
    if is_lazy(ms):
        return degrade.interp23tap_dask(ms, ratio)
    return degrade.interp23tap(ms, ratio)


def filter_stack(images: Array, kernels: np.ndarray) -> Array:
    """Each of (B, y, x) correlated with its own kernel (B, k, k), replicate borders."""
    if not is_lazy(images):
        return degrade.filter_bands(images, kernels)
    half = kernels.shape[-1] // 2
    images = images.rechunk({0: -1})
    if min(min(c) for c in images.chunks[1:]) < half:
        images = images.rechunk({1: max(256, half), 2: max(256, half)})
    # An axis in one chunk needs no overlap: filter_bands replicates the borders itself (and an
    # overlap deeper than the image, on a small one, is refused by dask).
    depth = {axis: half if images.numblocks[axis] > 1 else 0 for axis in (1, 2)}
    extended = da.overlap.overlap(images, depth=depth, boundary="nearest")
    return extended.map_blocks(_filter_block, kernels=kernels, rows=depth[1], cols=depth[2],
                               chunks=images.chunks, dtype=np.float64)


def _filter_block(block: np.ndarray, kernels: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """filter_bands on an extended block, trimmed back to the chunk (a compact copy: a view would
    keep the whole extended block alive as long as the chunk)."""
    filtered = degrade.filter_bands(block, kernels)
    return np.ascontiguousarray(filtered[:, rows:filtered.shape[1] - rows,
                                         cols:filtered.shape[2] - cols])


def replicate(pan: Array, n_bands: int, like: Array) -> Array:
    """pan (H, W) broadcast to (B, H, W), chunked like ``like``."""
    if not is_lazy(pan):
        return np.broadcast_to(pan, (n_bands, *pan.shape))
    return da.broadcast_to(pan[None], (n_bands, *pan.shape)).rechunk(like.chunks)


def decimate(images: Array, ratio: int) -> Array:
    return degrade.decimate_dask(images, ratio) if is_lazy(images) else degrade.decimate(
        images, ratio)


def shrink(image: Array, ratio: int) -> Array:
    """MATLAB imresize(image, 1 / ratio), bicubic antialiased."""
    if is_lazy(image):
        return degrade.imresize_shrink_dask(image, ratio)
    return degrade.imresize_bicubic(image, 1.0 / ratio)


def mtf_lowpass_pan(pan: Array, ratio: int, sensor: str | Sensor, n_bands: int,
                    like: Array) -> Array:
    """The PAN seen through each band's MTF, decimated and re-expanded: the GLP low-pass PAN.

    pan (H, W) -> (B, H, W).
    """
    kernels = degrade.mtf_kernels(sensor, ratio, n_bands=n_bands)
    filtered = filter_stack(replicate(pan, n_bands, like), kernels)
    return upsample(decimate(filtered, ratio), ratio)


def band_mean(images: Array) -> Array:
    """Per-band mean, (B, y, x) -> (B, 1, 1)."""
    return images.mean(axis=(-2, -1), keepdims=True)


def materialise(*stats):
    """Compute dask statistics once (numpy ones pass through)."""
    if any(is_lazy(s) for s in stats):
        stats = dask.compute(*stats)
    return tuple(np.asarray(s, dtype=np.float64) for s in stats)


def iter_block_rows(array: da.Array, axis: int, get: Callable = get_sync) -> Iterator[list]:
    """Compute a lazy array one row of blocks at a time along ``axis`` (the axes before it in one
    block), in order; yield each row's blocks (a list, in the order of the later axes).

    Every task runs once: results that a later row still needs (the upstream chunks its overlaps
    reach into) are kept until that row is done, and nothing else is. Memory therefore holds one
    row of the pipeline plus those carried chunks, whatever the array's length along ``axis``,
    where dask's own scheduling of the whole graph may hold far more. ``get``: the scheduler run
    on each row's tasks.
    """
    if any(array.numblocks[before] != 1 for before in range(axis)):
        raise ValueError(f"the axes before {axis} must be in one block, got {array.numblocks}")
    (array,) = dask.optimize(array)
    graph = dict(array.__dask_graph__())
    keys = array.__dask_keys__()
    for _ in range(axis):
        keys = keys[0]
    row_keys = [list(_flatten(row)) for row in keys]
    dependencies = {key: task.dependencies for key, task in graph.items()}
    # Plan: the tasks each row runs, and the results it reads from earlier rows. The search
    # stops at results computed before: a row needing shrink(x) already computed for an earlier
    # row's overlap reads it, and does not hold x (often far bigger) for it.
    last_row: dict = {}  # key -> last row that reads or computes it
    needs = []
    computed: set = set()
    for index, keys in enumerate(row_keys):
        need, stack = set(), list(keys)
        while stack:
            key = stack.pop()
            if key not in need:
                need.add(key)
                if key not in computed:
                    stack.extend(dependencies[key])
        needs.append(need)
        computed |= need
        for key in need:
            last_row[key] = index
    carried: dict = {}
    for index, (keys, need) in enumerate(zip(row_keys, needs, strict=True)):
        subgraph = {key: DataNode(key, carried[key]) if key in carried else graph[key]
                    for key in need}
        keep = [key for key in need if last_row[key] > index and key not in carried]
        results = get(subgraph, keys + keep)
        carried.update(zip(keep, results[len(keys):], strict=True))
        for key in [key for key in carried if last_row[key] <= index]:
            del carried[key]
        yield list(results[: len(keys)])


def _flatten(nested) -> Iterator:
    if isinstance(nested, list):
        for item in nested:
            yield from _flatten(item)
    else:
        yield nested


def block_reduce(partial: Callable, images: list[Array], combine: Callable = np.add):
    """``partial(*blocks)`` of every spatial block of ``images`` (each (k, y, x) or (y, x), on one
    grid), folded with ``combine`` block after block, rows top to bottom (numpy input: one block,
    the whole images).

    Dask input: the images take the first one's spatial chunks (the band axis in one chunk) and
    the rows of blocks are computed top to bottom by :func:`iter_block_rows`: memory holds one
    row of the pipeline behind the images (and what later rows read of it), whatever the scene
    size. The tasks run in this thread, as the fusion's strips do: a thread pool would take
    more memory (its threads' allocator arenas keep theirs) for little speed on a loaded machine.
    """
    if not is_lazy(images[0]):
        return partial(*images)
    stacks = [image[None] if image.ndim == 2 else image for image in images]
    grid = stacks[0].rechunk({0: -1}).chunks[1:]
    arguments = []
    for index, stack in enumerate(stacks):
        arguments += [stack.rechunk({0: -1, 1: grid[0], 2: grid[1]}), (f"band{index}", "y", "x")]
    # One partial result per block: an object, never assembled into an array.
    partials = da.blockwise(partial, ("y", "x"), *arguments, concatenate=True, dtype=np.float64,
                            meta=np.empty((0, 0)))
    total = None
    for row in iter_block_rows(partials, 0):
        for value in row:
            total = value if total is None else combine(total, value)
    return total


def band_moments(images: Array) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation (N - 1) of (B, y, x) or (y, x): arrays (B,) or
    floats. Dask input: one pass, block means and scatters merged (Chan et al.), bounded memory."""
    if not is_lazy(images):
        axes = (1, 2) if images.ndim == 3 else None
        return (np.asarray(images.mean(axis=axes), dtype=np.float64),
                np.asarray(images.std(axis=axes, ddof=1), dtype=np.float64))
    count, mean, scatter = block_reduce(_block_moments, [images], combine=_merge_moments)
    std = np.sqrt(scatter / (count - 1))
    if images.ndim == 2:
        return float(mean[0]), float(std[0])
    return mean, std


def _block_moments(block: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    count = block.shape[-2] * block.shape[-1]
    mean = block.mean(axis=(-2, -1))
    scatter = ((block - mean[:, None, None]) ** 2).sum(axis=(-2, -1))
    return count, mean, scatter


def _merge_moments(first: tuple, second: tuple) -> tuple[int, np.ndarray, np.ndarray]:
    count_a, mean_a, scatter_a = first
    count_b, mean_b, scatter_b = second
    count = count_a + count_b
    delta = mean_b - mean_a
    return (count, mean_a + delta * (count_b / count),
            scatter_a + scatter_b + delta**2 * (count_a * count_b / count))
