"""The cross-sensor matrix: encoders pretrained on one sensor (rows), the fusion head adapted to and
evaluated on each sensor's scenes (columns), HQNR (full resolution) and Q2n (reduced resolution).

The diagonal is the within-sensor result; an off-diagonal cell close to its column's diagonal means
the frozen encoders transfer. Written as a long CSV (one line per scene), a Markdown table per index
and a heat map PNG.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from crossdiff_core.atomic import atomic_write  # noqa: E402
from crossdiff_core.report.document import (
    Block,
    Bullets,
    Heading,
    Image,
    Paragraph,
    Table,
    render_markdown,
)  # noqa: E402
from crossdiff_core.report.files import save_figure_atomic  # noqa: E402
from crossdiff_core.report.ranking import INDEX_LABELS  # noqa: E402

MATRIX_INDICES: tuple[str, ...] = ("hqnr", "q2n")


@dataclass(frozen=True)
class CrossSensorScore:
    """One target scene scored with encoders pretrained on ``encoder_sensor``."""

    encoder_sensor: str
    target_sensor: str
    scene_id: str
    hqnr: float
    q2n: float


def _sensors_in_order(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


def cross_sensor_matrix(
    scores: Sequence[CrossSensorScore], index: str, sensors: Sequence[str] | None = None
) -> tuple[list[str], list[str], np.ndarray]:
    """``(row sensors, column sensors, matrix (rows, columns))`` of ``index`` averaged over each
    target sensor's scenes; NaN where a pair has no score. Rows and columns share one sensor order
    (``sensors`` when given, else first appearance) so the diagonal is the within-sensor result."""
    if index not in MATRIX_INDICES:
        raise ValueError(f"cross-sensor index {index!r} unknown: use one of {MATRIX_INDICES}")
    if not scores and not sensors:
        raise ValueError("no cross-sensor scores: run at least one (encoder, target) pair")
    if sensors:
        rows = columns = list(sensors)
    else:
        order = _sensors_in_order(
            [s.encoder_sensor for s in scores] + [s.target_sensor for s in scores]
        )
        rows = [s for s in order if any(x.encoder_sensor == s for x in scores)]
        columns = [s for s in order if any(x.target_sensor == s for x in scores)]
    matrix = np.full((len(rows), len(columns)), np.nan)
    for r, encoder in enumerate(rows):
        for c, target in enumerate(columns):
            values = [
                getattr(s, index)
                for s in scores
                if s.encoder_sensor == encoder
                and s.target_sensor == target
                and math.isfinite(getattr(s, index))
            ]
            if values:
                matrix[r, c] = float(np.mean(values))
    return rows, columns, matrix


def matrix_table(
    scores: Sequence[CrossSensorScore], index: str, sensors: Sequence[str] | None = None
) -> Table:
    """Markdown-ready table of one index; the diagonal (within-sensor) cells in bold."""
    rows, columns, matrix = cross_sensor_matrix(scores, index, sensors)
    body = []
    bold = set()
    for r, encoder in enumerate(rows):
        cells = [f"{v:.4f}" if math.isfinite(v) else "n/a" for v in matrix[r]]
        body.append((f"pretrained on {encoder}", *cells))
        if encoder in columns:
            bold.add((r, columns.index(encoder) + 1))
    return Table(
        header=("encoders \\ evaluated on", *columns),
        rows=tuple(body),
        bold=frozenset(bold),
        caption=f"{INDEX_LABELS[index]} (higher is better); bold = within-sensor diagonal",
    )


def transfer_gaps(
    scores: Sequence[CrossSensorScore], index: str, sensors: Sequence[str] | None = None
) -> list[str]:
    """Sentences: each off-diagonal cell minus its column's diagonal (negative = transfer loses)."""
    rows, columns, matrix = cross_sensor_matrix(scores, index, sensors)
    sentences = []
    for c, target in enumerate(columns):
        if target not in rows or not math.isfinite(matrix[rows.index(target), c]):
            continue
        diagonal = matrix[rows.index(target), c]
        for r, encoder in enumerate(rows):
            if encoder != target and math.isfinite(matrix[r, c]):
                sentences.append(
                    f"{INDEX_LABELS[index]} on {target} with {encoder} encoders: "
                    f"{matrix[r, c]:.4f} vs {diagonal:.4f} within-sensor "
                    f"({matrix[r, c] - diagonal:+.4f})."
                )
    return sentences


def render_heat_map(
    scores: Sequence[CrossSensorScore], path: str | Path, sensors: Sequence[str] | None = None
) -> Path:
    """One annotated heat map per index (rows: encoder sensor, columns: target), diagonal boxed."""
    figure, axes = plt.subplots(
        1,
        len(MATRIX_INDICES),
        squeeze=False,
        figsize=(4.8 * len(MATRIX_INDICES), 3.8),
        layout="constrained",
    )
    for axis, index in zip(axes.flat, MATRIX_INDICES, strict=True):
        rows, columns, matrix = cross_sensor_matrix(scores, index, sensors)
        finite = matrix[np.isfinite(matrix)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if high - low < 1e-6:
            low, high = low - 0.01, high + 0.01
        image = axis.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=low, vmax=high)
        for r in range(len(rows)):
            for c in range(len(columns)):
                value = matrix[r, c]
                text = f"{value:.3f}" if math.isfinite(value) else "n/a"
                shade = (value - low) / (high - low) if math.isfinite(value) else 1.0
                axis.text(
                    c,
                    r,
                    text,
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="black" if shade > 0.6 else "white",
                )
                if rows[r] == columns[c]:
                    axis.add_patch(
                        plt.Rectangle(
                            (c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2
                        )
                    )
        axis.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
        axis.set_yticks(range(len(rows)), rows)
        axis.set_xlabel("adapted to and evaluated on")
        if axis is axes.flat[0]:
            axis.set_ylabel("encoders pretrained on")
        axis.set_title(INDEX_LABELS[index], fontsize=10)
        figure.colorbar(image, ax=axis, shrink=0.8)
    figure.suptitle("Cross-sensor generalisation (red box: within-sensor)", fontsize=10)
    return save_figure_atomic(figure, path)


def scores_csv(scores: Sequence[CrossSensorScore]) -> str:
    """The scores as CSV text, one line per (encoder sensor, target scene)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=[f.name for f in fields(CrossSensorScore)], lineterminator="\n"
    )
    writer.writeheader()
    for score in scores:
        writer.writerow(asdict(score))
    return buffer.getvalue()


def read_scores_csv(path: str | Path) -> list[CrossSensorScore]:
    """Read back what ``write_cross_sensor`` wrote."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [
            CrossSensorScore(
                row["encoder_sensor"],
                row["target_sensor"],
                row["scene_id"],
                float(row["hqnr"]),
                float(row["q2n"]),
            )
            for row in csv.DictReader(handle)
        ]


def write_cross_sensor(
    scores: Sequence[CrossSensorScore],
    out: str | Path,
    sensors: Sequence[str] | None = None,
    skipped: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, Path]:
    """Write ``cross_sensor.csv``, ``cross_sensor.md`` and ``cross_sensor.png`` into ``out``.

    ``sensors`` fixes the row/column order; ``skipped`` maps (encoder sensor, target sensor) pairs
    that could not run to the reason, which the Markdown states under the tables.
    """
    out = Path(out)
    blocks: list[Block] = [
        Paragraph(
            "Rows: sensor whose scenes pretrained the frozen encoders. Columns: sensor whose "
            "scenes the fusion head was adapted to and evaluated on (mean over its scenes). "
            "HQNR at full resolution, Q2n at reduced resolution."
        ),
        Image("cross_sensor.png", "cross-sensor heat map"),
    ]
    for index in MATRIX_INDICES:
        blocks += [Heading(INDEX_LABELS[index], 2), matrix_table(scores, index, sensors)]
        gaps = transfer_gaps(scores, index, sensors)
        if gaps:
            blocks.append(Paragraph(" ".join(gaps)))
    if skipped:
        blocks += [
            Heading("Pairs that could not run", 2),
            Bullets(
                tuple(f"{enc} encoders on {tgt}: {why}" for (enc, tgt), why in skipped.items())
            ),
        ]
    return {
        "csv": atomic_write(out / "cross_sensor.csv", scores_csv(scores)),
        "png": render_heat_map(scores, out / "cross_sensor.png", sensors),
        "markdown": atomic_write(
            out / "cross_sensor.md", render_markdown("Cross-sensor matrix", blocks)
        ),
    }
