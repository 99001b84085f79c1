"""End-to-end and re-adaptation flows: each stage's ``main()`` (as DVC runs it) as a subflow.

Each ``main()`` reads its sections of params.yaml into the typed configs (``flows.params``).
"""

from __future__ import annotations

from collections.abc import Callable

from prefect import flow

from flows import adapt, evaluate, freeze, ingest, pretrain, report

STAGE_MAINS: dict[str, Callable[[], object]] = {
    "ingest": ingest.main,
    "pretrain": pretrain.main,
    "freeze": freeze.main,
    "adapt": adapt.main,
    "evaluate": evaluate.main,
    "report": report.main,
}
STAGES: tuple[str, ...] = tuple(STAGE_MAINS)
READAPT_STAGES: tuple[str, ...] = ("adapt", "evaluate", "report")


def _run_stages(stages: tuple[str, ...] | list[str]) -> None:
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}: choose from {list(STAGES)}")
    for stage in stages:
        STAGE_MAINS[stage]()


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
