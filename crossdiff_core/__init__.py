"""CrossDiff core library: the science of the pipeline (no orchestration imports)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crossdiff")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
