"""Sub-commands of the `crossdiff` CLI, one module per user action.

Each command takes ``--params`` (the parameters file whose section gives every setting not given
as an option), builds its config with ``flows.params.cli_config`` and raises on error: the one
error handler is in flows/cli.py. Heavy imports stay inside the command functions so
`crossdiff --help` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ParamsFile = Annotated[
    Path,
    typer.Option(
        "--params",
        help="Parameters file; its section for this command gives every setting not given as an "
        "option (built-in defaults, equal to the project's params.yaml, when it does not exist).",
    ),
]
DEFAULT_PARAMS = Path("params.yaml")
