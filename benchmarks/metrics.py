"""Time every quality index on an 8-band 2048 x 2048 image, against one MTF-filtering pass.

Run: ``python benchmarks/metrics.py [--size 2048] [--repeats 3]``. Prints one table: seconds per
index group (best of the repeats) and each divided by the time of one MTF-filtering pass of the
fused image, all measured in this run, repeats interleaved (absolute seconds depend on the
machine; ratios less so).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from crossdiff_core import metrics
from crossdiff_core.degrade import mtf_filter

SENSOR = "WV3"
RATIO = 4


def best_times(actions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best time of each action; the repeats are interleaved so that every action sees the same
    load on a shared machine (the ratios are what matter)."""
    timings: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeats):
        for name, action in actions.items():
            start = time.perf_counter()
            action()
            timings[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in timings.items()}


def make_images(size: int) -> tuple[np.ndarray, ...]:
    """Correlated reference / fused / MS / PAN in 11-bit DN, seeded."""
    rng = np.random.default_rng(0)
    low = size // RATIO
    base = rng.uniform(200, 1500, (low // 8, low // 8))
    base = np.kron(base, np.ones((8 * RATIO, 8 * RATIO)))
    pan = np.round(base + rng.normal(0, 40, (size, size)))
    gains = rng.uniform(0.6, 1.2, (8, 1, 1))
    reference = np.round(base[None] * gains + rng.normal(0, 30, (8, size, size)))
    fused = np.round(reference + rng.normal(0, 25, reference.shape))
    ms = reference.reshape(8, low, RATIO, low, RATIO).mean(axis=(2, 4))
    return np.clip(reference, 0, 2047), np.clip(fused, 0, 2047), ms, np.clip(pan, 0, 2047)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    reference, fused, ms, pan = make_images(args.size)

    groups: dict[str, Callable[[], object]] = {
        "one MTF filtering pass (8 bands)": lambda: mtf_filter(fused, SENSOR, RATIO),
        "SAM": lambda: metrics.sam(reference, fused),
        "ERGAS": lambda: metrics.ergas(reference, fused, RATIO),
        "Q (sliding 32)": lambda: metrics.q_index(reference, fused),
        "Q8 (Q2n)": lambda: metrics.q2n(reference, fused),
        "SCC": lambda: metrics.scc(reference, fused),
        "QNR (D_lambda, D_s)": lambda: metrics.qnr(fused, ms, pan, RATIO),
        "HQNR (D_lambda_K, D_s)": lambda: metrics.hqnr(fused, ms, pan, RATIO, SENSOR),
        "D_rho": lambda: metrics.d_rho(fused, pan, RATIO),
        "R-Q2n, R-Q, R-SAM, R-ERGAS": lambda: metrics.full_resolution_consistency(
            fused, ms, pan, RATIO, SENSOR),
    }
    timings = best_times(groups, args.repeats)
    mtf_time = timings["one MTF filtering pass (8 bands)"]
    total = sum(t for name, t in timings.items() if not name.startswith("one MTF"))
    print(f"8-band {args.size} x {args.size} image (MS {args.size // RATIO} x "
          f"{args.size // RATIO}, ratio {RATIO}), best of {args.repeats}")
    print(f"{'index':34s} {'seconds':>9s} {'/ MTF pass':>11s}")
    for name, seconds in timings.items():
        print(f"{name:34s} {seconds:9.3f} {seconds / mtf_time:11.2f}")
    print(f"{'all indices':34s} {total:9.3f} {total / mtf_time:11.2f}")


if __name__ == "__main__":
    main()
