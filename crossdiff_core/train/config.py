"""Training configurations: pretraining (shared settings and one config per branch) and adaptation.

These dataclasses hold the defaults of the ``pretrain`` and ``adapt`` sections of params.yaml (the
section configs in ``crossdiff_core.config`` build on them); nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

BRANCHES = ("p2m", "m2p")
# pretrain.init for a fresh initialisation, for the encoders that ship with the project
# (crossdiff_core/shipped_encoders/<sensor>/<pretext>/; scratch for a sensor without any), or
# anything else: a folder of pretrained branches.
SCRATCH = "scratch"
SHIPPED = "shipped"
# constant: lr throughout; cosine: lr decays to 0 along a half cosine over the steps.
LR_SCHEDULES = ("cosine", "constant")
# What the pretext pairs are (crossdiff_core.train.patches): "original" pairs the PAN with the
# upsampled MS on the PAN grid (the MS target then has none of the PAN's finer detail);
# "matched_scale" pairs the MS with the PAN reduced to the MS grid, where both carry detail of
# the same scale, so each branch learns how one image's detail predicts the other's.
PRETEXTS = ("original", "matched_scale")
# The PAN's low-scale twin that the adaptation's spatial targets (crossdiff_core.train.losses)
# pair with the upsampled MS: "mtf_blur" blurs the PAN with its MTF on its own grid; "reduced"
# reduces it to the MS grid and brings it back with interp23tap, the path the upsampled MS took;
# "auto" picks, per run, the one that predicts the band-PAN correlation better one scale down
# (crossdiff_core.train.low_scale).
LOW_SCALE_PANS = ("auto", "mtf_blur", "reduced")
# What pretraining patches go through before a branch sees them: "none", or "dihedral", one of
# the eight flips and quarter turns of the square, drawn per patch (the same for its MS and PAN),
# which shows a small corpus in eight orientations.
AUGMENTS = ("none", "dihedral")

# Settings that change what a run computes; a checkpoint is only resumed when they all match.
# (steps, checkpoint_every, num_workers, device, processes, deterministic, threads, out, scenes
# and the diagnostics may change.)
RESUME_KEYS = (
    "branch", "seed", "pan_patch", "batch_size", "lr", "weight_decay", "grad_clip", "ema_decay",
    "channels", "schedule", "timesteps", "cond_drop_prob", "train_t_max", "normalisation",
    "pretext",
)


@dataclass
class PretrainSettings:
    """Every pretraining setting both branches share (the ``pretrain`` section of params.yaml
    without its per-branch overrides). ``batch_size`` is the global batch: under DDP each of the N
    processes takes ``batch_size / N`` samples of it."""

    scenes: list[str] = field(default_factory=lambda: ["data/zarr"])
    out: str = "data/models/pretrain"
    seed: int = 0
    device: str = "auto"
    pan_patch: int = 64
    batch_size: int = 8
    steps: int = 300
    lr: float = 3.0e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.0
    checkpoint_every: int = 100
    num_workers: int = 0
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    schedule: str = "cosine"
    timesteps: int = 1000
    cond_drop_prob: float = 0.1
    train_t_max: int | None = None
    normalisation: str = "percentile"
    sample_steps: int = 20
    guidance_scale: float = 0.0
    progress: bool = True
    # Training processes on this machine: > 1 runs the branches under torchrun (DDP, gloo on CPU,
    # nccl on GPUs), each process taking batch_size / processes samples of the global batch.
    processes: int = 1
    # True: bit-for-bit repeatable runs (branches one after the other in a process, deterministic
    # kernels). False: both branches at once in threads of one process and cuDNN autotuning,
    # faster where cores are idle, but the weights then differ slightly from run to run.
    deterministic: bool = True
    # Intra-op threads of each training process (0: torch's default, this machine's cores; under
    # torchrun an equal share of them). CPU results depend on it in the last bits: pin it to get
    # the same bits on machines with other core counts.
    threads: int = 0
    # "shipped": the encoders shipped for the scenes' sensor and this pretext (scratch, saying
    # why, where none ship, where they do not fit, or on a scene they were pretrained on).
    # "scratch": a fresh initialisation. Otherwise a folder with p2m/ and m2p/ of an earlier
    # pretraining run (crossdiff_core.train.init_weights): each branch starts from its weights
    # and trains ``finetune_steps`` more steps on ``scenes``.
    init: str = SHIPPED
    # Steps trained on ``scenes`` when the run starts from shipped or earlier weights (``init``
    # not ``scratch``, and not fallen back to it); None: ``steps``. 0 keeps those weights as
    # they are. A run that trains from scratch always trains ``steps``.
    finetune_steps: int | None = 30
    # The pretext pairs: PRETEXTS above.
    pretext: str = "matched_scale"
    # AUGMENTS above: the orientations a training patch is shown in.
    augment: str = "none"

    def __post_init__(self) -> None:
        if self.pretext not in PRETEXTS:
            raise ValueError(f"pretrain.pretext {self.pretext!r}: use one of {PRETEXTS}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"pretrain.augment {self.augment!r}: use one of {AUGMENTS}")
        self.init = str(self.init).strip()
        if not self.init:
            raise ValueError("pretrain.init must be 'scratch', 'shipped' or a folder of pretrained "
                             "p2m/ m2p/")
        if isinstance(self.scenes, str):
            self.scenes = [self.scenes]
        self.scenes = [str(scene) for scene in self.scenes]
        self.channels = [int(c) for c in self.channels]
        positive = ("pan_patch", "batch_size", "steps", "checkpoint_every", "timesteps",
                    "sample_steps", "processes")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"pretrain.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.finetune_steps is not None and int(self.finetune_steps) < 0:
            raise ValueError(
                f"pretrain.finetune_steps must be >= 0 (0: the starting weights as they are) or "
                f"null (pretrain.steps), got {self.finetune_steps!r}"
            )
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("pretrain.lr must be > 0, weight_decay and grad_clip >= 0")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"pretrain.ema_decay must lie in [0, 1), got {self.ema_decay}")
        if not 0 <= self.cond_drop_prob < 1:
            raise ValueError(
                f"pretrain.cond_drop_prob must lie in [0, 1), got {self.cond_drop_prob}"
            )
        if self.train_t_max is not None and not 1 <= int(self.train_t_max) <= self.timesteps:
            raise ValueError(
                f"pretrain.train_t_max must lie in [1, timesteps={self.timesteps}] or be null "
                f"(every timestep), got {self.train_t_max!r}"
            )
        from crossdiff_core.scaling import NORMALISATIONS

        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"pretrain.normalisation {self.normalisation!r}: use one of {NORMALISATIONS}"
            )
        if self.threads < 0:
            raise ValueError(f"pretrain.threads must be >= 0 (0: the default), got {self.threads}")
        if self.batch_size % self.processes:
            raise ValueError(
                f"pretrain.batch_size {self.batch_size} must be divisible by pretrain.processes "
                f"{self.processes} (each process takes an equal share of the global batch)"
            )
        multiple = 2 ** (len(self.channels) - 1)
        if self.pan_patch % multiple:
            raise ValueError(
                f"pretrain.pan_patch {self.pan_patch} must be divisible by {multiple} for "
                f"{len(self.channels)} UNet levels"
            )


@dataclass
class PretrainConfig(PretrainSettings):
    """Every setting of one branch's pretraining run.

    P2M diffuses the upsampled MS conditioned on the PAN; M2P diffuses the PAN conditioned on the
    upsampled MS.
    """

    branch: str = field(kw_only=True)

    def __post_init__(self) -> None:
        if self.branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES}, got {self.branch!r}")
        super().__post_init__()

    def fingerprint(self) -> dict:
        """The settings a resumed run must share with its checkpoint."""
        values = asdict(self)
        fingerprint = {key: values[key] for key in RESUME_KEYS}
        if self.augment != "none":  # only when set: earlier checkpoints keep their fingerprint
            fingerprint["augment"] = self.augment
        return fingerprint

    @classmethod
    def from_params(cls, section: dict, branch: str, **overrides) -> PretrainConfig:
        """Shared keys of the ``pretrain`` section, then ``section[branch]``, then ``overrides``."""
        known = {f.name for f in fields(PretrainSettings)}
        shared = {key: value for key, value in section.items() if key not in BRANCHES}
        branch_values = section.get(branch) or {}
        for origin, values in (("pretrain", shared), (f"pretrain.{branch}", branch_values),
                               ("overrides", overrides)):
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(
                    f"unknown keys in {origin}: {unknown}; known keys are {sorted(known)}"
                )
        merged = {**shared, **branch_values,
                  **{key: value for key, value in overrides.items() if value is not None}}
        return cls(branch=branch, **merged)


@dataclass
class AdaptConfig:
    """Hyperparameters of one adaptation run (the ``adapt`` section of params.yaml, less the
    scenes, output and encoder folders)."""

    steps: int = 200
    batch_size: int = 4
    pan_patch: int = 64
    lr: float = 1e-3
    seed: int = 0
    spectral_weight: float = 40.0
    spatial_weight: float = 1.0
    spatial_loss: str = "correlation_match"
    gain_weight: float = 0.0
    gain_window: int = 8
    overshoot_weight: float = 0.5
    correlation_boost: float = 0.0
    coarse_correlation_weight: float = 0.0
    coarse_correlation_window: int = 32
    low_scale_pan: str = "auto"
    mode: str = "unsupervised"
    head_channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])
    input_skip: bool = False
    random_encoders: bool = False
    random_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    calibration_patches: int = 16
    normalisation: str = "percentile"
    lr_schedule: str = "cosine"
    device: str = "auto"

    def __post_init__(self) -> None:
        from crossdiff_core.scaling import NORMALISATIONS
        from crossdiff_core.train.losses import MODES

        if self.mode not in MODES:
            raise ValueError(f"adapt.mode {self.mode!r}: use one of {MODES}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("adapt.steps and adapt.batch_size must be at least 1")
        if not 0 <= self.overshoot_weight <= 1:
            raise ValueError(
                f"adapt.overshoot_weight must lie in [0, 1] (got {self.overshoot_weight})"
            )
        if not 0 <= self.correlation_boost < 1:
            raise ValueError(
                f"adapt.correlation_boost must lie in [0, 1) (got {self.correlation_boost})"
            )
        for term in ("gain", "coarse_correlation"):  # the loss terms pooled over windows
            self._check_windowed_term(term)
        if self.low_scale_pan not in LOW_SCALE_PANS:
            raise ValueError(
                f"adapt.low_scale_pan {self.low_scale_pan!r}: use one of {LOW_SCALE_PANS}"
            )
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"adapt.normalisation {self.normalisation!r}: use one of {NORMALISATIONS}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"adapt.lr_schedule {self.lr_schedule!r}: use one of {LR_SCHEDULES}")

    def _check_windowed_term(self, term: str) -> None:
        """adapt.<term>_weight >= 0; adapt.<term>_window >= 2 px and, while the term is on,
        no larger than adapt.pan_patch (a window must fit in a training patch)."""
        weight, window = getattr(self, f"{term}_weight"), getattr(self, f"{term}_window")
        if weight < 0 or window < 2:
            raise ValueError(
                f"adapt.{term}_weight must be >= 0 (got {weight}) and adapt.{term}_window >= 2 "
                f"pixels (got {window})"
            )
        if weight and window > self.pan_patch:
            raise ValueError(
                f"adapt.{term}_window ({window} px) must fit in adapt.pan_patch "
                f"({self.pan_patch} px): lower the window, raise the patch or set "
                f"adapt.{term}_weight: 0"
            )

    def run_config(self) -> AdaptConfig:
        """The plain run config (a section config that extends this class drops its folders)."""
        return AdaptConfig(**{f.name: getattr(self, f.name) for f in fields(AdaptConfig)})
