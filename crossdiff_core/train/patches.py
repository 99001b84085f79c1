"""Training patches (PAN patch, matching MS patch, upsampled MS) from scene stores.

Two kinds of pair (``pretext``): "original" pairs the PAN patch with the MS upsampled to its grid;
"matched_scale" pairs the MS patch with the PAN reduced to the MS grid (the toolbox's bicubic
resize, as the Wald protocol does), where both images hold detail of the same scale.

Scenes that together fit in ``IN_MEMORY_BYTES`` are read into memory once (a patch is then a
numpy slice: ~20x faster than a dask window read per patch, which dominated the step time of
small-scene training); larger corpora are read lazily, each sample reading only its windows from
the stores' chunks. Either way a sample is a pure function of (seed, index), so a run is
reproducible with any number of DataLoader workers and a resumed run sees exactly the batches it
would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from crossdiff_core.scaling import Normalisation, scene_normalisation
from crossdiff_core.scene import Scene
from crossdiff_core.train.config import AUGMENTS, PRETEXTS

# MS pixels read around a patch before interp23tap, then cropped away. The toolbox's 23-tap
# interpolation reaches about 5.5 MS pixels at ratio 2, 8.3 at ratio 4 and 9.6 at ratio 8, so its
# circular borders never touch the patch with this margin.
UPSAMPLE_MARGIN = 12
MAX_DRAWS = 200
# A held-out diagnostic patch is reserved only on scenes at least this many patches a side: on
# smaller ones (the Wald copies of evaluation crops) it would bar most patch positions.
HOLD_OUT_MIN_PATCHES = 4
# Scenes whose PAN and MS arrays total at most this many bytes are held in memory (per process).
IN_MEMORY_BYTES = 1 << 30
# MS pixels of PAN read around a matched-scale patch before the bicubic reduction (whose kernel
# reaches 2 MS pixels), then cropped away.
REDUCE_MARGIN = 3


@dataclass(frozen=True)
class PatchBox:
    """A patch position: scene index and the MS-grid origin (row, column) of the patch."""

    scene: int
    row: int
    col: int


def _read_window(array, rows: slice, cols: slice) -> np.ndarray:
    """Materialise one window of a (lazy) DataArray without starting a thread pool."""
    window = array[..., rows, cols].data
    if hasattr(window, "compute"):
        window = window.compute(scheduler="synchronous")
    return np.asarray(window)


class PatchDataset(Dataset):
    """Random original-scale patches from one or many scenes.

    ``scenes``: scene store paths (opened lazily in each worker) or ``Scene`` objects; they must
    share the MS band count and ratio. ``pan_patch`` is the PAN patch edge P (a multiple of the
    ratio r). Item ``index`` is a dict of float32 tensors in the model range (``normalisation``: a
    ``Normalisation``, or the name of one computed from these scenes' pooled statistics; it is
    kept as ``self.normalisation``): ``pan`` (1, P, P), ``ms`` (B, P/r, P/r) and ``ms_up``
    (B, P, P), the interp23tap upsampling of the MS. Patches touching nodata (the store's ``nodata``
    value, or NaN) are skipped. With ``pretext="matched_scale"`` a sample covers the same
    ground on the MS grid instead: ``pan`` is the PAN reduced by the ratio (1, P/r, P/r) and
    ``ms`` and ``ms_up`` are both the MS patch itself (B, P/r, P/r), so that the branches pair
    images of one scale. ``pan_low=True`` (original scale only) adds ``pan_low`` (1, P, P): the
    PAN reduced to the MS grid (bicubic, as the Wald protocol reduces it) and brought back with
    interp23tap, i.e. the path ``ms_up`` took (the PANlp of QNR's D_s). ``augment="dihedral"``
    shows each item in one of the eight flips and quarter turns of the square, drawn from the
    item's own generator (every tensor of the item alike; the held-out patch is never turned);
    ``"none"`` leaves items as they lie, the same bits as before the option. ``hold_out=True``
    reserves one patch of the first scene (``held_out_box``) that training samples never
    overlap, for diagnostics, when the scene is large enough to spare it (at least
    ``HOLD_OUT_MIN_PATCHES`` patches a side); on smaller scenes nothing is held out
    (``held_out_box`` is None) so training sees every position.
    """

    def __init__(
        self,
        scenes: Sequence[str | Path | Scene],
        pan_patch: int,
        seed: int = 0,
        length: int = 1_000_000,
        hold_out: bool = False,
        normalisation: str | Normalisation = "percentile",
        pretext: str = "original",
        pan_low: bool = False,
        augment: str = "none",
    ) -> None:
        if pretext not in PRETEXTS:
            raise ValueError(f"pretext {pretext!r}: use one of {PRETEXTS}")
        if augment not in AUGMENTS:
            raise ValueError(f"augment {augment!r}: use one of {AUGMENTS}")
        self.augment = augment
        if pan_low and pretext != "original":
            raise ValueError("pan_low is read beside original-scale samples only")
        self.pretext = pretext
        self.pan_low = bool(pan_low)
        if not scenes:
            raise ValueError("PatchDataset needs at least one scene store")
        self.pan_patch = int(pan_patch)
        self.seed = int(seed)
        self.length = int(length)
        self._sources = list(scenes)
        self._scenes: list[Scene] | None = None
        self._arrays: list[dict[str, np.ndarray]] | None = None
        shapes = [self._describe(scene) for scene in self._open()]
        self.names = [name for name, *_ in shapes]
        ratios = {ratio for _, ratio, _, _ in shapes}
        band_counts = {bands for _, _, bands, _ in shapes}
        if len(band_counts) > 1:
            detail = ", ".join(f"{name}: {bands}" for name, _, bands, _ in shapes)
            raise ValueError(
                f"scenes of one run must have the same MS band count ({detail}); "
                "train one run per band layout"
            )
        if len(ratios) > 1:
            detail = ", ".join(f"{name}: {ratio}" for name, ratio, _, _ in shapes)
            raise ValueError(f"scenes of one run must share the PAN/MS ratio ({detail})")
        self.ratio = ratios.pop()
        self.n_bands = band_counts.pop()
        if self.pan_patch < self.ratio or self.pan_patch % self.ratio:
            raise ValueError(
                f"pan_patch must be a positive multiple of the ratio {self.ratio}, "
                f"got {self.pan_patch}"
            )
        self.ms_patch = self.pan_patch // self.ratio
        self.ms_shapes = [ms_shape for *_, ms_shape in shapes]
        for name, (height, width) in zip(self.names, self.ms_shapes, strict=True):
            if height < self.ms_patch or width < self.ms_patch:
                raise ValueError(
                    f"scene {name} (MS {height}x{width}, PAN {height * self.ratio}x"
                    f"{width * self.ratio}) is smaller than one patch of {self.pan_patch} PAN "
                    "pixels: lower pretrain.pan_patch or drop the scene"
                )
        # Draw scenes in proportion to how many patch positions they offer.
        positions = np.array(
            [(h - self.ms_patch + 1) * (w - self.ms_patch + 1) for h, w in self.ms_shapes], float
        )
        self._scene_weights = positions / positions.sum()
        if isinstance(normalisation, str):
            normalisation = scene_normalisation(self._open(), normalisation)
        if normalisation.n_bands != self.n_bands:
            raise ValueError(
                f"normalisation has {normalisation.n_bands} bands, the scenes {self.n_bands}"
            )
        self.normalisation = normalisation
        spare = min(self.ms_shapes[0]) >= HOLD_OUT_MIN_PATCHES * self.ms_patch
        self.held_out_box = self._find_held_out_box() if hold_out and spare else None

    # Scenes are reopened in each worker process rather than pickled with their dask graphs.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if any(not isinstance(source, Scene) for source in self._sources):
            state["_scenes"] = None
        state["_arrays"] = None  # each worker reads its own copy
        return state

    def _open(self) -> list[Scene]:
        if self._scenes is None:
            from crossdiff_core.io.store import open_scene

            self._scenes = [
                source if isinstance(source, Scene) else open_scene(source)
                for source in self._sources
            ]
        return self._scenes

    def _in_memory(self) -> list[dict[str, np.ndarray]]:
        """{"pan", "ms"} arrays of every scene when they fit in ``IN_MEMORY_BYTES``, else []."""
        if self._arrays is None:
            scenes = self._open()
            total = sum(scene.pan.nbytes + scene.ms.nbytes for scene in scenes)
            everything = slice(None)
            self._arrays = [
                {layer: _read_window(getattr(scene, layer), everything, everything)
                 for layer in ("pan", "ms")}
                for scene in scenes
            ] if total <= IN_MEMORY_BYTES else []
        return self._arrays

    def _window(self, scene_index: int, layer: str, rows: slice, cols: slice) -> np.ndarray:
        """Rows x cols of the scene's ``layer`` ("pan" or "ms"), from memory when held there."""
        arrays = self._in_memory()
        if arrays:
            return arrays[scene_index][layer][..., rows, cols]
        return _read_window(getattr(self._open()[scene_index], layer), rows, cols)

    @staticmethod
    def _describe(scene: Scene) -> tuple[str, int, int, tuple[int, int]]:
        ms_shape = (int(scene.ms.sizes["y"]), int(scene.ms.sizes["x"]))
        pan_shape = (int(scene.pan.sizes["y"]), int(scene.pan.sizes["x"]))
        if pan_shape != (ms_shape[0] * scene.ratio, ms_shape[1] * scene.ratio):
            raise ValueError(
                f"scene {scene.scene_id}: PAN {pan_shape} is not ratio {scene.ratio} x MS "
                f"{ms_shape}; re-ingest it so the grids nest"
            )
        return scene.scene_id, scene.ratio, int(scene.ms.sizes["band"]), ms_shape

    def __len__(self) -> int:
        return self.length

    def _overlaps_held_out(self, box: PatchBox) -> bool:
        held = self.held_out_box
        if held is None or box.scene != held.scene:
            return False
        size = self.ms_patch
        return abs(box.row - held.row) < size and abs(box.col - held.col) < size

    def _find_held_out_box(self) -> PatchBox:
        """The bottom-right-most nodata-free patch of the first scene, on a patch-size grid."""
        height, width = self.ms_shapes[0]
        size = self.ms_patch
        for row in range(height - size, -1, -size):
            for col in range(width - size, -1, -size):
                box = PatchBox(0, row, col)
                if self._read(box) is not None:
                    return box
        raise ValueError(f"scene {self.names[0]} has no patch free of nodata to hold aside")

    def _read(self, box: PatchBox) -> dict[str, torch.Tensor] | None:
        """The sample at ``box``, or None when it touches nodata."""
        from crossdiff_core.degrade import interp23tap
        from crossdiff_core.train.low_scale import low_scale_twin

        if self.pretext == "matched_scale":
            return self._read_matched(box)
        scene = self._open()[box.scene]
        ratio, size = self.ratio, self.ms_patch
        pan_rows = slice(box.row * ratio, (box.row + size) * ratio)
        pan_cols = slice(box.col * ratio, (box.col + size) * ratio)
        pan = self._window(box.scene, "pan", pan_rows, pan_cols).astype(np.float64)
        height, width = self.ms_shapes[box.scene]
        top, left = max(box.row - UPSAMPLE_MARGIN, 0), max(box.col - UPSAMPLE_MARGIN, 0)
        bottom = min(box.row + size + UPSAMPLE_MARGIN, height)
        right = min(box.col + size + UPSAMPLE_MARGIN, width)
        ms_window = self._window(box.scene, "ms", slice(top, bottom), slice(left, right))
        ms_window = ms_window.astype(np.float64)
        row0, col0 = box.row - top, box.col - left
        ms = ms_window[:, row0 : row0 + size, col0 : col0 + size]
        nodata = scene.attrs.get("nodata")
        for image in (pan, ms):
            if not np.all(np.isfinite(image)) or (nodata is not None and np.any(image == nodata)):
                return None
        # At scene edges, mirror the window so the upsampling sees a full margin on every side.
        pad = (
            (0, 0),
            (UPSAMPLE_MARGIN - row0, UPSAMPLE_MARGIN - (ms_window.shape[1] - row0 - size)),
            (UPSAMPLE_MARGIN - col0, UPSAMPLE_MARGIN - (ms_window.shape[2] - col0 - size)),
        )
        ms_window = np.pad(ms_window, pad, mode="symmetric")
        offset = UPSAMPLE_MARGIN * ratio
        ms_up = interp23tap(ms_window, ratio)[
            :, offset : offset + size * ratio, offset : offset + size * ratio
        ]
        norm = self.normalisation
        sample = {
            "pan": torch.from_numpy(norm.pan_to_model(pan)[None].astype(np.float32)),
            "ms": torch.from_numpy(norm.ms_to_model(ms).astype(np.float32)),
            "ms_up": torch.from_numpy(norm.ms_to_model(ms_up).astype(np.float32)),
        }
        if self.pan_low:
            pan_window = self._window(box.scene, "pan", slice(top * ratio, bottom * ratio),
                                      slice(left * ratio, right * ratio)).astype(np.float64)
            pan_window = np.pad(pan_window, [(ratio * a, ratio * b) for a, b in pad[1:]],
                                mode="symmetric")
            pan_low = low_scale_twin(pan_window, ratio, scene.sensor, "reduced")[
                offset : offset + size * ratio, offset : offset + size * ratio
            ]
            sample["pan_low"] = torch.from_numpy(
                norm.pan_to_model(pan_low)[None].astype(np.float32)
            )
        return sample

    def _read_matched(self, box: PatchBox) -> dict[str, torch.Tensor] | None:
        """The matched-scale sample at ``box``: the MS patch and the PAN reduced to its grid."""
        from crossdiff_core.degrade import imresize_bicubic

        scene = self._open()[box.scene]
        ratio, size, margin = self.ratio, self.ms_patch, REDUCE_MARGIN
        height, width = self.ms_shapes[box.scene]
        ms = self._window(box.scene, "ms", slice(box.row, box.row + size),
                          slice(box.col, box.col + size)).astype(np.float64)
        top, left = max(box.row - margin, 0), max(box.col - margin, 0)
        bottom, right = min(box.row + size + margin, height), min(box.col + size + margin, width)
        pan = self._window(box.scene, "pan", slice(top * ratio, bottom * ratio),
                           slice(left * ratio, right * ratio)).astype(np.float64)
        nodata = scene.attrs.get("nodata")
        for image in (pan, ms):
            if not np.all(np.isfinite(image)) or (nodata is not None and np.any(image == nodata)):
                return None
        # Mirror the PAN window at scene edges so the reduction sees a full margin everywhere.
        pad = ((ratio * (margin - box.row + top), ratio * (margin - bottom + box.row + size)),
               (ratio * (margin - box.col + left), ratio * (margin - right + box.col + size)))
        pan_low = imresize_bicubic(np.pad(pan, pad, mode="symmetric"), 1.0 / ratio)
        pan_low = pan_low[margin : margin + size, margin : margin + size]
        norm = self.normalisation
        ms_model = torch.from_numpy(norm.ms_to_model(ms).astype(np.float32))
        return {
            "pan": torch.from_numpy(norm.pan_to_model(pan_low)[None].astype(np.float32)),
            "ms": ms_model,
            "ms_up": ms_model,
        }

    def box_for(self, index: int) -> tuple[PatchBox, dict[str, torch.Tensor]]:
        """The position and sample of item ``index`` (draws until a nodata-free patch turns up)."""
        rng = np.random.default_rng([self.seed, int(index)])
        for _ in range(MAX_DRAWS):
            scene = int(rng.choice(len(self.ms_shapes), p=self._scene_weights))
            height, width = self.ms_shapes[scene]
            box = PatchBox(
                scene,
                int(rng.integers(0, height - self.ms_patch + 1)),
                int(rng.integers(0, width - self.ms_patch + 1)),
            )
            if self._overlaps_held_out(box):
                continue
            sample = self._read(box)
            if sample is not None:
                if self.augment == "dihedral":
                    sample = _dihedral(sample, int(rng.integers(0, 8)))
                return box, sample
        raise ValueError(
            f"no patch free of nodata found in {MAX_DRAWS} draws (seed {self.seed}, index {index}) "
            f"in scenes {self.names}: the scenes are mostly nodata; lower pretrain.pan_patch"
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} outside [0, {self.length})")
        return self.box_for(index)[1]

    def held_out_sample(self) -> dict[str, torch.Tensor]:
        """The held-aside patch (same layout as an item); on a scene too small to spare one (or
        without ``hold_out``), the first training item, which diagnostics then report as seen."""
        if self.held_out_box is None:
            return self[0]
        sample = self._read(self.held_out_box)
        assert sample is not None  # chosen nodata-free in _find_held_out_box
        return sample


def _dihedral(sample: dict[str, torch.Tensor], which: int) -> dict[str, torch.Tensor]:
    """Every (C, H, W) tensor of ``sample`` in orientation ``which`` (0-7): ``which % 4`` quarter
    turns, then a left-right flip when ``which >= 4``; 0 is the identity."""
    turned = {}
    for key, image in sample.items():
        image = torch.rot90(image, which % 4, dims=(-2, -1))
        if which >= 4:
            image = torch.flip(image, dims=(-1,))
        turned[key] = image.contiguous()
    return turned


def branch_inputs(
    branch: str, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, condition) of a branch: P2M diffuses ms_up given pan, M2P diffuses pan given ms_up."""
    if branch == "p2m":
        return batch["ms_up"], batch["pan"]
    return batch["pan"], batch["ms_up"]


def patch_batch(dataset: PatchDataset, start: int, size: int) -> dict[str, torch.Tensor]:
    """Items ``start`` .. ``start + size - 1`` of ``dataset`` stacked into one batch."""
    samples = [dataset[index] for index in range(start, start + size)]
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}


def calibration_batches(
    dataset: PatchDataset, count: int, batch_size: int = 8
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(ms_up, pan) batches for ``FrozenExtractor.calibrate``: the dataset's last items, which
    training (the first ``steps * batch_size`` items) never reaches."""
    first_index = len(dataset) - count
    batches = []
    for start in range(0, count, batch_size):
        batch = patch_batch(dataset, first_index + start, min(batch_size, count - start))
        batches.append((batch["ms_up"], batch["pan"]))
    return batches
