"""Prefect flows that wire the pipeline's tasks; one module per DVC stage."""
