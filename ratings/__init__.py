"""Ratings engine: pairwise battles in, Bradley-Terry / Elo leaderboards out.

Pure numpy/scipy (plus pyarrow for reading files); never imports the ``arena`` service.
Typical use::

    from ratings import read_battles, compute_leaderboard, RatingOptions, format_leaderboard
    lb = compute_leaderboard(read_battles("battles.jsonl"), RatingOptions(ci="bootstrap"))
    print(format_leaderboard(lb, "table"))
"""

from ratings.bt import ELO_SCALE, BTFit, ConvergenceError, covariance, fit_bt
from ratings.data import WINNER_VALUES, BattleDataError, Battles, Counts
from ratings.elo import EloOptions, online_elo
from ratings.export import FORMATS, format_leaderboard, leaderboard_dict
from ratings.leaderboard import Leaderboard, LeaderboardRow, RatingOptions, compute_leaderboard
from ratings.readers import read_battles

__all__ = [
    "ELO_SCALE",
    "FORMATS",
    "WINNER_VALUES",
    "BTFit",
    "BattleDataError",
    "Battles",
    "ConvergenceError",
    "Counts",
    "EloOptions",
    "Leaderboard",
    "LeaderboardRow",
    "RatingOptions",
    "compute_leaderboard",
    "covariance",
    "fit_bt",
    "format_leaderboard",
    "leaderboard_dict",
    "online_elo",
    "read_battles",
]
