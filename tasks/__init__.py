"""Prefect tasks: thin typed wrappers, each doing one I/O step of the pipeline."""
