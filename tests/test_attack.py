"""Attack simulation: a voter who recognises a target model and always votes for it.

Honest population: 20,000 votes on 10 models, outcomes drawn from true Bradley-Terry
probabilities.  Attacker: one voter key, 500 votes in battles with the target, always for
the target.  The attacker recognises the target from a leaked name in half of them and from
its style in the other half.  Defences: votes on battles whose answers leak a model name are
excluded (``identity_leak``, applied to honest battles with leaks too), and voters flagged
by the anomaly test are excluded (``anomalous_voter``).

Reported: the target's rating shift against the honest-only fit, with and without defences.
The defended shift must stay inside the target's honest 95% CI; the undefended one must not
(otherwise this test would prove nothing).
"""

from __future__ import annotations

import numpy as np

from arena.integrity import flagged_voter_mask
from ratings import Battles, RatingOptions, compute_leaderboard

TRUE = np.array([1180, 1140, 1100, 1060, 1020, 980, 940, 900, 860, 820], dtype=float)
MODELS = [f"model{i}" for i in range(len(TRUE))]
TARGET = 6  # a below-average model the attacker wants to lift
LEAK_RATE = 0.05  # share of the target's answers that name it


def simulate(seed: int = 11) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_honest, n_attack = 20_000, 500
    k = len(TRUE)
    a = rng.integers(0, k, n_honest)
    b = (a + rng.integers(1, k, n_honest)) % k
    pa = 1 / (1 + 10 ** ((TRUE[b] - TRUE[a]) / 400))
    u = rng.random(n_honest)
    ties = rng.random(n_honest) < 0.2
    winner = np.where(ties, "tie", np.where(u < pa, "model_a", "model_b"))
    judge = np.array([f"user{j}" for j in rng.integers(0, 2000, n_honest)])
    leaked = ((a == TARGET) | (b == TARGET)) & (rng.random(n_honest) < LEAK_RATE)
    # The attacker's battles: the target on a random side against a random opponent.
    opp = (TARGET + rng.integers(1, k, n_attack)) % k
    side_a = rng.random(n_attack) < 0.5
    aa = np.where(side_a, TARGET, opp)
    bb = np.where(side_a, opp, TARGET)
    aw = np.where(side_a, "model_a", "model_b")
    a_leaked = np.arange(n_attack) < n_attack // 2  # recognised by a leaked name
    return {
        "a": np.concatenate([a, aa]),
        "b": np.concatenate([b, bb]),
        "winner": np.concatenate([winner, aw]),
        "judge": np.concatenate([judge, np.full(n_attack, "attacker")]),
        "leaked": np.concatenate([leaked, a_leaked]),
        "honest": np.concatenate([np.ones(n_honest, bool), np.zeros(n_attack, bool)]),
    }


def battles(sim: dict[str, np.ndarray], keep: np.ndarray) -> Battles:
    names = np.array(MODELS, dtype=object)
    return Battles.from_columns(
        names[sim["a"][keep]],
        names[sim["b"][keep]],
        sim["winner"][keep],
        clusters={"judge": sim["judge"][keep]},
    )


def target_rating(bt: Battles) -> tuple[float, float, float]:
    lb = compute_leaderboard(bt, RatingOptions())
    row = next(r for r in lb.rows if r.model == MODELS[TARGET])
    return row.rating, row.lower, row.upper


def test_defences_keep_a_500_vote_attack_inside_the_honest_ci() -> None:
    sim = simulate()
    honest, lower, upper = target_rating(battles(sim, sim["honest"]))
    attacked, _, _ = target_rating(battles(sim, np.ones(len(sim["a"]), bool)))
    # Defence 1: identity-leak exclusions (honest leaked battles are excluded too).
    after_leaks = ~sim["leaked"]
    # Defence 2: the anomaly test on what remains.
    remaining = battles(sim, after_leaks)
    keep_voters, n_flagged = flagged_voter_mask(remaining)
    defended_bt = remaining.select(keep_voters)
    defended, _, _ = target_rating(defended_bt)
    shift_raw, shift_def = attacked - honest, defended - honest
    print(
        f"\ntarget honest {honest:.1f} [{lower:.1f}, {upper:.1f}]; attacked {attacked:.1f} "
        f"(shift {shift_raw:+.1f}); defended {defended:.1f} (shift {shift_def:+.1f}); "
        f"flagged voters {n_flagged}"
    )
    assert shift_raw > upper - honest, "the attack should matter without defences"
    assert lower <= defended <= upper
    assert n_flagged == 1
    # The flagged voter is the attacker: every remaining attacker vote is gone, no honest one.
    judge_names = np.asarray(sim["judge"][after_leaks])
    assert set(judge_names[~keep_voters]) == {"attacker"}


def test_ratings_cli_exclude_flagged_drops_the_attacker(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from arena.cli import main

    sim = simulate()
    log = tmp_path / "battles.jsonl"
    with log.open("w") as f:
        for a, b, w, j in zip(sim["a"], sim["b"], sim["winner"], sim["judge"], strict=True):
            rec = {"model_a": MODELS[a], "model_b": MODELS[b], "winner": str(w), "judge": str(j)}
            f.write(json.dumps(rec) + "\n")
    out = tmp_path / "lb.json"
    assert main(["ratings", str(log), "--exclude-flagged", "--no-progress", "--out", str(out)]) == 0
    assert "left out 500 votes of 1 flagged voters" in capsys.readouterr().err
    board = json.loads(out.read_text())
    assert board["n_battles"] == 20_000
