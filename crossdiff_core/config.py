"""One typed config per params.yaml section: the only place the pipeline's defaults live.

``flows/params.py`` reads params.yaml into these dataclasses (unknown keys refused, naming the key
and the section; values type-checked; command-line options applied as overrides). Stages, tasks,
the ``crossdiff`` commands and the scheduled deployments all take these objects. The defaults
equal params.yaml's values (tests/test_params.py holds them to it).

    section        config              built on
    ingest         IngestParams
    pretrain       PretrainParams      train.config.PretrainSettings (+ per-branch overrides)
    freeze         FreezeParams
    adapt          AdaptParams         train.config.AdaptConfig (+ scenes, out, encoders)
    reduced        ReducedParams       (the evaluation's reduced-resolution chain)
    ablation       AblationParams      (the evaluation's random-encoder heads)
    evaluate       EvaluateParams
    report         ReportParams
    tracking       TrackingParams
    pansharpen     PansharpenParams
    cross_sensor   CrossSensorParams   (+ overrides of the pretrain, freeze and adapt sections)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from crossdiff_core.train.config import (
    BRANCHES,
    AdaptConfig,
    PretrainConfig,
    PretrainSettings,
)

FORMATS = ("cog", "zarr")
CLIP_POLICIES = ("dtype", "input", "none")


class ConfigError(ValueError):
    """A params.yaml section (or a command-line override) that cannot be used as written."""


def field_names(config: type) -> list[str]:
    """The keys a section config accepts, in declaration order."""
    return [f.name for f in fields(config) if f.init]


def check_keys(values: Iterable[str], config: type, section: str) -> None:
    """Refuse keys that ``config`` does not have, naming each key and the section."""
    known = field_names(config)
    unknown = [key for key in values if key not in known]
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {names} in section '{section}' "
            f"(known keys: {', '.join(known)})"
        )


@dataclass
class IngestParams:
    """Archives and rasters into scene stores (``python -m flows.ingest``): every ``sources``
    entry, then every complete entry of the ``landed`` folder (where the landing flow moves what
    arrives in the landing zone; null = none)."""

    sources: list[str | list[str]] = field(
        default_factory=lambda: ["data/raw/LC80200392015216LGN00.tar.gz"]
    )
    landed: str | None = "data/landed"
    out: str = "data/zarr"
    sensor: str | None = None
    chunk_size: int = 1024
    scheduler: str = "threads"

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ConfigError(f"ingest.chunk_size must be >= 1, got {self.chunk_size}")


@dataclass
class PretrainParams(PretrainSettings):
    """The ``pretrain`` section: settings shared by both branches, and per-branch overrides of any
    of them (``p2m: {steps: 600}``)."""

    p2m: dict[str, Any] = field(default_factory=dict)
    m2p: dict[str, Any] = field(default_factory=dict)

    # Dict-valued keys that hold overrides of other keys: a command-line option wins over them.
    PER_BRANCH: ClassVar[tuple[str, ...]] = BRANCHES

    def __post_init__(self) -> None:
        super().__post_init__()
        for branch in BRANCHES:
            check_keys(getattr(self, branch) or {}, PretrainSettings, f"pretrain.{branch}")
            self.branch_config(branch)  # every merged value valid before anything starts

    def shared(self) -> dict[str, Any]:
        values = asdict(self)
        for branch in BRANCHES:
            values.pop(branch)
        return values

    def branch_config(self, branch: str) -> PretrainConfig:
        """The run config of one branch: the shared settings, then the branch's overrides."""
        return PretrainConfig(**{**self.shared(), **(getattr(self, branch) or {})}, branch=branch)

    def branch_configs(self, branches: Iterable[str] = BRANCHES) -> list[PretrainConfig]:
        return [self.branch_config(branch) for branch in branches]


@dataclass
class FreezeParams:
    """Both pretrained UNets into one frozen feature extractor (``python -m flows.freeze``); the
    calibration patches are ``pretrain.pan_patch`` pixels of ``pretrain.scenes``."""

    t_feature: int = 50
    noise_free: bool = True
    decoder_features: bool = True
    standardise_features: bool = True
    calibration_patches: int = 32
    seed: int = 0
    out: str = "data/models/encoders"

    def __post_init__(self) -> None:
        if self.t_feature < 0 or self.calibration_patches < 1:
            raise ConfigError("freeze.t_feature must be >= 0 and calibration_patches >= 1")


@dataclass
class AdaptParams(AdaptConfig):
    """The ``adapt`` section: the head's run config plus its scenes, output and encoders
    (``encoders: null`` means ``freeze.out``)."""

    scenes: list[str] = field(default_factory=lambda: ["data/zarr"])
    out: str = "data/models/head"
    encoders: str | None = None


@dataclass
class ReducedParams:
    """The evaluation's reduced-resolution chain (``python -m flows.reduced``, then
    ``python -m flows.reduced_adapt``): Wald-degraded copies of the evaluation crops
    (``evaluate.scenes``, ``evaluate.max_pan_size``), pretrained, frozen and adapted with the
    pretrain, freeze and adapt settings on the degraded pair only (the original MS, the reference
    of the reduced-resolution scores, is never seen)."""

    out: str = "data/models/reduced"

    @property
    def scenes_dir(self) -> str:
        """The crops and their Wald pairs (``full/`` and ``reduced/`` folders of stores)."""
        return f"{self.out}/scenes"

    @property
    def wald_scenes(self) -> str:
        """The folder of the Wald-degraded stores the chain trains on."""
        return f"{self.scenes_dir}/reduced"

    @property
    def pretrain_dir(self) -> str:
        return f"{self.out}/pretrain"

    @property
    def encoders_dir(self) -> str:
        return f"{self.out}/encoders"

    @property
    def head_dir(self) -> str:
        return f"{self.out}/head"


@dataclass
class AblationParams:
    """The random-encoder ablation (``python -m flows.ablation``): the adapt settings' head on
    random frozen twins of the encoders CrossDiff uses, at full resolution (``<out>/full``: the
    evaluation scenes, twins of the adapted encoders) and at reduced resolution
    (``<out>/reduced``: the Wald copies, twins of the reduced chain's encoders)."""

    out: str = "data/models/ablation"

    def head_dir(self, resolution: str) -> str:
        """The ablation head for ``full`` or ``reduced`` resolution."""
        return f"{self.out}/{resolution}"


@dataclass
class EvaluateParams:
    """Every method on every scene at both resolutions (``python -m flows.evaluate``).
    ``methods`` takes baseline names, ``all_classical`` and the CrossDiff methods."""

    scenes: list[str] = field(default_factory=lambda: ["data/zarr"])
    out: str = "reports"
    methods: list[str] = field(
        default_factory=lambda: ["all_classical", "crossdiff_random_encoders", "crossdiff"]
    )
    block_size: int = 32
    max_pan_size: int = 1024
    border_cut: int = 21
    panel_crop: int = 256

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("evaluate.methods is empty: name at least one method")
        for name in ("block_size", "max_pan_size", "panel_crop"):
            if getattr(self, name) < 1:
                raise ConfigError(f"evaluate.{name} must be >= 1, got {getattr(self, name)}")
        if self.border_cut < 0:
            raise ConfigError(f"evaluate.border_cut must be >= 0, got {self.border_cut}")


@dataclass
class ReportParams:
    """Markdown + HTML report from the evaluate stage's output (``python -m flows.report``);
    the loss-curve and cross-sensor folders are skipped when null or absent."""

    metrics_dir: str = "reports"
    pretrain_dir: str | None = "data/models/pretrain"
    adapt_dir: str | None = "data/models/head"
    cross_sensor_dir: str | None = "reports/cross_sensor"
    out: str = "reports/report"


@dataclass
class TrackingParams:
    """MLflow names: where runs are recorded and under which names models are registered;
    ``promotion_margin``: how much the evaluated model's mean full-resolution HQNR must beat the
    champion's by (and the most its mean reduced-resolution Q2n may fall) to become champion,
    on the scenes both were scored on (run-to-run noise is about 0.005)."""

    experiment: str = "crossdiff"
    pansharpener_model_name: str = "crossdiff-pansharpener"
    encoder_model_name: str = "crossdiff-encoders"
    promotion_margin: float = 0.005

    def __post_init__(self) -> None:
        if not 0 <= self.promotion_margin < 1:
            raise ConfigError("tracking.promotion_margin must be in [0, 1), got "
                              f"{self.promotion_margin}")


@dataclass
class PansharpenParams:
    """Whole-scene pansharpening (``python -m flows.pansharpen``, ``crossdiff pansharpen``).

    ``model``: a pansharpener folder, a registry address ``models:/<name>@<alias>`` or a baseline
    name. ``tile`` is the window edge in PAN pixels (the context is in the model's config): 640
    keeps a whole 8192^2 scene under 1.3 GiB on CPU; 768 wastes less on overlap (1.2-1.5x faster)
    but needs ~0.3 GiB more. Baselines run on the whole scene, strip by strip, without windows.
    ``clip``: ``dtype`` (to the valid range of the MS dtype), ``input`` (to each band's min/max
    over the input MS) or ``none`` (integer MS written as float32); the count of clipped pixels
    is stored in the output. ``creation_options``: GDAL COG driver options over the defaults
    (DEFLATE, predictor by dtype, 512-pixel tiles, average overviews; ``--co KEY=VALUE``).
    """

    model: str = "data/models/head"
    scenes: list[str] = field(default_factory=lambda: ["data/zarr"])
    out: str = "data/pansharpened"
    format: str = "cog"
    tile: int = 640
    blend: int = 32
    batch_size: int = 1
    device: str = "auto"
    clip: str = "dtype"
    creation_options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"pansharpen.format {self.format!r}: use one of {FORMATS}")
        if self.clip not in CLIP_POLICIES:
            raise ConfigError(f"pansharpen.clip {self.clip!r}: use one of {CLIP_POLICIES}")
        if self.tile < 1 or self.batch_size < 1 or self.blend < 0:
            raise ConfigError("pansharpen.tile and batch_size must be >= 1, blend >= 0")


@dataclass
class CrossSensorParams:
    """Encoders of each sensor x head adapted to each sensor (``crossdiff cross-sensor``).
    ``pretrain``, ``freeze`` and ``adapt`` override keys of those sections for every run."""

    scenes: list[str] = field(default_factory=lambda: ["data/zarr"])
    dev_sources: list[str | list[str] | dict[str, Any]] = field(
        default_factory=lambda: [
            {"source": "../shared/data/worldview3", "sensor": "WV3"},
            {"source": "../shared/data/ikonos/imgIK.mat"},
        ]
    )
    ingest_out: str = "data/models/cross_sensor/dev_scenes"
    max_scenes_per_sensor: int | None = 2
    max_pan_size: int = 512
    work_dir: str = "data/models/cross_sensor"
    out: str = "reports/cross_sensor"
    pretrain: dict[str, Any] = field(default_factory=lambda: {"steps": 200})
    freeze: dict[str, Any] = field(default_factory=dict)
    adapt: dict[str, Any] = field(default_factory=lambda: {"steps": 300})

    OVERRIDES: ClassVar[dict[str, type]] = {
        "pretrain": PretrainParams, "freeze": FreezeParams, "adapt": AdaptParams,
    }

    def __post_init__(self) -> None:
        for section, config in self.OVERRIDES.items():
            check_keys(getattr(self, section) or {}, config, f"cross_sensor.{section}")


SECTIONS: dict[str, type] = {
    "ingest": IngestParams,
    "pretrain": PretrainParams,
    "freeze": FreezeParams,
    "adapt": AdaptParams,
    "reduced": ReducedParams,
    "ablation": AblationParams,
    "evaluate": EvaluateParams,
    "report": ReportParams,
    "tracking": TrackingParams,
    "pansharpen": PansharpenParams,
    "cross_sensor": CrossSensorParams,
}


def section_values(config: Any) -> dict[str, Any]:
    """A section config as the plain dict params.yaml would hold (for logging and comparison)."""
    return {name: getattr(config, name) for name in field_names(type(config))}

