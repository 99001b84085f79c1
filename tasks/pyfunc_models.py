"""The registry's pyfunc model, logged as a *model from code*: MLflow runs this file to build the
model, when logging it and when loading it, so a fresh process loading
``models:/crossdiff-pansharpener@champion`` needs only this file (saved in the model), the
``crossdiff_core`` package (saved beside it as a code path) and the model's artifacts. It imports
mlflow and numpy at the top, the core (torch) when the model loads, and nothing of prefect, tasks
or flows.

One class serves both registered kinds; the artifact the model was logged with says which:

- ``pansharpener`` (``crossdiff-pansharpener``): ``predict({"pan": (H, W), "ms": (B, h, w)})`` in
  DN, float32 -> fused (B, H, W) float32 in DN, any H, W (h = H / ratio);
- ``extractor`` (``crossdiff-encoders-<sensor>``, the frozen P2M + M2P encoders):
  ``predict({"ms_up": (N, B, H, W), "pan": (N, 1, H, W)})`` in model range, float32 ->
  ``{"p2m_level0": ..., "m2p_level0": ..., ...}``, the multi-scale feature maps.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import set_model


class CrossDiffModel(mlflow.pyfunc.PythonModel):
    """A registered pansharpener or frozen encoders (see the module's docstring)."""

    # MLflow's type-hint validation describes list[...] inputs only; the input here is a dict of
    # named arrays, which the TensorSpec signature logged with the model describes and enforces.
    # Without this MLflow warns for the missing hints each time the model is built or loaded.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        if "pansharpener" in context.artifacts:
            from crossdiff_core.pansharpener import load_pansharpener

            self.pansharpener = load_pansharpener(Path(context.artifacts["pansharpener"]))
            self.extractor = None
        else:
            from crossdiff_core.nets.extractor import load_extractor

            self.pansharpener = None
            self.extractor = load_extractor(Path(context.artifacts["extractor"]))

    def predict(self, context, model_input, params=None):
        if self.pansharpener is not None:
            return self.pansharpener.fuse(np.asarray(model_input["ms"]),
                                          np.asarray(model_input["pan"]))
        return encoder_features(self.extractor, model_input)


def encoder_features(extractor, model_input) -> dict[str, np.ndarray]:
    """The frozen encoders' feature maps (one name per branch and level) of ``model_input``
    ({"ms_up", "pan"}, model range)."""
    import torch

    ms_up = torch.as_tensor(np.asarray(model_input["ms_up"]), dtype=torch.float32)
    pan = torch.as_tensor(np.asarray(model_input["pan"]), dtype=torch.float32)
    with torch.no_grad():
        levels = extractor.features(ms_up, pan)
    return {f"{branch}_level{i}": maps.numpy()
            for i, pair in enumerate(levels)
            for branch, maps in zip(("p2m", "m2p"), pair, strict=True)}


set_model(CrossDiffModel())
