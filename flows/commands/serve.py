"""`crossdiff serve`: the scheduled flows served from one process (no work pool needed)."""

from __future__ import annotations

import typer

LANDING_CRON = "*/15 * * * *"
READAPT_CRON = "0 2 * * *"


def serve() -> None:
    """Serve the landing flow (every 15 min) and the nightly re-adaptation (02:00 UTC).

    Needs a Prefect server for the schedules to fire: start one with `prefect server start
    --background` and set PREFECT_API_URL. Stop with Ctrl+C.
    """
    from prefect import serve as prefect_serve
    from prefect.schedules import Cron

    from flows.landing import landing_flow
    from flows.pipeline import pipeline_flow, readapt_flow

    prefect_serve(
        landing_flow.to_deployment(name="landing-every-15-min",
                                   schedules=[Cron(LANDING_CRON, timezone="UTC")]),
        readapt_flow.to_deployment(name="readapt-nightly",
                                   schedules=[Cron(READAPT_CRON, timezone="UTC")]),
        pipeline_flow.to_deployment(name="full-pipeline"),
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
