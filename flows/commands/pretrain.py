"""`crossdiff pretrain`: train the P2M and M2P diffusion models on scene stores."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flows.commands import DEFAULT_PARAMS, FlagCommand, ParamsFile


class Branch(StrEnum):
    p2m = "p2m"
    m2p = "m2p"
    both = "both"


def pretrain(
    scenes: Annotated[
        list[Path] | None,
        typer.Option("--scenes", help="Scene stores (.zarr) or folders of <sensor>/<scene>.zarr; "
                     "repeat the option for several (default: pretrain.scenes).",
                     show_default=False),
    ] = None,
    out: Annotated[Path | None, typer.Option(
        help="Output folder; receives p2m/ and m2p/ (default: pretrain.out).")] = None,
    steps: Annotated[int | None, typer.Option(
        help="Training steps per branch from scratch (pretrain.init: scratch, or shipped where "
        "none fit the scenes).")] = None,
    finetune_steps: Annotated[int | None, typer.Option(
        help="Training steps per branch from shipped or earlier weights (pretrain.init); 0 keeps "
        "them as they are (default: pretrain.finetune_steps).")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Global batch (split across DDP processes).")
    ] = None,
    pan_patch: Annotated[
        int | None, typer.Option(help="PAN patch edge in pixels (MS patch = pan-patch / ratio).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="AdamW learning rate.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    processes: Annotated[int | None, typer.Option(
        help="Training processes (DDP under torchrun, started by this command: one per GPU, or "
        "CPU processes); the global batch is split across them (default: pretrain.processes)."
    )] = None,
    branch: Annotated[Branch, typer.Option(
        help="p2m (PAN -> MS), m2p (MS -> PAN) or both.")] = Branch.both,
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Pretrain the cross-predictive diffusion models (stage one of CrossDiff).

    P2M generates the upsampled MS from the PAN, M2P the PAN from the upsampled MS.

    Rerunning with the same settings resumes from the checkpoints.

    Writes OUT/p2m and OUT/m2p: config.json + weights.pt, checkpoint.pt, losses.csv, etc.

    For several GPUs (or CPU processes): `--processes N` (pretrain.processes) runs the same
    training under `torchrun --standalone --nproc_per_node N`.
    """
    from rich.console import Console
    from rich.table import Table

    from crossdiff_core.io.store import find_scene_stores
    from flows.params import cli_config

    console = Console(soft_wrap=True)
    # Options win over the per-branch values of the file too (pretrain.p2m, pretrain.m2p).
    config = cli_config("pretrain", params, scenes=scenes, out=out, steps=steps,
                        finetune_steps=finetune_steps, batch_size=batch_size,
                        pan_patch=pan_patch, lr=lr, device=device, processes=processes)
    branches = ("p2m", "m2p") if branch is Branch.both else (branch.value,)
    stores = find_scene_stores(config.scenes)
    console.print(f"pretraining {', '.join(branches)} on {len(stores)} scene(s) -> {config.out}")
    from flows.pretrain import pretrain_flow

    summaries = pretrain_flow(config, branches=branches)
    table = Table("branch", "steps", "final loss", "held-out RMSE", "folder")
    for name, summary in summaries.items():
        table.add_row(name, str(summary["steps"]), f"{summary['final_loss']:.4f}",
                      f"{summary['diagnostics']['rmse']:.4f}", summary["folder"])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("pretrain", cls=FlagCommand)(pretrain)
