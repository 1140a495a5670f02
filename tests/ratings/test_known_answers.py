"""Known-answer tests against published Bradley-Terry results (../shared/data)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from ratings.bt import ELO_SCALE, covariance, fit_bt
from ratings.data import Battles
from ratings.readers import read_battles

from .helpers import battles_from_counts

pytestmark = pytest.mark.shared_data

# Published numbers are printed to 4 decimals (3 for Wikipedia); computed-here references
# to ~1e-9.  The default ridge penalty (1e-6) moves these fits by < 1e-7.
PUBLISHED_4DP = 6e-5
PUBLISHED_3DP = 6e-4
COMPUTED_THETA = 1e-6
COMPUTED_SE_REL = 1e-5


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _published(shared: Path, dataset: str, model_prefix: str) -> dict[str, tuple[float, str]]:
    out = {}
    for r in _rows(shared / "bt2_published_reference.csv"):
        if r["dataset"] == dataset and r["model"].startswith(model_prefix):
            out[r["parameter"]] = (float(r["estimate"]), r["std_error"])
    return out


def _relative(theta: np.ndarray, models: tuple[str, ...], ref: str) -> dict[str, float]:
    k = models.index(ref)
    return {m: float(theta[i] - theta[k]) for i, m in enumerate(models)}


def _se_relative(cov: np.ndarray, models: tuple[str, ...], ref: str) -> dict[str, float]:
    k = models.index(ref)
    d = np.diag(cov)
    return {m: math.sqrt(max(d[i] + d[k] - 2 * cov[i, k], 0.0)) for i, m in enumerate(models)}


def _llmfao(shared: Path) -> Battles:
    rows = _rows(shared / "llmfao_crowd_comparisons.csv")
    winner = {"left": "model_a", "right": "model_b", "tie": "tie"}
    return Battles.from_columns(
        [r["left"] for r in rows],
        [r["right"] for r in rows],
        [winner[r["winner"]] for r in rows],
        clusters={"question_id": [r["id"] for r in rows], "judge": [r["worker"] for r in rows]},
        source="llmfao",
    )


def test_llmfao_matches_published_scores(shared_data: Path) -> None:
    battles = _llmfao(shared_data)
    assert len(battles) == 8931 and battles.n_models == 59
    fit = fit_bt(battles.aggregate())
    ref = {r["model"]: r for r in _rows(shared_data / "llmfao_reference_scores.csv")}
    theta = dict(zip(fit.models, fit.theta, strict=True))
    score = np.exp(fit.theta) / np.exp(fit.theta).sum()
    scores = dict(zip(fit.models, score, strict=True))
    for model, r in ref.items():
        # Published evalica scores (MM iterations to tol 1e-6, printed to 6 decimals).
        assert scores[model] == pytest.approx(float(r["published_score"]), abs=5e-6)
        assert theta[model] == pytest.approx(float(r["theta_ln_sumzero"]), abs=COMPUTED_THETA)
        elo = 1000 + ELO_SCALE * theta[model]
        assert elo == pytest.approx(float(r["elo_mean1000"]), abs=1e-3)
    published_order = sorted(ref, key=lambda m: int(ref[m]["published_rank"]))
    ours = sorted(ref, key=lambda m: -theta[m])
    assert ours[:10] == published_order[:10]


def test_llmfao_standard_errors(shared_data: Path) -> None:
    battles = _llmfao(shared_data)
    counts = battles.aggregate()
    fit = fit_bt(counts)
    ref = {r["model"]: r for r in _rows(shared_data / "llmfao_reference_scores.csv")}
    se_f = np.sqrt(np.diag(covariance(fit, counts, "fisher")))
    se_s = np.sqrt(np.diag(covariance(fit, counts, "sandwich")))
    for k, model in enumerate(fit.models):
        assert se_f[k] == pytest.approx(float(ref[model]["se_fisher_ln"]), rel=COMPUTED_SE_REL)
        assert se_s[k] == pytest.approx(float(ref[model]["se_sandwich_ln"]), rel=COMPUTED_SE_REL)
    # With 39% ties the sandwich is narrower than Fisher (about 0.76 of it, per the notes).
    assert 0.70 < float(np.median(se_s / se_f)) < 0.82
    # ~5 workers judged each pair: clustering by pair id must widen the intervals.
    clustered = battles.aggregate("question_id")
    se_c = np.sqrt(np.diag(covariance(fit, clustered, "sandwich", cluster_by_cells=True)))
    assert float(np.median(se_c / se_s)) > 1.05


def test_btm_abilities_relative_to_reference(shared_data: Path) -> None:
    battles = _llmfao(shared_data)
    fit = fit_bt(battles.aggregate())
    ref = {r["model"]: r for r in _rows(shared_data / "llmfao_reference_scores.csv")}
    rel = _relative(fit.theta, fit.models, "Airoboros L2 70B")
    for model, r in ref.items():
        assert rel[model] == pytest.approx(float(r["btm_ability_vs_Airoboros"]), abs=1e-6)


def test_citations_published_coefficients_and_deviance(shared_data: Path) -> None:
    rows = _rows(shared_data / "bt2_citations.csv")
    battles = battles_from_counts(
        [(r["journal1"], r["journal2"], int(r["win1"]), int(r["win2"]), 0) for r in rows]
    )
    fit = fit_bt(battles.aggregate())
    pub = _published(shared_data, "citations", "standard")
    rel = _relative(fit.theta, fit.models, "Biometrika")
    for journal in ("Comm Statist", "JASA", "JRSS-B"):
        assert rel[journal] == pytest.approx(pub[journal][0], abs=PUBLISHED_4DP)
    dev = _deviance(fit.theta, fit.models, rows, "journal1", "journal2", "win1", "win2")
    assert dev == pytest.approx(pub["residual_deviance"][0], abs=5e-4)


def _deviance(theta, models, rows, a_col, b_col, wa_col, wb_col) -> float:  # type: ignore[no-untyped-def]
    idx = {m: k for k, m in enumerate(models)}
    dev = 0.0
    for r in rows:
        wa, wb = float(r[wa_col]), float(r[wb_col])
        n = wa + wb
        p = 1 / (1 + math.exp(-(theta[idx[r[a_col]]] - theta[idx[r[b_col]]])))
        for obs, exp_ in ((wa, n * p), (wb, n * (1 - p))):
            if obs > 0:
                dev += 2 * obs * math.log(obs / exp_)
    return dev


def test_baseball_published_estimates_and_fisher_errors(shared_data: Path) -> None:
    rows = _rows(shared_data / "bt2_baseball.csv")
    battles = battles_from_counts(
        [
            (r["home.team"], r["away.team"], int(r["home.wins"]), int(r["away.wins"]), 0)
            for r in rows
        ]
    )
    counts = battles.aggregate()
    fit = fit_bt(counts)
    pub = _published(shared_data, "baseball", "baseballModel1")
    rel = _relative(fit.theta, fit.models, "Baltimore")
    se = _se_relative(covariance(fit, counts, "fisher"), fit.models, "Baltimore")
    for team in ("Boston", "Cleveland", "Detroit", "Milwaukee", "New York", "Toronto"):
        assert rel[team] == pytest.approx(pub[team][0], abs=PUBLISHED_4DP)
        assert se[team] == pytest.approx(float(pub[team][1]), abs=PUBLISHED_4DP)
    dev = _deviance(fit.theta, fit.models, rows, "home.team", "away.team", "home.wins", "away.wins")
    assert dev == pytest.approx(pub["residual_deviance"][0], abs=5e-3)


def test_icehockey_abilities_and_errors_with_ties(shared_data: Path) -> None:
    rows = _rows(shared_data / "bt2_icehockey.csv")
    assert len(rows) == 1083
    result = {"1": "model_a", "0": "model_b", "0.5": "tie"}
    battles = Battles.from_columns(
        [r["visitor"] for r in rows],
        [r["opponent"] for r in rows],
        [result[r["result"]] for r in rows],
    )
    assert int((battles.outcome == 2).sum()) == 125
    counts = battles.aggregate()
    # The references are the pure MLE; with only ~37 games a team the default ridge
    # (1e-6) moves abilities by a few 1e-6, so compare the unpenalised fit tightly...
    fit = fit_bt(counts, l2=0.0)
    ref = {r["team"]: r for r in _rows(shared_data / "bt2_icehockey_reference_btm.csv")}
    rel = _relative(fit.theta, fit.models, "Alaska Anchorage")
    se = _se_relative(covariance(fit, counts, "fisher"), fit.models, "Alaska Anchorage")
    for team, r in ref.items():
        assert rel[team] == pytest.approx(float(r["ability"]), abs=1e-8)
        assert se[team] == pytest.approx(float(r["se"]), abs=1e-5)
    # ...and check that the default penalty stays far below anything a leaderboard shows.
    default = _relative(fit_bt(counts).theta, fit.models, "Alaska Anchorage")
    assert max(abs(default[t] - rel[t]) for t in ref) < 1e-4


def test_wikipedia_example(shared_data: Path) -> None:
    rows = _rows(shared_data / "wikipedia_bt_example.csv")
    battles = battles_from_counts([(r["winner"], r["loser"], int(r["count"]), 0, 0) for r in rows])
    assert len(battles) == 22
    fit = fit_bt(battles.aggregate())
    p = dict(zip(fit.models, np.exp(fit.theta), strict=True))  # geometric mean 1
    pub = _published(shared_data, "wikipedia", "standard")
    for player in "ABCD":
        assert p[player] == pytest.approx(pub[player][0], abs=PUBLISHED_3DP)


def test_reader_on_llmfao_as_jsonl(shared_data: Path, tmp_path: Path) -> None:
    """The file readers and the in-memory path give the same fit."""
    import json

    rows = _rows(shared_data / "llmfao_crowd_comparisons.csv")
    winner = {"left": "model_a", "right": "model_b", "tie": "tie"}
    path = tmp_path / "llmfao.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            rec = {"model_a": r["left"], "model_b": r["right"], "winner": winner[r["winner"]]}
            fh.write(json.dumps(rec) + "\n")
    a = fit_bt(read_battles(path).aggregate())
    b = fit_bt(_llmfao(shared_data).aggregate())
    assert a.models == b.models
    np.testing.assert_allclose(a.theta, b.theta, atol=1e-12)


# ---------------------------------------------------------------- committed LLMFAO fixture

FIXTURE = Path(__file__).parent / "data"
PUBLISHED_SCORE_ABS = 5e-6  # evalica's MM stops at tol 1e-6; the scores are printed to 6 dp


def _fixture_battles() -> Battles:
    rows = _rows(FIXTURE / "llmfao_pair_counts.csv")
    return battles_from_counts(
        [
            (r["model_a"], r["model_b"], int(r["a_wins"]), int(r["b_wins"]), int(r["ties"]))
            for r in rows
        ]
    )


def test_llmfao_fixture_reproduces_the_published_leaderboard() -> None:
    """Runs without ../shared: the committed derived counts against the published scores."""
    battles = _fixture_battles()
    assert len(battles) == 8931 and battles.n_models == 59
    fit = fit_bt(battles.aggregate())
    score = dict(zip(fit.models, np.exp(fit.theta) / np.exp(fit.theta).sum(), strict=True))
    published = _rows(FIXTURE / "llmfao_published_scores.csv")
    assert len(published) == 59
    for r in published:
        assert score[r["model"]] == pytest.approx(float(r["published_score"]),
                                                  abs=PUBLISHED_SCORE_ABS)  # fmt: skip
    stats = battles.aggregate().per_model()
    pairs = dict(zip(battles.models, stats["battles"], strict=True))
    assert all(pairs[r["model"]] == int(r["published_pairs"]) for r in published)
    by_rank = [r["model"] for r in sorted(published, key=lambda r: int(r["published_rank"]))]
    ours = sorted(score, key=lambda m: -score[m])
    assert ours[:10] == by_rank[:10]


def test_llmfao_fixture_is_the_aggregated_original(shared_data: Path) -> None:
    original = _llmfao(shared_data).aggregate()
    fixture = _fixture_battles().aggregate()
    assert original.models == fixture.models
    key = lambda c: sorted(zip(c.i, c.j, c.outcome, c.n, strict=True))  # noqa: E731
    assert key(original) == key(fixture)
