"""The installed version, read from the package metadata (pyproject.toml is its source)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llmtrace_nb")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
