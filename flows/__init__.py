"""Prefect flows that wire the pipeline's tasks; one module per DVC stage.

Without a Prefect server (``PREFECT_API_URL`` unset) every stage process starts a temporary one;
on a busy laptop that can take longer than Prefect's 20 s default, so the pipeline allows more.
Analytics stay off: the pipeline must run on machines without internet access. Both are defaults
only: values set in the environment or a Prefect profile win.
"""

import os

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
