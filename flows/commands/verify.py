"""`crossdiff verify`: check scene stores fully against the manifest ingest wrote last."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands import FlagCommand


def verify(
    stores: Annotated[
        list[Path],
        typer.Argument(metavar="STORE",
                       help="Scene stores (<scene>.zarr) or folders holding <sensor>/<scene>.zarr.",
                       show_default=False),
    ],
) -> None:
    """Check that scene stores are whole: every file the store's manifest lists is present, has
    its size and its sha256, the metadata parses, and no unlisted file was added.

    Prints OK or what is damaged, one line per store, and exits 1 when any store is damaged.
    Opening a store (pansharpen, pretrain, adapt, evaluate) makes the cheap part of this check
    (presence and sizes) every time; this command reads every byte.

    A damaged store is repaired by ingesting its source again: `crossdiff ingest SOURCE --force`.
    """
    from rich.console import Console
    from rich.markup import escape

    from crossdiff_core.io.integrity import find_store_folders, verify_store

    console = Console(soft_wrap=True, highlight=False)
    folders = find_store_folders(stores)
    bad = 0
    for folder in folders:
        report = verify_store(folder)
        if report.ok:
            console.print(f"[green]OK[/green]      {escape(str(folder))}  [dim]{report.files} "
                          f"files, {report.bytes / 1e6:.1f} MB checked[/dim]")
        else:
            bad += 1
            console.print(f"[red]DAMAGED[/red] {escape(str(report.error()))}")
    if bad:
        console.print(f"{bad} of {len(folders)} scene stores damaged")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify", cls=FlagCommand)(verify)
