"""Training patches: layout, determinism, workers, nodata, upsampling margin, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from torch.utils.data import DataLoader

from crossdiff_core.degrade import interp23tap
from crossdiff_core.scaling import to_model_range
from crossdiff_core.scene import Scene
from crossdiff_core.sensors import get_sensor
from crossdiff_core.synthetic import synthetic_pair, write_synthetic_store
from crossdiff_core.train.patches import PatchDataset


def _scene(sensor: str = "Landsat-8", ms_shape=(24, 24), seed: int = 0, nodata=None) -> Scene:
    pan, ms = synthetic_pair(sensor, ms_shape, seed)
    info = get_sensor(sensor)
    attrs = {
        "sensor": info.name,
        "ratio": info.ratio,
        "scale_max": float(info.max_dn),
        "scene_id": f"{sensor}-{seed}",
        "nodata": nodata,
    }
    return Scene(
        pan=xr.DataArray(pan, dims=("y", "x")),
        ms=xr.DataArray(ms, dims=("band", "y", "x"), coords={"band": list(info.bands)}),
        attrs=attrs,
    )


def test_sample_layout_and_scaling():
    scene = _scene()
    dataset = PatchDataset([scene], pan_patch=16, seed=3, normalisation="bit_depth")
    box, sample = dataset.box_for(5)
    assert sample["pan"].shape == (1, 16, 16) and sample["pan"].dtype == torch.float32
    assert sample["ms"].shape == (4, 8, 8)
    assert sample["ms_up"].shape == (4, 16, 16)
    expected_pan = to_model_range(
        scene.pan.values[box.row * 2 : box.row * 2 + 16, box.col * 2 : box.col * 2 + 16], 65535.0
    )
    np.testing.assert_allclose(sample["pan"][0].numpy(), expected_pan, atol=1e-6)


def test_low_scale_pan_matches_the_whole_scene_reduction_away_from_borders():
    """pan_low=True reads, beside each patch, the PAN reduced to the MS grid (bicubic) and brought
    back by interp23tap: what the same steps give on the whole scene, away from its borders."""
    from crossdiff_core.degrade import imresize_bicubic

    scene = _scene(ms_shape=(48, 48), seed=2)
    dataset = PatchDataset([scene], pan_patch=16, seed=0, normalisation="bit_depth",
                           pan_low=True)
    pan = scene.pan.values.astype(np.float64)
    whole = to_model_range(interp23tap(imresize_bicubic(pan, 0.5)[None], 2)[0], 65535.0)
    checked = 0
    for index in range(30):
        box, sample = dataset.box_for(index)
        assert sample["pan_low"].shape == (1, 16, 16)
        if min(box.row, box.col) >= 12 and max(box.row, box.col) + 8 <= 48 - 12:
            crop = whole[box.row * 2 : box.row * 2 + 16, box.col * 2 : box.col * 2 + 16]
            np.testing.assert_allclose(sample["pan_low"][0].numpy(), crop, atol=1e-5)
            checked += 1
    assert checked >= 3
    # The twin is smoother than the PAN itself but follows it.
    low, full = sample["pan_low"][0].numpy(), sample["pan"][0].numpy()
    assert np.abs(np.diff(low, axis=1)).mean() < np.abs(np.diff(full, axis=1)).mean()
    assert "pan_low" not in PatchDataset([scene], pan_patch=16)[0]
    with pytest.raises(ValueError, match="pan_low is read beside original-scale samples only"):
        PatchDataset([scene], pan_patch=16, pretext="matched_scale", pan_low=True)


def test_upsampled_patch_matches_whole_scene_upsampling_away_from_borders():
    scene = _scene(ms_shape=(48, 48), seed=1)
    dataset = PatchDataset([scene], pan_patch=16, seed=0, normalisation="bit_depth")
    whole = to_model_range(interp23tap(scene.ms.values.astype(np.float64), 2), 65535.0)
    checked = 0
    for index in range(30):
        box, sample = dataset.box_for(index)
        # Whole-scene interp23tap wraps around circularly near the scene's own borders.
        if min(box.row, box.col) >= 12 and max(box.row, box.col) + 8 <= 48 - 12:
            crop = whole[:, box.row * 2 : box.row * 2 + 16, box.col * 2 : box.col * 2 + 16]
            np.testing.assert_allclose(sample["ms_up"].numpy(), crop, atol=1e-5)
            checked += 1
    assert checked >= 3


def test_deterministic_given_seed_and_index_with_workers(tmp_path):
    store = write_synthetic_store(tmp_path, "Landsat-8", ms_shape=(24, 32), seed=2)
    dataset = PatchDataset([store], pan_patch=16, seed=7, length=8)
    again = PatchDataset([store], pan_patch=16, seed=7, length=8)
    other = PatchDataset([store], pan_patch=16, seed=8, length=8)
    for key in ("pan", "ms", "ms_up"):
        assert torch.equal(dataset[3][key], again[3][key])
    assert not torch.equal(dataset[3]["pan"], other[3]["pan"])
    serial = next(iter(DataLoader(dataset, batch_size=8, num_workers=0)))
    parallel = next(iter(DataLoader(dataset, batch_size=8, num_workers=2)))
    for key in ("pan", "ms", "ms_up"):
        assert torch.equal(serial[key], parallel[key])


def test_nodata_patches_are_skipped_and_held_out_tile_is_never_sampled():
    scene = _scene(ms_shape=(32, 32), seed=4, nodata=0)
    scene.pan.values[:32, :] = 0  # top quarter of the PAN is nodata
    dataset = PatchDataset([scene], pan_patch=16, seed=0, hold_out=True, normalisation="bit_depth")
    held = dataset.held_out_box
    assert held is not None
    for index in range(40):
        box, sample = dataset.box_for(index)
        assert box.row * 2 >= 32
        assert not (abs(box.row - held.row) < 8 and abs(box.col - held.col) < 8)
        assert sample["pan"].min() > -1.0  # DN 0 (nodata) would map to -1
    assert dataset.held_out_sample()["pan"].shape == (1, 16, 16)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="smaller than one patch of 64 PAN pixels"):
        PatchDataset([_scene(ms_shape=(16, 40))], pan_patch=64)
    with pytest.raises(ValueError, match="same MS band count"):
        PatchDataset([_scene("QuickBird", (16, 16)), _scene("WorldView-3", (16, 16))], pan_patch=16)
    with pytest.raises(ValueError, match="multiple of the ratio 2"):
        PatchDataset([_scene()], pan_patch=15)
    empty = _scene(ms_shape=(16, 16), nodata=0)
    empty.pan.values[:] = 0
    with pytest.raises(ValueError, match="every pixel is nodata"):
        PatchDataset([empty], pan_patch=16)
    with pytest.raises(ValueError, match="no patch free of nodata"):
        PatchDataset([empty], pan_patch=16, normalisation="bit_depth")[0]


def test_percentile_normalisation_maps_each_band_to_its_own_range():
    scene = _scene(ms_shape=(32, 32), seed=5)
    scene.ms.values[1] = scene.ms.values[1] // 16  # one band in a sixteenth of the DN range
    dataset = PatchDataset([scene], pan_patch=16, seed=0)
    norm = dataset.normalisation
    assert norm.kind == "percentile"
    for band in range(4):
        low, high = np.percentile(scene.ms.values[band], [1, 99])
        assert norm.ms_low[band] == pytest.approx(low) and norm.ms_high[band] == pytest.approx(high)
    samples = np.concatenate([dataset[i]["ms"].numpy().reshape(4, -1) for i in range(40)], axis=1)
    spread = np.percentile(samples, 99, axis=1) - np.percentile(samples, 1, axis=1)
    # Every band spans about [-1, 1], the dim band as much as the others.
    assert np.all(spread > 1.0) and np.all(spread < 2.5)
    reused = PatchDataset([scene], pan_patch=16, seed=0, normalisation=norm)
    assert torch.equal(reused[3]["ms_up"], dataset[3]["ms_up"])


def test_small_scene_holds_nothing_out():
    # MS 24 px with 8-px patches: a held-out patch would bar most positions, so none is kept.
    dataset = PatchDataset([_scene(ms_shape=(24, 24))], pan_patch=16, seed=0, hold_out=True)
    assert dataset.held_out_box is None
    rows = {dataset.box_for(i)[0].row for i in range(200)}
    assert len(rows) == 17  # every row position 0..16 is drawn
    assert dataset.held_out_sample()["pan"].shape == (1, 16, 16)


def test_in_memory_scenes_give_the_same_samples_as_lazy_reads(tmp_path, monkeypatch):
    from crossdiff_core.train import patches

    store = write_synthetic_store(tmp_path / "scene.zarr", "Landsat-8", (40, 40), seed=2)
    held = PatchDataset([store], pan_patch=16, seed=4)
    assert held._in_memory(), "a small scene is held in memory"
    monkeypatch.setattr(patches, "IN_MEMORY_BYTES", 0)
    lazy = PatchDataset([store], pan_patch=16, seed=4)
    assert lazy._in_memory() == []
    for index in range(6):
        for key, value in held[index].items():
            assert torch.equal(value, lazy[index][key]), (index, key)


def test_matched_scale_pairs_the_ms_with_the_pan_reduced_to_its_grid():
    from crossdiff_core.degrade import imresize_bicubic

    scene = _scene(ms_shape=(48, 48), seed=5)
    original = PatchDataset([scene], pan_patch=32, seed=2, normalisation="bit_depth")
    matched = PatchDataset([scene], pan_patch=32, seed=2, normalisation="bit_depth",
                           pretext="matched_scale")
    reduced = to_model_range(imresize_bicubic(scene.pan.values.astype(np.float64), 0.5), 65535.0)
    interior = 0
    for index in range(40):
        box, sample = matched.box_for(index)
        # Same ground as the original-scale sample of that index, now on the MS grid.
        assert original.box_for(index)[0] == box
        assert sample["pan"].shape == (1, 16, 16) and sample["ms_up"].shape == (4, 16, 16)
        ms = to_model_range(
            scene.ms.values[:, box.row : box.row + 16, box.col : box.col + 16], 65535.0
        )
        np.testing.assert_allclose(sample["ms_up"].numpy(), ms, atol=1e-6)
        assert torch.equal(sample["ms"], sample["ms_up"])
        # Away from the scene's borders the PAN is the whole scene's bicubic reduction.
        if min(box.row, box.col) >= 3 and max(box.row, box.col) + 16 <= 48 - 3:
            crop = reduced[box.row : box.row + 16, box.col : box.col + 16]
            np.testing.assert_allclose(sample["pan"][0].numpy(), crop, atol=1e-5)
            interior += 1
    assert interior >= 3


def test_matched_scale_mirrors_the_pan_at_scene_edges_and_refuses_unknown_pretexts():
    scene = _scene(ms_shape=(16, 16), seed=6)
    dataset = PatchDataset([scene], pan_patch=32, seed=0, pretext="matched_scale")
    sample = dataset[0]  # the only position: every side touches a scene edge
    assert sample["pan"].shape == (1, 16, 16) and torch.isfinite(sample["pan"]).all()
    with pytest.raises(ValueError, match="pretext 'wald'"):
        PatchDataset([scene], pan_patch=32, pretext="wald")
