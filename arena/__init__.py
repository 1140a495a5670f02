"""Arena: a self-hosted pairwise-battle arena for language models."""

from importlib.metadata import PackageNotFoundError, version

# The one place the version is written is pyproject.toml; this reads it back from the
# installed package's metadata.
try:
    __version__ = version("arena")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
