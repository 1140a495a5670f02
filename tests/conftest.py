"""Shared fixtures.  Known-answer data lives in ../shared/data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ARENA_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Directory of the published reference data sets; skips when the checkout has none."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(
            f"reference data not found at {SHARED_DATA} (a fresh clone has no ../shared; "
            "set ARENA_SHARED_DATA to its data/ folder to run these known-answer tests)"
        )
    return SHARED_DATA


# Tests that start processes, load the real model, drive a browser or a database server get
# more than the default 60 s per test (pyproject.toml); an explicit @pytest.mark.timeout wins.
SLOW_TIMEOUT_S = 600
_SLOW_MARKS = ("slow", "model", "browser", "postgres")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None and any(
            item.get_closest_marker(m) is not None for m in _SLOW_MARKS
        ):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
