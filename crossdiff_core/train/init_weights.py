"""Starting a pretraining run from the weights of an earlier one (``pretrain.init``).

``pretrain.init: shipped`` (the default) starts from the encoders that ship with the project
for the scenes' sensor and pretext (``SHIPPED_DIR``). It trains from scratch instead, and says
why, for a sensor none ship for, for a network layout or band set the shipped ones do not fit,
and for a scene the shipped ones were pretrained on (``shipped_sources``: starting there would let
the reduced-resolution check see the reference it must not see). ``scratch`` trains from a fresh
initialisation. Any other value is a folder that
holds ``p2m/`` and ``m2p/`` as a pretraining run writes them (``crossdiff pretrain``: config.json
and weights.pt each), for example encoders pretrained at paper scale on a GPU on a corpus of
scenes: each branch then starts from that folder's weights of the same branch and trains
``pretrain.finetune_steps`` more steps on ``pretrain.scenes`` (``pretrain.steps`` when that is
null; 0 keeps the weights as they are; a fresh optimiser; the learning-rate settings are the
run's own). A run that falls back to scratch trains ``pretrain.steps``.

Weights are only taken from a run with the same band set (band count and band names), PAN/MS
ratio, UNet widths and noise schedule: anything else is refused with an error that names the
file and the way out. The weights' sha256 enters the run's checkpoint fingerprint, so a resumed
run never mixes two starting points, and the saved UNet records where it started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from crossdiff_core.io.integrity import file_sha256
from crossdiff_core.nets.serialization import CONFIG_FILE, WEIGHTS_FILE, load_weights
from crossdiff_core.nets.unet import read_unet_config
from crossdiff_core.train.config import SCRATCH, SHIPPED

# Encoders pretrained by benchmarks/ship_encoders.py, one folder per sensor and pretext:
# <sensor as the scene stores name it>/<pretext>/{p2m,m2p}/ and record.json (how they were made).
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "shipped_encoders"
RECORD_FILE = "record.json"


class InitMismatchError(ValueError):
    """The ``pretrain.init`` weights were made for other data or another network layout."""

    def __init__(self, message: str, mismatch: str) -> None:
        super().__init__(message)
        self.mismatch = mismatch  # the difference alone, e.g. "PAN/MS ratio 4, this run 2"


@dataclass(frozen=True)
class InitWeights:
    """One branch's starting weights and where they came from."""

    state: dict[str, torch.Tensor]
    folder: Path
    weights_sha256: str
    record: dict  # the source UNet's ``extra``: sensor, ratio, band names, steps, normalisation

    def provenance(self) -> dict:
        """What the saved UNet records of its starting point (no local path, so that the same
        start gives the same bytes wherever it lies)."""
        return {
            "weights_sha256": self.weights_sha256,
            "sensor": self.record.get("sensor"),
            "steps": self.record.get("steps"),
            "started_from": self.record.get("init"),
        }


def shipped_encoders(sensor: str, pretext: str) -> Path | None:
    """The folder of the encoders shipped for ``sensor`` (``Scene.attrs["sensor"]``, e.g.
    ``IKONOS``, ``Landsat-8``) and ``pretext``, or None where none ship."""
    folder = SHIPPED_DIR / sensor / pretext
    return folder if (folder / "p2m").is_dir() and (folder / "m2p").is_dir() else None


def shipped_sensors() -> list[str]:
    """``sensor/pretext`` of every shipped pair of encoders."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(f"{folder.parent.name}/{folder.name}" for folder in SHIPPED_DIR.glob("*/*")
                  if shipped_encoders(folder.parent.name, folder.name) is not None)


def shipped_sources(folder: Path) -> dict[str, str]:
    """``source_sha256 -> source name`` of the scenes the encoders in ``folder`` were pretrained
    on (record.json's ``sources``; the ``source_sha256`` that ingestion gives a scene store)."""
    record = folder / RECORD_FILE
    if not record.is_file():
        return {}
    sources = json.loads(record.read_text()).get("sources") or []
    return {source["source_sha256"]: source["name"] for source in sources}


def _refuse(path: Path, what: str, theirs, ours) -> InitMismatchError:
    return InitMismatchError(
        f"pretrain.init: {path} was pretrained with {what} {theirs!r}, this run needs {ours!r}. "
        "Point pretrain.init at encoders pretrained on data of this sensor layout, or set "
        "pretrain.init: scratch to train from a fresh initialisation",
        mismatch=f"{what} {theirs!r}, this run {ours!r}",
    )


def load_init_weights(
    init: str | Path,
    branch: str,
    *,
    unet_config: dict,
    n_bands: int,
    band_names: list[str],
    ratio: int,
    schedule: str,
    timesteps: int,
) -> InitWeights:
    """The ``branch`` weights of the pretraining folder ``init``, checked against this run: the
    same UNet layout (``unet_config``: in/condition channels, widths), band count and names, ratio
    and noise schedule. Raises FileNotFoundError for a missing folder and InitMismatchError
    (a ValueError) for weights of other data or another layout, naming the file."""
    folder = Path(init) / branch
    if not (folder / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"pretrain.init: {folder / CONFIG_FILE} not found. pretrain.init takes '{SCRATCH}', "
            f"'{SHIPPED}' or a folder holding p2m/ and m2p/ as `crossdiff pretrain` writes them "
            "(its pretrain.out)"
        )
    document = read_unet_config(folder)
    record = document.get("extra") or {}
    config_path = folder / CONFIG_FILE
    if record.get("branch") not in (None, branch):
        raise _refuse(config_path, "branch", record.get("branch"), branch)
    checks = (
        ("MS bands", len(record.get("band_names") or []), n_bands),
        ("band names", list(record.get("band_names") or []), list(band_names)),
        ("PAN/MS ratio", record.get("ratio"), ratio),
        ("noise schedule", record.get("schedule"), schedule),
        ("diffusion steps T", record.get("timesteps"), timesteps),
    )
    for what, theirs, ours in checks:
        if theirs != ours:
            raise _refuse(config_path, what, theirs, ours)
    saved = document.get("config") or {}
    for key in ("in_channels", "cond_channels", "channels", "time_embed_dim"):
        if saved.get(key) != unet_config.get(key):
            what = "UNet widths (pretrain.channels)" if key == "channels" else f"UNet {key}"
            raise _refuse(config_path, what, saved.get(key), unet_config.get(key))
    state = load_weights(folder, "unet")
    return InitWeights(state, folder, file_sha256(folder / WEIGHTS_FILE), dict(record))
