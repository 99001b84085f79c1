"""Sub-commands of the `crossdiff` CLI, one module per user action; heavy imports stay inside the functions so `--help` is fast."""
