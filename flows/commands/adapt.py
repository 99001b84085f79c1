"""`crossdiff freeze` and `crossdiff adapt`: freeze the encoders, train the fusion head."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _section(params: Path, name: str) -> dict:
    import yaml

    if not params.is_file():
        return {}
    return (yaml.safe_load(params.read_text()) or {}).get(name) or {}


def freeze(
    pretrained: Annotated[
        Path | None,
        typer.Option(help="Pretraining output holding p2m/ and m2p/ (default: pretrain.out)."),
    ] = None,
    scenes: Annotated[
        list[Path] | None,
        typer.Option(
            "--scenes",
            help="Stores (or folders of them) to calibrate the frozen normalisation on "
            "(default: pretrain.scenes); repeat for several.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: freeze.out).")] = None,
    t_feature: Annotated[int | None, typer.Option(help="Diffusion step of the features.")] = None,
    noisy: Annotated[
        bool,
        typer.Option(
            "--noisy",
            help="Noise the inputs at t_feature (coordinate-keyed, deterministic) "
            "instead of using the noise-free mean.",
        ),
    ] = False,
    params: Annotated[
        Path, typer.Option(help="Parameters file (freeze and pretrain sections).")
    ] = Path("params.yaml"),
) -> None:
    """Freeze the P2M and M2P encoders into one feature-extractor artifact.

    GroupNorm statistics are fixed from calibration patches so features do not depend on tiling.
    """
    from rich.console import Console

    console = Console(soft_wrap=True)
    settings, pretrain = _section(params, "freeze"), _section(params, "pretrain")
    try:
        from flows.freeze import freeze_flow, freeze_settings_from

        chosen = freeze_settings_from(settings, pretrain)
        if t_feature is not None:
            chosen["t_feature"] = t_feature
        if noisy:
            chosen["noise_free"] = False
        path = freeze_flow(
            pretrain_dir=str(pretrained or pretrain.get("out", "data/models/pretrain")),
            scenes=[str(s) for s in scenes]
            if scenes
            else list(pretrain.get("scenes", ["data/zarr"])),
            out=str(out or settings.get("out", "data/models/encoders")),
            **chosen,
        )
    except (ValueError, OSError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    console.print(f"frozen extractor written to [bold]{path}[/bold]")


def adapt(
    scenes: Annotated[
        list[Path] | None,
        typer.Option(
            "--scenes",
            help="Target scene stores or folders of them (default: adapt.scenes); "
            "repeat for several.",
            show_default=False,
        ),
    ] = None,
    encoders: Annotated[
        Path | None,
        typer.Option(
            help="Frozen extractor folder (default: freeze.out); may come from another sensor, "
            "bands are matched by name."
        ),
    ] = None,
    random_encoders: Annotated[
        bool,
        typer.Option(
            "--random-encoders",
            help="Ablation: the same head on randomly initialised frozen encoders.",
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Output model folder (default: adapt.out).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    params: Annotated[
        Path, typer.Option(help="Parameters file (adapt and freeze sections).")
    ] = Path("params.yaml"),
) -> None:
    """Train the fusion head on full-resolution patches of the target scenes, unsupervised."""
    from rich.console import Console

    console = Console(soft_wrap=True)
    settings = dict(_section(params, "adapt"))
    for key, value in (("steps", steps), ("device", device)):
        if value is not None:
            settings[key] = value
    if random_encoders:
        settings["random_encoders"] = True
    encoder_dir = encoders or _section(params, "freeze").get("out", "data/models/encoders")
    try:
        from flows.adapt import adapt_flow

        result = adapt_flow(
            scenes=[str(s) for s in scenes]
            if scenes
            else list(settings.get("scenes", ["data/zarr"])),
            out=str(out or settings.get("out", "data/models/head")),
            encoders=None if settings.get("random_encoders") else str(encoder_dir),
            settings=settings,
        )
    except (ValueError, OSError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    final = result["final"]
    console.print(
        f"adapted in {result['seconds']:.1f} s: loss {final['loss']:.4f} (spectral "
        f"{final['spectral']:.4f}, spatial {final['spatial']:.4f}) -> "
        f"[bold]{result['out']}[/bold]"
    )


def register(app: typer.Typer) -> None:
    app.command()(freeze)
    app.command()(adapt)
