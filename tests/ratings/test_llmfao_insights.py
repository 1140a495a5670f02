"""The LLMFAO metadata in data/ against the real votes, and the insights the README shows."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ratings.insights import compute_insights, rating_draws
from ratings.metadata import match_metadata, read_metadata_csv
from tests.ratings.test_known_answers import _llmfao

METADATA = Path(__file__).resolve().parents[2] / "data" / "llmfao_metadata.csv"


def test_every_fact_cites_a_source() -> None:
    with METADATA.open(encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            facts = [k for k in ("params_b", "open_weights", "release_date", "license",
                                 "organisation") if row[k].strip()]  # fmt: skip
            assert not facts or row["source"].strip(), f"line {line} has facts but no source"


def test_metadata_covers_every_llmfao_model(shared_data: Path) -> None:
    battles = _llmfao(shared_data)
    meta = read_metadata_csv(METADATA)
    kept, warnings = match_metadata(meta, battles.models)
    assert warnings == [] and len(kept) == battles.n_models == 59


def test_readme_insights_for_llmfao(shared_data: Path) -> None:
    """The figures the README quotes (clustered by pair id, 1,000 sandwich draws, seed 0)."""
    battles = _llmfao(shared_data)
    meta = read_metadata_csv(METADATA)
    draws = rating_draws(battles, rounds=1000, seed=0, cluster_by="question_id")
    ins = compute_insights(draws, meta)
    lag = ins["open_lag_months"]
    assert lag["reason"] is None and len(lag["points"]) >= 3
    assert lag["lower"] <= lag["estimate"] <= lag["upper"]
    assert lag["estimate"] == pytest.approx(3.1, abs=0.05)
    assert [r["model"] for r in ins["pareto_params"]] == [
        "RedPajama-INCITE Chat (3B)", "MPT-Chat (7B)", "ReMM SLERP L2 13B",
        "Platypus-2 Instruct (70B)",
    ]  # fmt: skip
    assert all(0.0 < r["p_front"] <= 1.0 for r in ins["pareto_params"])
