"""CrossDiff core library: the science of the pipeline (no orchestration imports).

The calls most users need are here at top level (``crossdiff_core.api``)::

    import crossdiff_core as cd

    scene = cd.open_scene("data/zarr/Landsat-8/LC80200392015216LGN00.zarr")
    fused = cd.pansharpen(scene, "mtf_glp_hpm")           # xarray.DataArray on the PAN grid
    cd.pansharpen(scene, "data/models/head", out="fused.tif")   # a Cloud-Optimized GeoTIFF
    scores = cd.evaluate(scene, ["mtf_glp_hpm", "data/models/head"])
    model = cd.load_model("data/models/head")             # torch module, model.fuse(ms, pan)

They are imported on first use, so ``import crossdiff_core`` stays light.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crossdiff")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "evaluate", "load_model", "open_scene", "pansharpen"]

_API = ("evaluate", "load_model", "open_scene", "pansharpen")


def __getattr__(name: str):
    if name in _API:
        from crossdiff_core import api

        return getattr(api, name)
    raise AttributeError(f"module 'crossdiff_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
