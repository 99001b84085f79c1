"""Loss curves from training CSV files: pretraining (``<out>/p2m/losses.csv``, ``<out>/m2p/...``)
and adaptation (any ``*loss*.csv`` under its output folder).

The reader is tolerant about columns because each training loop logs its own terms: the x axis is a
``step`` (or ``iteration``/``epoch``) column when there is one, else the row number; every other
numeric column is a curve (the total and its terms, e.g. ``loss, spectral, spatial``) except
bookkeeping columns such as the learning rate or timings, which have other units.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from crossdiff_core.report.files import save_figure_atomic  # noqa: E402

STEP_COLUMNS = ("step", "iteration", "iter", "epoch")
NOT_LOSSES = (
    "lr",
    "learning_rate",
    "seconds",
    "time",
    "elapsed",
    "samples_per_second",
    "grad_norm",
)


def read_loss_csv(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return ``(steps (N,), {column: values (N,)})`` of a loss CSV; ValueError if none."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise ValueError(f"loss file {path} has no header row")
        rows = list(reader)
    if not rows:
        raise ValueError(f"loss file {path} has a header but no rows")

    def numeric(column: str) -> np.ndarray | None:
        values = []
        for row in rows:
            try:
                values.append(float(row[column]))
            except (TypeError, ValueError):
                return None
        return np.array(values)

    columns = {c: v for c in reader.fieldnames if (v := numeric(c)) is not None}
    step_column = next(
        (c for c in reader.fieldnames if c.lower() in STEP_COLUMNS and c in columns), None
    )
    steps = columns.pop(step_column) if step_column else np.arange(len(rows), dtype=float)
    curves = {c: v for c, v in columns.items() if c.lower() not in NOT_LOSSES}
    if not curves:
        raise ValueError(
            f"loss file {path} has no numeric loss column (columns: {', '.join(reader.fieldnames)})"
        )
    return steps, curves


def find_loss_files(folder: str | Path) -> list[Path]:
    """Every CSV under ``folder`` named ``*loss*``, sorted; empty if the folder is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.csv") if "loss" in p.name.lower())


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or values.size < width:
        return values
    kernel = np.ones(width) / width
    return np.convolve(values, kernel, mode="valid")


def render_loss_curves(files: Sequence[tuple[str, Path]], path: str | Path, title: str) -> Path:
    """One axis per (label, csv) pair with every loss column; raw values faint, running mean on top
    (window ~2 % of the run) so trends survive noisy single-batch losses. Log scale when all
    positive."""
    if not files:
        raise ValueError(f"no loss files to plot for {title!r}")
    figure, axes = plt.subplots(1, len(files), figsize=(4.5 * len(files), 3.2), squeeze=False)
    for axis, (label, csv_path) in zip(axes.flat, files, strict=True):
        steps, curves = read_loss_csv(csv_path)
        all_positive = True
        for column, values in curves.items():
            (line,) = axis.plot(steps, values, alpha=0.3, linewidth=0.8)
            width = max(1, math.ceil(values.size / 50))
            smooth = _smooth(values, width)
            axis.plot(
                steps[width - 1 :] if width > 1 and values.size >= width else steps,
                smooth,
                color=line.get_color(),
                linewidth=1.5,
                label=column,
            )
            all_positive &= bool(np.all(values[np.isfinite(values)] > 0))
        if all_positive:
            axis.set_yscale("log")
        axis.set_title(label, fontsize=9)
        axis.set_xlabel("step")
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.suptitle(title, fontsize=10)
    return save_figure_atomic(figure, path)
