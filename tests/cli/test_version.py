"""The version is written once, in pyproject.toml, and read from the package metadata."""

from __future__ import annotations

import tomllib
from pathlib import Path

import arena


def test_version_comes_from_the_package_metadata() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert arena.__version__ == pyproject["project"]["version"]
    source = Path(arena.__file__).read_text()
    assert pyproject["project"]["version"] not in source  # not written a second time
