"""End-to-end and re-adaptation flows: each stage's ``main()`` (as DVC runs it) as a subflow."""

from __future__ import annotations

import importlib

from prefect import flow

STAGES: tuple[str, ...] = ("ingest", "pretrain", "freeze", "adapt", "evaluate", "report")
READAPT_STAGES: tuple[str, ...] = ("adapt", "evaluate", "report")


def _run_stages(stages: tuple[str, ...] | list[str]) -> None:
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}: choose from {list(STAGES)}")
    for stage in stages:
        importlib.import_module(f"flows.{stage}").main()


@flow(name="crossdiff-pipeline")
def pipeline_flow(stages: list[str] | None = None) -> None:
    """Ingest, pretrain, freeze, adapt, evaluate, report, with the parameters in params.yaml."""
    _run_stages(stages or STAGES)


@flow(name="readapt")
def readapt_flow() -> None:
    """Re-adapt the fusion head on the current stores, re-evaluate (may promote), re-report."""
    _run_stages(READAPT_STAGES)


if __name__ == "__main__":
    pipeline_flow()
