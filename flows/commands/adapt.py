"""`crossdiff freeze` and `crossdiff adapt`: freeze the encoders, train the fusion head."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands import DEFAULT_PARAMS, FlagCommand, ParamsFile


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
    t_feature: Annotated[int | None, typer.Option(
        help="Diffusion step of the features (default: freeze.t_feature).")] = None,
    noisy: Annotated[
        bool,
        typer.Option(
            "--noisy",
            help="Noise the inputs at t_feature (coordinate-keyed, deterministic) "
            "instead of using the noise-free mean.",
        ),
    ] = False,
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Freeze the P2M and M2P encoders into one feature-extractor artifact.

    GroupNorm statistics are fixed from calibration patches so features do not depend on tiling.
    """
    from rich.console import Console

    from flows.params import cli_config

    config = cli_config("freeze", params, out=out, t_feature=t_feature,
                        noise_free=False if noisy else None)
    pretrain = cli_config("pretrain", params, scenes=scenes, out=pretrained)
    from flows.freeze import freeze_flow

    path = freeze_flow(config, pretrain.out, pretrain.scenes, pretrain.pan_patch)
    Console(soft_wrap=True).print(f"frozen extractor written to [bold]{path}[/bold]")


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
            help="Frozen extractor folder (default: adapt.encoders, else freeze.out); may come "
            "from another sensor, bands are matched by name."
        ),
    ] = None,
    random_encoders: Annotated[
        bool,
        typer.Option(
            "--random-encoders",
            help="Ablation: the same head on randomly initialised frozen encoders (random twins "
            "of --encoders when given).",
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Output model folder (default: adapt.out).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    params: ParamsFile = DEFAULT_PARAMS,
) -> None:
    """Train the fusion head on full-resolution patches of the target scenes, unsupervised."""
    from rich.console import Console

    from flows.params import cli_config

    config = cli_config("adapt", params, scenes=scenes, encoders=encoders, out=out, steps=steps,
                        device=device, random_encoders=True if random_encoders else None)
    from flows.adapt import adapt_flow
    from tasks.adapt import with_encoders

    if not config.random_encoders:
        config = with_encoders(config, cli_config("freeze", params))
    result = adapt_flow(config)
    final = result["final"]
    Console(soft_wrap=True).print(
        f"adapted in {result['seconds']:.1f} s: loss {final['loss']:.4f} (spectral "
        f"{final['spectral']:.4f}, spatial {final['spatial']:.4f}) -> "
        f"[bold]{result['out']}[/bold]"
    )


def register(app: typer.Typer) -> None:
    app.command(cls=FlagCommand)(freeze)
    app.command(cls=FlagCommand)(adapt)
