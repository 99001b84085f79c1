"""Per-band percentiles as MATLAB's ``prctile``, exact on dask arrays in bounded memory.

``prctile`` interpolates linearly between the sorted values placed at (k - 0.5) / n (numpy's
'hazen' method). A whole scene is never sorted: each band's order statistics are narrowed with
histograms over the chunks (a few passes) until the bin that holds them is small enough to gather
and sort, so the dask result equals the in-memory one.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from crossdiff_core.baselines._arrays import Array, is_lazy, materialise

_BINS = 4096
_GATHER_LIMIT = 1 << 20  # values of one bin that may be collected in memory


def band_percentile(images: Array, percent: float) -> np.ndarray:
    """MATLAB ``prctile(band(:), percent)`` of each band: (B, y, x) -> (B,)."""
    n_bands, n_pixels = images.shape[0], images.shape[1] * images.shape[2]
    if not is_lazy(images):
        return np.percentile(
            np.reshape(images, (n_bands, n_pixels)), percent, axis=1, method="hazen"
        )
    position = np.clip(n_pixels * percent / 100.0 + 0.5, 1.0, n_pixels)  # 1-based, clamped
    low = int(np.floor(position))
    high = min(low + 1, n_pixels)
    fraction = position - low
    requests = [(band, rank) for band in range(n_bands) for rank in (low - 1, high - 1)]
    values = np.array(order_statistics(images, requests)).reshape(n_bands, 2)
    return values[:, 0] + fraction * (values[:, 1] - values[:, 0])


def order_statistics(images: da.Array, requests: list[tuple[int, int]]) -> list[float]:
    """Exact value of 0-based rank ``rank`` in band ``band`` for each (band, rank) request.

    Each request keeps an interval [low, high) that holds its value and the count of values below
    it; every pass over the chunks splits all open intervals into histogram bins at once.
    """
    images = images.rechunk({0: -1})
    minima, maxima = materialise(images.min(axis=(1, 2)), images.max(axis=(1, 2)))
    intervals = {i: (minima[band], maxima[band]) for i, (band, _) in enumerate(requests)}
    results: dict[int, float] = {}
    while intervals:
        edges = {i: np.linspace(low, high, _BINS + 1) for i, (low, high) in intervals.items()}
        counts = _bin_counts(images, [(requests[i][0], edges[i]) for i in intervals])
        to_gather = {}
        for i, bin_counts in zip(list(intervals), counts, strict=True):
            rank = requests[i][1]
            cumulative = np.cumsum(bin_counts)
            index = int(np.searchsorted(cumulative, rank, side="right"))
            if index == len(bin_counts) - 1:  # at or above the top edge: only the band maximum
                results[i] = intervals.pop(i)[1]
                continue
            low, high = edges[i][index - 1], edges[i][index]
            if high <= np.nextafter(low, np.inf):  # no float fits between: all values equal low
                results[i] = low
                intervals.pop(i)
            elif bin_counts[index] <= _GATHER_LIMIT:
                to_gather[i] = (low, high, rank - cumulative[index - 1])
                intervals.pop(i)
            else:
                intervals[i] = (low, high)
        gathered = dask.compute(
            *[
                images[requests[i][0]][
                    (images[requests[i][0]] >= low) & (images[requests[i][0]] < high)
                ]
                for i, (low, high, _) in to_gather.items()
            ]
        )
        for (i, (_, _, offset)), values in zip(to_gather.items(), gathered, strict=True):
            results[i] = float(np.sort(values)[offset])
    return [float(results[i]) for i in range(len(requests))]


def _bin_counts(images: da.Array, specs: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """For each (band, edges): counts of the band's values below edges[0], in each bin
    [edges[k], edges[k + 1]) and at or above edges[-1]; (len(specs), len(edges) + 1)."""

    def count_block(block: np.ndarray) -> np.ndarray:
        counts = np.stack(
            [
                np.bincount(
                    np.searchsorted(edges, block[band].ravel(), side="right"),
                    minlength=len(edges) + 1,
                )
                for band, edges in specs
            ]
        )
        return counts[None, None]

    n_bins = len(specs[0][1]) + 1
    per_block = images.map_blocks(
        count_block,
        drop_axis=0,
        new_axis=[2, 3],
        dtype=np.int64,
        chunks=(
            tuple(1 for _ in images.chunks[1]),
            tuple(1 for _ in images.chunks[2]),
            (len(specs),),
            (n_bins,),
        ),
    )
    (counts,) = dask.compute(per_block.sum(axis=(0, 1)))
    return counts
