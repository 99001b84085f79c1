"""Reading params.yaml into the typed section configs, and which keys each DVC stage reads.

Every hyperparameter lives in params.yaml, one section per stage; its defaults and types live in
one dataclass per section (``crossdiff_core.config``). ``load_config`` validates a section (unknown
keys refused, naming key and section); ``cli_config`` is the one place where command-line options
override it. ``STAGE_PARAMS`` says which keys each DVC stage reads: its ``params`` in dvc.yaml are
those keys minus ``NO_RERUN`` (tests/test_params.py holds dvc.yaml to it).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from crossdiff_core.config import SECTIONS, ConfigError, check_keys, field_names


def params_path() -> Path:
    """`CROSSDIFF_PARAMS` if set, else ``params.yaml`` in the working directory (as DVC runs it)."""
    return Path(os.environ.get("CROSSDIFF_PARAMS", "params.yaml"))


def read_params(path: Path | None = None, required: bool = True) -> dict[str, Any]:
    """The whole params file as plain data ({} when it is missing and not ``required``)."""
    path = Path(path) if path is not None else params_path()
    if not path.is_file():
        if not required:
            return {}
        raise FileNotFoundError(f"{path}: parameters file not found (run from the project root, "
                                "or set CROSSDIFF_PARAMS)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected sections (ingest:, pretrain:, ...) at the top level")
    return params


@functools.cache
def _adapter(config: type):
    from pydantic import TypeAdapter

    return TypeAdapter(config)


def _describe(section: str, error) -> str:
    """A pydantic ValidationError as one line naming each key."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in (section, *item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        problems.append(message if not item["loc"] and section in message
                        else f"{where}: {message}")
    return "; ".join(problems)


def validate(section: str, values: Mapping[str, Any] | None) -> Any:
    """``values`` as the section's config: unknown keys and values of the wrong type are refused
    with a ConfigError naming key and section; unset keys take the config's defaults."""
    values = {} if values is None else values
    if not isinstance(values, Mapping):
        raise ConfigError(f"section '{section}' must map keys to values, got {values!r}")
    config = SECTIONS[section]
    check_keys(values, config, section)
    from pydantic import ValidationError

    try:
        return _adapter(config).validate_python(dict(values))
    except ValidationError as error:
        raise ConfigError(_describe(section, error)) from None


def _apply(section: str, values: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**values, **overrides}
    # An override wins over the per-branch values of the file too (pretrain.p2m, pretrain.m2p).
    for name in getattr(SECTIONS[section], "PER_BRANCH", ()):
        branch = merged.get(name) or {}
        if isinstance(branch, Mapping) and name not in overrides:
            merged[name] = {k: v for k, v in branch.items() if k not in overrides}
    return merged


def load_config(section: str, path: Path | None = None,
                overrides: Mapping[str, Any] | None = None, required: bool = True,
                origin: str | None = None) -> Any:
    """The validated config of one section of the params file (``path``, default
    ``params_path()``), with ``overrides`` applied on top. A section absent from the file takes
    its defaults (which are params.yaml's values); a missing file is an error when ``required``.
    Errors start with ``origin`` (default: the file's path)."""
    if section not in SECTIONS:
        raise ConfigError(f"unknown section '{section}' (sections: {', '.join(SECTIONS)})")
    path = Path(path) if path is not None else params_path()
    values = read_params(path, required).get(section) or {}
    try:
        if not isinstance(values, Mapping):
            raise ConfigError(f"section '{section}' must map keys to values, got {values!r}")
        return validate(section, _apply(section, dict(values), overrides or {}))
    except ConfigError as error:
        raise ConfigError(f"{origin or path}: {error}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def cli_config(section: str, params_file: Path | None, **options: Any) -> Any:
    """A command's config: the section of ``params_file`` (built-in defaults when the file does
    not exist), then every option the user gave (None = not given) on top."""
    given = {key: _plain(value) for key, value in options.items() if value is not None}
    path = Path(params_file) if params_file is not None else params_path()
    origin = " ".join([str(path), *(f"--{key.replace('_', '-')}" for key in given)])
    return load_config(section, path, given, required=False, origin=origin)


def stage_config(stage: str, path: Path | None = None) -> dict[str, Any]:
    """The configs of the sections a DVC stage reads (``STAGE_PARAMS``), by section."""
    return {section: load_config(section, path) for section in STAGE_PARAMS[stage]}


def every(section: str, but: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(name for name in field_names(SECTIONS[section]) if name not in but)


# The keys each stage's ``python -m flows.<stage>`` reads, by section.
STAGE_PARAMS: dict[str, dict[str, tuple[str, ...]]] = {
    "ingest": {"ingest": every("ingest"), "tracking": ("experiment",)},
    "pretrain": {"pretrain": every("pretrain"), "tracking": ("experiment",)},
    "freeze": {
        "freeze": every("freeze"),
        "pretrain": ("scenes", "out", "pan_patch"),  # calibration scenes, models, patch size
        "tracking": ("experiment", "encoder_model_name"),
    },
    "adapt": {
        "adapt": every("adapt"),
        "freeze": ("out",),  # the encoders when adapt.encoders is null
        "tracking": ("experiment", "pansharpener_model_name"),
    },
    # The evaluation's reduced-resolution chain: the Wald copies of the evaluation crops,
    # pretrained and frozen with the pipeline's settings (its own scenes and folders) ...
    "reduced": {
        "reduced": every("reduced"),
        "evaluate": ("scenes", "max_pan_size"),  # the crops whose Wald pairs are scored
        "pretrain": every("pretrain", but=("scenes", "out")),
        "freeze": every("freeze", but=("out",)),
        "tracking": ("experiment",),
    },
    # ... then adapted with the pipeline's adapt settings.
    "reduced_adapt": {
        "reduced": every("reduced"),
        "adapt": every("adapt", but=("scenes", "out", "encoders")),
        "tracking": ("experiment",),
    },
    # The random-encoder ablation: the adapt settings' head on random twins of the encoders
    # (adapt.encoders or freeze.out at full resolution, the reduced chain's at reduced).
    "ablation": {
        "ablation": every("ablation"),
        "adapt": every("adapt", but=("scenes", "out", "random_encoders")),
        "freeze": ("out",),
        "evaluate": ("scenes",),
        "reduced": every("reduced"),
        "tracking": ("experiment",),
    },
    # Scoring only: every model it scores is another stage's output.
    "evaluate": {
        "evaluate": every("evaluate"),
        "adapt": ("out",),
        "reduced": every("reduced"),
        "ablation": every("ablation"),
        "tracking": ("experiment", "pansharpener_model_name", "promotion_margin"),
    },
    "report": {"report": every("report"), "tracking": ("experiment",)},
}

# Keys a stage reads that change none of its outputs: dvc.yaml lists them in no stage, so
# changing one reruns nothing. Each with the reason.
NO_RERUN: dict[str, dict[str, str]] = {
    "ingest": {
        "scheduler": "threads, processes or a dask cluster compute the same stores, byte for byte",
    },
    "pretrain": {
        "progress": "a terminal progress bar",
        "device": "where the same training runs (a GPU run is the same experiment, faster)",
        "num_workers": "processes reading the same patches in the same order",
        "processes": "the same global batch split across torchrun processes: the same weights "
                     "within float rounding (1e-4), like another device",
        "deterministic": "whether the same training is repeatable bit for bit, not what it "
                         "trains",
        "threads": "how many cores compute the same training: the same weights within float "
                   "rounding, like another device",
    },
    "adapt": {"device": "where the same training runs"},
    "tracking": {
        "experiment": "where MLflow records the run, not what the stage writes",
        "pansharpener_model_name": "the registry name, not what the stage writes",
        "encoder_model_name": "the registry name, not what the stage writes",
        "promotion_margin": "which registered version the champion alias names, not what the "
                            "stage writes",
    },
}


def dvc_params(stage: str) -> list[str]:
    """The ``params`` a stage must list in dvc.yaml: every key it reads that changes outputs."""
    return [f"{section}.{key}"
            for section, keys in STAGE_PARAMS[stage].items()
            for key in keys if key not in NO_RERUN.get(section, {})]
