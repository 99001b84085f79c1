"""Pretraining loop of one cross-predictive branch (P2M or M2P).

Reproducibility: the batch of step s is the dataset items [s * G, (s + 1) * G) (G = global batch),
and timesteps, noise and the condition-drop decision come from one seeded generator drawn for the
whole global batch, so every process of a DDP run takes its own slice of exactly what a single
process would use. Checkpoints hold the model, optimizer, EMA, generator and step, so a resumed run
repeats the losses of an uninterrupted one on the CPU.

Distributed: under ``torchrun`` (WORLD_SIZE > 1) the process group is started here (gloo on CPU,
nccl on CUDA); rank 0 alone writes files.
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
from crossdiff_core.device import pick_device
from crossdiff_core.diffusion import GaussianDiffusion, make_schedule
from crossdiff_core.nets.unet import ConditionalUNet, save_unet
from crossdiff_core.train.checkpoint import (
    CHECKPOINT_FILE,
    check_same_configuration,
    load_checkpoint,
    save_checkpoint,
)
from crossdiff_core.train.config import BRANCHES, PretrainConfig
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


def train_branch(
    config: PretrainConfig,
    on_step: StepCallback | None = None,
    resume: bool = True,
) -> PretrainResult:
    """Train one branch and write ``<out>/<branch>/``: the UNet (config.json + weights.pt, the EMA
    weights when ``ema_decay`` > 0), checkpoint.pt, losses.csv, quicklook.png, diagnostics.json.

    ``on_step(step, {"loss", "samples_per_s", "step_s", "data_s", "lr"})`` is called on rank 0
    after every step (``data_s``: seconds spent waiting for the batch, part of ``step_s``).
    Resumes from ``checkpoint.pt`` when present (and ``resume``), refusing one from another
    configuration. A non-finite loss stops training with FloatingPointError; the last checkpoint
    written stays as it was.
    """
    from tqdm.auto import tqdm

    from crossdiff_core.io.store import find_scene_stores

    dist = _setup_distributed(config.device)
    device = pick_device(config.device, dist.local_rank, what="pretrain.device")
    if config.batch_size % dist.world_size:
        raise ValueError(
            f"pretrain.batch_size {config.batch_size} must be divisible by the {dist.world_size} "
            "DDP processes (each takes an equal share of the global batch)"
        )
    folder = Path(config.out) / config.branch
    checkpoint_path = folder / CHECKPOINT_FILE
    stores = find_scene_stores(config.scenes)
    dataset = PatchDataset(stores, config.pan_patch, seed=config.seed,
                           length=config.steps * config.batch_size, hold_out=True,
                           normalisation=config.normalisation)

    torch.manual_seed(config.seed)
    model = build_unet(config, dataset.n_bands).to(device)
    use_cuda = device.type == "cuda"
    if use_cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    ema = _Ema(model, config.ema_decay) if config.ema_decay > 0 else None
    diffusion = GaussianDiffusion(make_schedule(config.schedule, config.timesteps))
    generator = torch.Generator().manual_seed(config.seed + 1)
    # The UNet layout depends on the scenes' band count too, not only on the settings.
    fingerprint = {**config.fingerprint(), "unet": model.config}
    losses: list[float] = []
    start = 0
    last_saved: int | None = None

    if resume and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path)
        check_same_configuration(checkpoint_path, state["fingerprint"], fingerprint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.shadow = {k: v.to(device) for k, v in state["ema"].items()}
        generator.set_state(state["generator"])
        _set_rng_states(state["rng"])
        losses = list(state["losses"])
        start = last_saved = int(state["step"])
        if start > config.steps:
            raise ValueError(
                f"checkpoint {checkpoint_path} is at step {start}, beyond pretrain.steps "
                f"{config.steps}: raise steps or use a new output folder"
            )

    trained: nn.Module = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[device.index] if use_cuda else None)

    def write_checkpoint(step: int) -> None:
        nonlocal last_saved
        last_saved = step
        if not dist.is_main:
            return
        save_checkpoint(checkpoint_path, {
            "step": step,
            "fingerprint": fingerprint,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "ema": None if ema is None else ema.shadow,
            "generator": generator.get_state(),
            "rng": _rng_states(),
            "losses": losses,
        })
        _write_losses(folder / LOSSES_FILE, losses)

    if dist.is_main:
        folder.mkdir(parents=True, exist_ok=True)
    loader = DataLoader(
        dataset,
        batch_sampler=_StepBatches(start, config.steps, config.batch_size, dist),
        num_workers=config.num_workers,
        pin_memory=use_cuda,
        persistent_workers=False,
    )
    local = config.batch_size // dist.world_size
    sample_shape_channels = dataset.n_bands if config.branch == "p2m" else 1
    # TQDM_DISABLE (as tests and CI set it) wins over the config; one bar line per branch.
    quiet = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    progress = tqdm(total=config.steps, initial=start, desc=f"pretrain {config.branch}",
                    disable=quiet or not (config.progress and dist.is_main),
                    position=BRANCHES.index(config.branch), dynamic_ncols=True)
    model.train()
    step = start
    tick = time.perf_counter()
    try:
        for batch in loader:
            step += 1
            data_seconds = time.perf_counter() - tick
            x0, condition = branch_inputs(config.branch, batch)
            shape = (config.batch_size, sample_shape_channels, config.pan_patch, config.pan_patch)
            t, noise, drop = diffusion.draw_training_inputs(
                shape, generator, config.cond_drop_prob, config.train_t_max)
            mine = slice(dist.rank * local, (dist.rank + 1) * local)
            t, noise = t[mine], noise[mine]
            x0 = x0.to(device, non_blocking=True)
            condition = condition.to(device, non_blocking=True)
            if use_cuda:
                x0 = x0.contiguous(memory_format=torch.channels_last)
                condition = condition.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_cuda):
                loss = diffusion.training_loss(trained, x0, condition, t.to(device),
                                               noise.to(device), drop_condition=drop)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            reported = loss.detach().float()
            if dist.active:
                torch.distributed.all_reduce(reported)
                reported /= dist.world_size
            value = float(reported)
            if not np.isfinite(value):
                kept = (
                    f"the last good checkpoint ({checkpoint_path}, step {last_saved}) is kept"
                    if last_saved is not None else "no checkpoint had been written yet"
                )
                raise FloatingPointError(
                    f"pretraining {config.branch} stopped: loss is {value} at step {step}; "
                    f"{kept}. Lower pretrain.lr or set pretrain.grad_clip, then rerun (it "
                    "resumes from the checkpoint)"
                )
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(model)
            losses.append(value)
            if use_cuda:
                torch.cuda.synchronize(device)
            step_seconds = time.perf_counter() - tick
            speed = config.batch_size / max(step_seconds, 1e-9)
            progress.update(1)
            progress.set_postfix(loss=f"{value:.4f}", samples_per_s=f"{speed:.1f}")
            if on_step is not None and dist.is_main:
                on_step(step, {"loss": value, "samples_per_s": speed, "step_s": step_seconds,
                               "data_s": data_seconds, "lr": config.lr})
            if step % config.checkpoint_every == 0 or step == config.steps:
                write_checkpoint(step)
            # Checkpoint writing is left out of the next step's time.
            tick = time.perf_counter()
    finally:
        progress.close()

    if step == start and dist.is_main and not checkpoint_path.is_file():
        write_checkpoint(step)
    final_model = model
    if ema is not None:
        final_model = build_unet(config, dataset.n_bands)
        final_model.load_state_dict({k: v.cpu() for k, v in ema.shadow.items()})
    diagnostics: dict = {}
    if dist.is_main:
        from crossdiff_core.train.diagnostics import write_diagnostics

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
            "ema": ema is not None,
        }
        save_unet(final_model.float().to(memory_format=torch.contiguous_format), folder, extra)
        diagnostics = write_diagnostics(
            final_model, diffusion, config, dataset, folder,
            final_loss=losses[-1] if losses else float("nan"), steps=step,
            recent_loss=float(np.mean(losses[-max(1, len(losses) // 10):])) if losses else None,
        )
    if dist.active:
        torch.distributed.barrier()
    return PretrainResult(config.branch, folder, step,
                          losses[-1] if losses else float("nan"), diagnostics)
