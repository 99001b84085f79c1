"""The differentiable loss terms of the adaptation (crossdiff_core/train/losses.py) against the
numpy reference implementations of degrade.py and metrics.py, on DN-scaled float64 tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdiff_core import degrade, metrics
from crossdiff_core.synthetic import synthetic_pair
from crossdiff_core.train import losses


@pytest.fixture(scope="module")
def scene():
    pan, ms = synthetic_pair("QuickBird", ms_shape=(32, 32), seed=5)
    ms = ms.astype(np.float64)
    pan = pan.astype(np.float64)
    fused = degrade.interp23tap(ms, 4) + 0.3 * (pan - pan.mean())[None]
    return ms, pan, fused


def as_tensor(array: np.ndarray) -> torch.Tensor:
    array = array if array.ndim == 3 else array[None]
    return torch.from_numpy(np.ascontiguousarray(array))[None]


def test_mtf_blur_and_decimation_equal_the_wald_degradation(scene):
    _, _, fused = scene
    kernels = degrade.mtf_kernels("QB", 4)
    blurred = losses.mtf_blur(as_tensor(fused), torch.from_numpy(kernels))[0].numpy()
    np.testing.assert_allclose(blurred, degrade.mtf_filter(fused, "QB", 4), rtol=0, atol=1e-8)
    offset = losses.decimation_offset(4)
    np.testing.assert_array_equal(blurred[:, offset::4, offset::4], degrade.decimate(blurred, 4))


def test_differentiable_d_s_equals_the_toolbox_d_s(scene):
    ms, pan, fused = scene
    ms_up = degrade.interp23tap(ms, 4)
    pan_low = degrade.interp23tap(degrade.imresize_bicubic(pan, 0.25)[None], 4)[0]
    # The loss shifts its inputs by +1 (networks' range); undo that to compare in DN.
    value = losses.differentiable_d_s(as_tensor(fused - 1), as_tensor(pan - 1),
                                      as_tensor(ms_up - 1), as_tensor(pan_low - 1), 32)
    expected = metrics.qnr(fused, ms, pan, 4)["d_s"]
    assert value.item() == pytest.approx(expected, abs=1e-9)

