"""Whole-scene pansharpening with bounded memory and no seams.

- ``tiling``: a model window by window (overlapping windows on a fixed grid, blended), rows out
  top to bottom (``iter_fused_rows``, ``fuse_tiled``);
- ``fusers``: what is run, a saved pansharpener on a device (``ModelFuser``) or a classical
  method on the whole scene (``BaselineFuser``); ``load_fuser`` picks one from a folder or a name;
- ``writers``: the outputs, a Cloud-Optimized GeoTIFF or a Zarr store in the MS's DN dtype;
- ``whole_scene``: ``pansharpen_scene``, a scene into one of those outputs, atomically.
"""

from crossdiff_core.infer.fusers import BaselineFuser, ModelFuser, baseline_fuser, load_fuser
from crossdiff_core.infer.tiling import (
    MIN_MS_SIZE,
    AxisLayout,
    WindowFuser,
    check_scene_fits,
    fuse_tiled,
    iter_fused_rows,
    plan_layout,
)
from crossdiff_core.infer.whole_scene import pansharpen_scene
from crossdiff_core.infer.writers import FORMATS, check_output, to_output_dtype

__all__ = [
    "FORMATS",
    "MIN_MS_SIZE",
    "AxisLayout",
    "BaselineFuser",
    "ModelFuser",
    "WindowFuser",
    "baseline_fuser",
    "check_output",
    "check_scene_fits",
    "fuse_tiled",
    "iter_fused_rows",
    "load_fuser",
    "pansharpen_scene",
    "plan_layout",
    "to_output_dtype",
]
