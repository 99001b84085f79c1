"""Pretraining loop of one cross-predictive branch (P2M or M2P).

Reproducibility: the batch of step s is the dataset items [s * G, (s + 1) * G) (G = global batch),
and timesteps, noise and the condition-drop decision come from one seeded generator drawn for the
whole global batch, so every process of a DDP run takes its own slice of exactly what a single
process would use. Checkpoints hold the model, optimizer, EMA, generator and step, so a resumed run
repeats the losses of an uninterrupted one on the CPU.

Bit for bit: with ``deterministic`` (the default) a run is repeatable exactly for a given machine
and number of processes and threads (``crossdiff_core.device.determinism``); the files it writes
hold no timing, path or process id, so two runs write the same bytes.

Distributed: under ``torchrun`` (WORLD_SIZE > 1) the process group is started here (gloo on CPU,
nccl on CUDA); rank 0 alone writes files. Two processes reach the weights of one within float
rounding (the gradients are averaged in another order), not bit for bit.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from crossdiff_core.atomic import atomic_write
from crossdiff_core.device import determinism, pick_device
from crossdiff_core.diffusion import GaussianDiffusion, make_schedule
from crossdiff_core.nets.unet import ConditionalUNet, save_unet
from crossdiff_core.train.checkpoint import (
    CHECKPOINT_FILE,
    check_same_configuration,
    load_checkpoint,
    save_checkpoint,
)
from crossdiff_core.train.config import BRANCHES, SCRATCH, SHIPPED, PretrainConfig
from crossdiff_core.train.init_weights import (
    InitMismatchError,
    InitWeights,
    load_init_weights,
    shipped_encoders,
    shipped_sensors,
    shipped_sources,
)
from crossdiff_core.train.patches import PatchDataset, branch_inputs

LOSSES_FILE = "losses.csv"
StepCallback = Callable[[int, dict], None]


@dataclass
class PretrainResult:
    """What one branch's run produced."""

    branch: str
    folder: Path
    steps: int
    final_loss: float
    diagnostics: dict
    resumed_from: int = 0  # the checkpoint's step training resumed after (0: from scratch)
    restart_reason: str | None = None  # why a checkpoint found was not resumed
    started_from: str = "scratch"  # the starting weights in words (pretrain.init resolved)

    def summary(self) -> dict:
        """The result as plain data (JSON): branch, folder, steps, final_loss, diagnostics,
        resumed_from, restart_reason, started_from."""
        return {"branch": self.branch, "folder": str(self.folder), "steps": self.steps,
                "final_loss": self.final_loss, "diagnostics": self.diagnostics,
                "resumed_from": self.resumed_from, "restart_reason": self.restart_reason,
                "started_from": self.started_from}


@dataclass
class _Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_setting: str) -> _Distributed:
    """Join the process group torchrun describes in the environment (no-op for one process)."""
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _Distributed()
    if not dist.is_initialized():
        use_cuda = pick_device(device_setting, what="pretrain.device").type == "cuda"
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _Distributed(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", "0")))


def build_unet(config: PretrainConfig, n_bands: int) -> ConditionalUNet:
    """The branch's UNet: P2M has B output / 1 condition channel, M2P the reverse."""
    if config.branch == "p2m":
        return ConditionalUNet(n_bands, 1, channels=tuple(config.channels))
    return ConditionalUNet(1, n_bands, channels=tuple(config.channels))


def _rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _write_losses(path: Path, losses: list[float]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step", "loss"])
    writer.writerows((step, f"{loss:.6g}") for step, loss in enumerate(losses, start=1))
    atomic_write(path, buffer.getvalue())


class _StepBatches(Sampler[list[int]]):
    """Dataset indices this process reads at each remaining step (its share of the global batch):
    step s covers items [s * G, (s + 1) * G) and rank r of N takes the r-th of N equal slices."""

    def __init__(self, first_step: int, steps: int, batch_size: int, dist: _Distributed) -> None:
        self.first_step, self.steps, self.batch_size = first_step, steps, batch_size
        self.local = batch_size // dist.world_size
        self.offset = dist.rank * self.local

    def __len__(self) -> int:
        return max(self.steps - self.first_step, 0)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.first_step, self.steps):
            begin = step * self.batch_size + self.offset
            yield list(range(begin, begin + self.local))


class _Ema:
    """Exponential moving average of the parameters (buffers are copied as they are)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                self.shadow[key].lerp_(value.float(), 1.0 - self.decay)
            else:
                self.shadow[key].copy_(value)


@dataclass
class _Run:
    """Everything one branch's training run holds: settings, data, model and its optimiser state,
    and where it writes."""

    config: PretrainConfig
    dist: _Distributed
    device: torch.device
    dataset: PatchDataset
    model: ConditionalUNet
    trained: nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    ema: _Ema | None
    diffusion: GaussianDiffusion
    generator: torch.Generator
    fingerprint: dict
    losses: list[float]
    steps: int  # the step training ends at: the config's _steps_setting
    start: int = 0  # the step training starts after (a resumed checkpoint's)
    last_saved: int | None = None
    restart_reason: str | None = None
    init: dict | None = None  # where the weights started (pretrain.init), None from scratch
    started_from: str = "scratch"  # the same in words, for the logs

    @property
    def folder(self) -> Path:
        return Path(self.config.out) / self.config.branch

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / CHECKPOINT_FILE

    @property
    def use_cuda(self) -> bool:
        return self.device.type == "cuda"

    def write_checkpoint(self, step: int) -> None:
        """Checkpoint (model, optimizer, EMA, generators, losses) and losses.csv; rank 0 only."""
        self.last_saved = step
        if not self.dist.is_main:
            return
        # losses.csv first: a run killed between the two resumes from the older checkpoint and
        # rewrites it, never leaving the losses behind the checkpoint.
        _write_losses(self.folder / LOSSES_FILE, self.losses)
        save_checkpoint(self.checkpoint_path, {
            "step": step,
            "fingerprint": self.fingerprint,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": None if self.ema is None else self.ema.shadow,
            "generator": self.generator.get_state(),
            "rng": _rng_states(),
            "losses": self.losses,
        })


def train_branch(
    config: PretrainConfig,
    on_step: StepCallback | None = None,
    resume: bool = True,
    restart_on_mismatch: bool = False,
) -> PretrainResult:
    """Train one branch and write ``<out>/<branch>/``: the UNet (config.json + weights.pt, the EMA
    weights when ``ema_decay`` > 0), checkpoint.pt, losses.csv, quicklook.png, diagnostics.json.

    ``on_step(step, {"loss", "samples_per_s", "step_s", "data_s", "lr"})`` is called on rank 0
    after every step (``data_s``: seconds spent waiting for the batch, part of ``step_s``).
    Starts from the weights of ``config.init`` (an earlier run's folder, checked against this
    run's bands, ratio and layout: ``crossdiff_core.train.init_weights``) unless it is
    ``scratch``. Resumes from ``checkpoint.pt`` when present (and ``resume``), refusing one from
    another configuration (settings, UNet layout, training scenes or starting weights) or one
    beyond ``steps``; with
    ``restart_on_mismatch`` such a checkpoint is ignored (overwritten by the new run's) and the
    reason is returned as ``restart_reason``. A non-finite loss stops training with
    FloatingPointError; the last checkpoint written stays as it was.
    """
    device = pick_device(config.device, what="pretrain.device")
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        with determinism(config.deterministic, device):
            return _train_branch(config, on_step, resume, restart_on_mismatch)
    finally:
        torch.set_num_threads(threads)


def _train_branch(config: PretrainConfig, on_step: StepCallback | None, resume: bool,
                  restart_on_mismatch: bool) -> PretrainResult:
    run = _start_run(config, resume, restart_on_mismatch)
    step = _train_steps(run, on_step)
    if step == run.start and run.dist.is_main:
        if run.checkpoint_path.is_file():
            # Nothing left to train: the checkpoint's losses are the run's, whatever a killed
            # earlier run left in losses.csv.
            _write_losses(run.folder / LOSSES_FILE, run.losses)
        else:
            run.write_checkpoint(step)
    final_model = run.model
    if run.ema is not None:
        final_model = build_unet(config, run.dataset.n_bands)
        final_model.load_state_dict({k: v.cpu() for k, v in run.ema.shadow.items()})
    diagnostics = _write_outputs(run, final_model, step) if run.dist.is_main else {}
    if run.dist.active:
        torch.distributed.barrier()
    return PretrainResult(config.branch, run.folder, step,
                          run.losses[-1] if run.losses else float("nan"), diagnostics,
                          resumed_from=run.start, restart_reason=run.restart_reason,
                          started_from=run.started_from)


def _training_data(stores: list[Path]) -> list[str]:
    """The scenes a run trains on, by content: ``sensor/scene_id:source sha256`` of each store."""
    from crossdiff_core.io.store import read_store_attrs

    found = []
    for store in stores:
        attrs = read_store_attrs(store)
        found.append(f"{attrs.get('sensor')}/{attrs.get('scene_id')}:"
                     f"{attrs.get('source_sha256', '')}")
    return sorted(found)


def _start_run(config: PretrainConfig, resume: bool, restart_on_mismatch: bool = False) -> _Run:
    """Set up the process group, data, model, optimizer and EMA; resume from the checkpoint."""
    from crossdiff_core.io.store import find_scene_stores

    dist = _setup_distributed(config.device)
    device = pick_device(config.device, dist.local_rank, what="pretrain.device")
    if config.batch_size % dist.world_size:
        raise ValueError(
            f"pretrain.batch_size {config.batch_size} must be divisible by the {dist.world_size} "
            "DDP processes (each takes an equal share of the global batch)"
        )
    stores = find_scene_stores(config.scenes)
    dataset = PatchDataset(stores, config.pan_patch, seed=config.seed, hold_out=True,
                           normalisation=config.normalisation, pretext=config.pretext,
                           augment=config.augment)

    torch.manual_seed(config.seed)
    # NumPy's global generator draws nothing here, but the checkpoint keeps its state: seeded, a
    # checkpoint is the same bytes in every run (unseeded it came from the OS entropy pool).
    np.random.seed(config.seed)
    model = build_unet(config, dataset.n_bands)
    multiple = model.size_multiple
    if config.pretext == "matched_scale" and dataset.ms_patch % multiple:
        raise ValueError(
            f"pretrain.pretext matched_scale trains on MS-grid patches of pan_patch / ratio = "
            f"{dataset.ms_patch} pixels, which {len(config.channels)} UNet levels need divisible "
            f"by {multiple}: set pretrain.pan_patch to a multiple of {multiple * dataset.ratio}"
        )
    start, started_from = _starting_weights(config, dataset, model)
    steps_setting = _steps_setting(config, start is not None)
    steps = int(getattr(config, steps_setting))
    if steps_setting != "steps":
        started_from += f" ({steps} steps: pretrain.{steps_setting})"
    if start is not None:
        model.load_state_dict(start.state)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    run = _Run(
        config, dist, device, dataset, model, model, optimizer,
        ema=_Ema(model, config.ema_decay) if config.ema_decay > 0 else None,
        diffusion=GaussianDiffusion(make_schedule(config.schedule, config.timesteps)),
        generator=torch.Generator().manual_seed(config.seed + 1),
        # The UNet layout depends on the scenes' band count too, not only on the settings; a
        # checkpoint trained on other scenes is another run too (the same scenes under another
        # path are not).
        fingerprint={**config.fingerprint(), "unet": model.config,
                     "training_data": _training_data(stores),
                     # only when set: checkpoints of runs from scratch keep their fingerprint
                     **({} if start is None else {"init_sha256": start.weights_sha256})},
        losses=[],
        init=None if start is None else start.provenance(),
        started_from=started_from,
        steps=steps,
    )
    dataset.length = max(steps, 1) * config.batch_size  # the items the steps read
    if resume and run.checkpoint_path.is_file():
        _resume(run, restart_on_mismatch)
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        run.trained = DistributedDataParallel(
            model, device_ids=[device.index] if run.use_cuda else None
        )
    return run


def _steps_setting(config: PretrainConfig, from_weights: bool) -> str:
    """The setting that counts a run's steps: ``finetune_steps`` when it starts from weights
    (shipped or a folder) and that is set, ``steps`` otherwise."""
    return "finetune_steps" if from_weights and config.finetune_steps is not None else "steps"


def _starting_weights(config: PretrainConfig, dataset: PatchDataset,
                      model: ConditionalUNet) -> tuple[InitWeights | None, str]:
    """The checked ``pretrain.init`` weights of this branch (None to start from scratch:
    ``scratch``, or ``shipped`` where none fit, see ``_shipped_weights``) and where they come
    from in words."""
    if config.init == SCRATCH:
        return None, "scratch"
    if config.init == SHIPPED:
        return _shipped_weights(config, dataset, model)
    return _checked_weights(config.init, config, dataset, model), f"the weights in {config.init}"


def _checked_weights(folder: str | Path, config: PretrainConfig, dataset: PatchDataset,
                     model: ConditionalUNet) -> InitWeights:
    """This branch's weights in ``folder``, checked against the run's layout, bands, ratio and
    schedule (InitMismatchError otherwise)."""
    return load_init_weights(
        folder, config.branch, unet_config=model.config, n_bands=dataset.n_bands,
        band_names=list(dataset._open()[0].band_names), ratio=dataset.ratio,
        schedule=config.schedule, timesteps=config.timesteps,
    )


def _shipped_weights(config: PretrainConfig, dataset: PatchDataset,
                     model: ConditionalUNet) -> tuple[InitWeights | None, str]:
    """The shipped encoders of the scenes' sensor and pretext, or (None, why not) where none
    ship, where they do not fit this run's layout or bands, or where they were pretrained on
    one of its scenes (their record's sources): a reduced-resolution chain started from those
    would have seen the full-resolution MS it is scored against."""
    scenes = dataset._open()
    sensor = str(scenes[0].attrs.get("sensor"))
    folder = shipped_encoders(sensor, config.pretext)
    if folder is None:
        return None, (f"scratch: no encoders ship for {sensor} with pretext "
                      f"{config.pretext} (shipped: {', '.join(shipped_sensors()) or 'none'})")
    named = f"the shipped {sensor}/{config.pretext} encoders"
    seen = shipped_sources(folder)
    for scene in scenes:
        source = seen.get(str(scene.attrs.get("source_sha256")))
        if source is not None:
            return None, (f"scratch: {named} were pretrained on part of {source}, which this "
                          "run trains on; starting from them would let its reduced-resolution "
                          "check see the reference")
    try:
        weights = _checked_weights(folder, config, dataset, model)
    except InitMismatchError as error:
        return None, f"scratch: {named} do not fit this run ({error.mismatch})"
    return weights, named


def _resume(run: _Run, restart_on_mismatch: bool = False) -> None:
    """Restore the run's state from its checkpoint, refused (ValueError) when it is another
    configuration's or beyond ``steps``; ignored instead, saying why in ``run.restart_reason``,
    when ``restart_on_mismatch``."""
    path = run.checkpoint_path
    state = load_checkpoint(path)
    try:
        check_same_configuration(path, state["fingerprint"], run.fingerprint)
        if int(state["step"]) > run.steps:
            key = _steps_setting(run.config, run.init is not None)
            raise ValueError(
                f"checkpoint {path} is at step {int(state['step'])}, beyond pretrain.{key} "
                f"{run.steps}: raise {key} or use a new output folder"
            )
    except ValueError as error:
        if not restart_on_mismatch:
            raise
        run.restart_reason = str(error)
        return
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.ema is not None:
        run.ema.shadow = {k: v.to(run.device) for k, v in state["ema"].items()}
    run.generator.set_state(state["generator"])
    _set_rng_states(state["rng"])
    run.losses = list(state["losses"])
    run.start = run.last_saved = int(state["step"])


def _train_steps(run: _Run, on_step: StepCallback | None) -> int:
    """Train from ``run.start`` to ``run.steps`` with progress, callbacks and checkpoints;
    returns the last step."""
    from tqdm.auto import tqdm

    config, dist = run.config, run.dist
    if dist.is_main:
        run.folder.mkdir(parents=True, exist_ok=True)
    loader = DataLoader(
        run.dataset,
        batch_sampler=_StepBatches(run.start, run.steps, config.batch_size, dist),
        num_workers=config.num_workers,
        pin_memory=run.use_cuda,
        persistent_workers=False,
    )
    # TQDM_DISABLE (as tests and CI set it) wins over the config; one bar line per branch.
    quiet = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    progress = tqdm(total=run.steps, initial=run.start, desc=f"pretrain {config.branch}",
                    disable=quiet or not (config.progress and dist.is_main),
                    position=BRANCHES.index(config.branch), dynamic_ncols=True)
    run.model.train()
    step = run.start
    tick = time.perf_counter()
    try:
        for batch in loader:
            step += 1
            data_seconds = time.perf_counter() - tick
            value = _training_step(run, batch, step)
            step_seconds = time.perf_counter() - tick
            speed = config.batch_size / max(step_seconds, 1e-9)
            progress.update(1)
            progress.set_postfix(loss=f"{value:.4f}", samples_per_s=f"{speed:.1f}")
            if on_step is not None and dist.is_main:
                on_step(step, {"loss": value, "samples_per_s": speed, "step_s": step_seconds,
                               "data_s": data_seconds, "lr": config.lr})
            if step % config.checkpoint_every == 0 or step == run.steps:
                run.write_checkpoint(step)
            # Checkpoint writing is left out of the next step's time.
            tick = time.perf_counter()
    finally:
        progress.close()
    return step


def _training_step(run: _Run, batch: dict[str, torch.Tensor], step: int) -> float:
    """One optimiser step on this process's share of the global batch; returns the loss
    averaged over the processes (FloatingPointError when it is not finite)."""
    config, dist, device = run.config, run.dist, run.device
    local = config.batch_size // dist.world_size
    channels = run.dataset.n_bands if config.branch == "p2m" else 1
    x0, condition = branch_inputs(config.branch, batch)
    shape = (config.batch_size, channels, *x0.shape[-2:])
    t, noise, drop = run.diffusion.draw_training_inputs(
        shape, run.generator, config.cond_drop_prob, config.train_t_max)
    mine = slice(dist.rank * local, (dist.rank + 1) * local)
    t, noise = t[mine], noise[mine]
    x0 = x0.to(device, non_blocking=True)
    condition = condition.to(device, non_blocking=True)
    if run.use_cuda:
        x0 = x0.contiguous(memory_format=torch.channels_last)
        condition = condition.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=run.use_cuda):
        loss = run.diffusion.training_loss(run.trained, x0, condition, t.to(device),
                                           noise.to(device), drop_condition=drop)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    reported = loss.detach().float()
    if dist.active:
        torch.distributed.all_reduce(reported)
        reported /= dist.world_size
    value = float(reported)
    if not np.isfinite(value):
        kept = (
            f"the last good checkpoint ({run.checkpoint_path}, step {run.last_saved}) is kept"
            if run.last_saved is not None else "no checkpoint had been written yet"
        )
        raise FloatingPointError(
            f"pretraining {config.branch} stopped: loss is {value} at step {step}; "
            f"{kept}. Lower pretrain.lr or set pretrain.grad_clip, then rerun (it "
            "resumes from the checkpoint)"
        )
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
    run.optimizer.step()
    if run.ema is not None:
        run.ema.update(run.model)
    run.losses.append(value)
    if run.use_cuda:
        torch.cuda.synchronize(device)
    return value


def _write_outputs(run: _Run, final_model: ConditionalUNet, step: int) -> dict:
    """Save the final UNet (with what inference needs to know in ``extra``) and write the
    diagnostics; returns them."""
    from crossdiff_core.train.diagnostics import write_diagnostics

    config, dataset, losses = run.config, run.dataset, run.losses
    scene = dataset._open()[0]
    extra = {
        "branch": config.branch,
        "steps": step,
        "final_loss": losses[-1] if losses else None,
        "schedule": config.schedule,
        "timesteps": config.timesteps,
        "pan_patch": config.pan_patch,
        "ratio": dataset.ratio,
        "sensor": str(scene.attrs["sensor"]),
        "band_names": scene.band_names,
        "scale_max": scene.scale_max,
        "normalisation": dataset.normalisation.to_dict(),
        "train_t_max": config.train_t_max,
        "pretext": config.pretext,
        "ema": run.ema is not None,
    }
    if config.augment != "none":  # only when set: models made without it keep their bytes
        extra["augment"] = config.augment
    if run.init is not None:
        extra["init"] = run.init
    save_unet(final_model.float().to(memory_format=torch.contiguous_format), run.folder, extra)
    return write_diagnostics(
        final_model, run.diffusion, config, dataset, run.folder,
        final_loss=losses[-1] if losses else float("nan"), steps=step,
        recent_loss=float(np.mean(losses[-max(1, len(losses) // 10):])) if losses else None,
    )
