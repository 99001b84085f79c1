"""`crossdiff serve`: the scheduled flows served from one process (no work pool needed)."""

from __future__ import annotations

import typer

from flows.commands import FlagCommand

LANDING_CRON = "*/15 * * * *"
READAPT_CRON = "0 2 * * *"


def deployments() -> list:
    """The served deployments: landing every 15 min (one run at a time, as in prefect.yaml: an
    overlapping fire is cancelled), the nightly re-adaptation and the on-demand pipeline."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows.landing import landing_flow
    from flows.pipeline import pipeline_flow, readapt_flow

    return [
        landing_flow.to_deployment(
            name="landing-every-15-min", schedules=[Cron(LANDING_CRON, timezone="UTC")],
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)),
        readapt_flow.to_deployment(name="readapt-nightly",
                                   schedules=[Cron(READAPT_CRON, timezone="UTC")]),
        pipeline_flow.to_deployment(name="full-pipeline"),
    ]


def serve() -> None:
    """Serve the landing flow (every 15 min) and the nightly re-adaptation (02:00 UTC).

    Needs a Prefect server for the schedules to fire: start one with `prefect server start
    --background` and set PREFECT_API_URL. Stop with Ctrl+C.
    """
    from prefect import serve as prefect_serve

    prefect_serve(*deployments())


def register(app: typer.Typer) -> None:
    app.command("serve", cls=FlagCommand)(serve)
