"""Figures written atomically (``crossdiff_core.atomic``): a failure never leaves half a PNG."""

from __future__ import annotations

from pathlib import Path

from crossdiff_core.atomic import atomic_write


def save_figure_atomic(figure, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(
            path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        )
    finally:
        plt.close(figure)
