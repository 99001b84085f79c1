"""`crossdiff pretrain`: train the P2M and M2P diffusion models on scene stores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def pretrain(
    scenes: Annotated[
        list[Path],
        typer.Option("--scenes", help="Scene stores (.zarr) or folders of <sensor>/<scene>.zarr; "
                     "repeat the option for several.", show_default=False),
    ] = None,  # type: ignore[assignment]
    out: Annotated[Path, typer.Option(help="Output folder; receives p2m/ and m2p/.")] = Path(
        "data/models/pretrain"
    ),
    steps: Annotated[int | None, typer.Option(help="Training steps per branch.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Global batch (split across DDP processes).")
    ] = None,
    pan_patch: Annotated[
        int | None, typer.Option(help="PAN patch edge in pixels (MS patch = pan-patch / ratio).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="AdamW learning rate.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    branch: Annotated[
        str, typer.Option(help="p2m (PAN -> MS), m2p (MS -> PAN) or both.")
    ] = "both",
    params: Annotated[
        Path,
        typer.Option(help="Parameters file whose `pretrain` section gives every other setting "
                     "(ignored when missing: built-in defaults)."),
    ] = Path("params.yaml"),
) -> None:
    """Pretrain the cross-predictive diffusion models (stage one of CrossDiff).

    P2M generates the upsampled MS from the PAN, M2P the PAN from the upsampled MS.

    Rerunning with the same settings resumes from the checkpoints.

    Writes OUT/p2m and OUT/m2p: config.json + weights.pt, checkpoint.pt, losses.csv, etc.

    For several GPUs: `torchrun --standalone --nproc_per_node N -m flows.pretrain`.
    """
    from rich.console import Console

    console = Console(soft_wrap=True)
    if branch not in ("p2m", "m2p", "both"):
        console.print(f"[red]error:[/red] --branch must be p2m, m2p or both, not {branch!r}")
        raise typer.Exit(code=1)
    import yaml

    settings = {}
    if params.is_file():
        settings = (yaml.safe_load(params.read_text()) or {}).get("pretrain") or {}
    overrides = {"steps": steps, "batch_size": batch_size, "pan_patch": pan_patch, "lr": lr,
                 "device": device}
    settings = {**settings, **{k: v for k, v in overrides.items() if v is not None}}
    # A command-line value must win over a per-branch value from the parameters file too.
    for name in ("p2m", "m2p"):
        settings[name] = {k: v for k, v in (settings.get(name) or {}).items()
                          if overrides.get(k) is None}
    scene_paths = [str(p) for p in scenes] if scenes else [str(s) for s in
                                                          settings.get("scenes", ["data/zarr"])]
    branches = ("p2m", "m2p") if branch == "both" else (branch,)
    try:
        from crossdiff_core.io.store import find_scene_stores
        from flows.pretrain import branch_configs

        stores = find_scene_stores(scene_paths)
        branch_configs(scene_paths, str(out), settings, branches)  # validate before starting
        console.print(f"pretraining {', '.join(branches)} on {len(stores)} scene(s) -> {out}")
        from flows.pretrain import pretrain_flow

        summaries = pretrain_flow(scenes=scene_paths, out=str(out), settings=settings,
                                  branches=branches)
    except (ValueError, OSError, FloatingPointError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    from rich.table import Table

    table = Table("branch", "steps", "final loss", "held-out RMSE", "folder")
    for name, summary in summaries.items():
        table.add_row(name, str(summary["steps"]), f"{summary['final_loss']:.4f}",
                      f"{summary['diagnostics']['rmse']:.4f}", summary["folder"])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
