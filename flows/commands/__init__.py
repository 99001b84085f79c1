"""Sub-commands of the `crossdiff` CLI, one module per user action.

Heavy imports stay inside the command functions so `crossdiff --help` is fast.
"""
