"""The installed version, read from the package metadata.

The one source of the version is ``package.json`` (the extension's); the build
(hatch-nodejs-version, see pyproject.toml) writes it into the metadata read here.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llmtrace_nb")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
