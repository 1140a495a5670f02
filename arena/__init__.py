"""Arena: a self-hosted pairwise-battle arena for language models."""

__version__ = "0.1.0"
__all__ = ["__version__"]
